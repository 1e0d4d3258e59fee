"""``bench regress``: attack the committed regression checkpoints again and compare masks."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer

from bench.cli.common import RootOpt, app, clean_errors
from bench.cli.deferred import regress_jobs
from bench.core.constants import REGRESS_BASELINE


@app.command()
@clean_errors
def regress(
    update: Annotated[bool, typer.Option("--update", help="rewrite the baseline masks")] = False,
    baseline: Annotated[Path, typer.Option(help="baseline file")] = REGRESS_BASELINE,
    data_root: RootOpt = None,
) -> None:
    """Re-attack committed checkpoints; exit 1 when more points flip than the tolerance."""
    t0, load = time.perf_counter(), os.getloadavg()[0]
    deltas = (regress_jobs.update if update else regress_jobs.check)(baseline, data_root)
    typer.echo("| checkpoint | attack | n | robust before | now | flipped points |")
    typer.echo("|---|---|---|---|---|---|")
    for d in deltas:
        flips = ", ".join(map(str, d.flipped[:20])) + (" ..." if len(d.flipped) > 20 else "")
        typer.echo(f"| {d.checkpoint} | {d.attack} | {d.n} | {d.before} | {d.after} | "
                   f"{len(d.flipped)}{': ' + flips if flips else ''} |")  # fmt: skip
    bad = [d for d in deltas if not d.ok]
    secs = time.perf_counter() - t0
    typer.echo(f"{len(deltas)} checks, {len(bad)} regressions (tolerance {regress_jobs.TOLERANCE} "
               f"points each); {secs:.1f} s, load {load:.2f}")  # fmt: skip
    if update:
        typer.echo(f"baseline rewritten: {baseline}")
    elif bad:
        raise typer.Exit(1)
