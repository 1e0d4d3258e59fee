"""``bench regress``: attack the committed checkpoints again and train the pinned tiny grid
again; compare with the committed baselines (results/reference/regress/)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated

import typer

from bench.cli.common import app, clean_errors, split_list
from bench.cli.deferred import regress_jobs as reg
from bench.cli.deferred import regress_train_jobs as regt
from bench.cli.options import RootOpt
from bench.core.constants import REGRESS_BASELINE, REGRESS_TRAIN_BASELINE

PARTS = ("attacks", "training")


@app.command()
@clean_errors
def regress(
    update: Annotated[bool, typer.Option("--update", help="rewrite the baselines")] = False,
    only: Annotated[str | None, typer.Option(help="attacks or training [default: both]")] = None,
    baseline: Annotated[Path, typer.Option(help="attack baseline file")] = REGRESS_BASELINE,
    training_baseline: Annotated[
        Path, typer.Option(help="training baseline file")
    ] = REGRESS_TRAIN_BASELINE,
    data_root: RootOpt = None,
) -> None:
    """Re-attack committed checkpoints and re-train a tiny grid; exit 1 on a regression."""
    parts = split_list(only or ",".join(PARTS))
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValueError(f"unknown part(s) {', '.join(sorted(unknown))}; valid: {', '.join(PARTS)}")
    bad = 0
    if "attacks" in parts:
        bad += _attacks(update, baseline, data_root)
    if "training" in parts:
        bad += _training(update, training_baseline, data_root)
    if bad and not update:
        raise typer.Exit(1)


def _attacks(update: bool, baseline: Path, data_root: str | None) -> int:
    t0, load = time.perf_counter(), os.getloadavg()[0]
    deltas = (reg.update if update else reg.check)(baseline, data_root)
    typer.echo("| checkpoint | attack | n | robust before | now | flipped points |")
    typer.echo("|---|---|---|---|---|---|")
    for d in deltas:
        flips = ", ".join(map(str, d.flipped[:20])) + (" ..." if len(d.flipped) > 20 else "")
        typer.echo(
            f"| {d.checkpoint} | {d.attack} | {d.n} | {d.before} | {d.after} | "
            f"{len(d.flipped)}{': ' + flips if flips else ''} |"
        )
    bad = [d for d in deltas if not d.ok]
    secs = time.perf_counter() - t0
    typer.echo(
        f"attacks: {len(deltas)} checks, {len(bad)} regressions (tolerance "
        f"{reg.TOLERANCE} points each); {secs:.1f} s, load {load:.2f}"
    )
    if update:
        typer.echo(f"baseline rewritten: {baseline}")
    return len(bad)


def _training(update: bool, baseline: Path, data_root: str | None) -> int:
    t0, load = time.perf_counter(), os.getloadavg()[0]
    cells = (regt.update if update else regt.check)(baseline, data_root)
    typer.echo("| defense | metric | baseline | now | difference | tolerance | |")
    typer.echo("|---|---|---|---|---|---|---|")
    for c in cells:
        mark = "ok" if c.ok else "REGRESSION"
        typer.echo(
            f"| {c.defense} | {c.metric} | {c.baseline:.4f} | {c.now:.4f} "
            f"| {c.now - c.baseline:+.4f} | {c.tolerance:.4f} | {mark} |"
        )
    bad = [c for c in cells if not c.ok]
    secs = time.perf_counter() - t0
    typer.echo(
        f"training: {len(cells)} checks, {len(bad)} regressions; {secs:.1f} s, load {load:.2f}"
    )
    if update:
        typer.echo(f"baseline rewritten: {baseline}")
    return len(bad)
