"""``bench demo``: Standard, TRADES and MART on an MNIST subset, then Table 2.

The nine runs (three defenses, seeds 0-2) are independent jobs. On a machine with two or
more usable cores they go to local worker processes, two by default, each with its share
of the cores (``--executor local`` under the hood); with one core they run here, one
after another. Training defaults to bf16 where it is fast (``--precision auto``: a CPU
with AVX512-BF16 or AMX, or a GPU); README "How stable it is" gives the measured effect
on the table.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer

from bench.cli import placing as pl
from bench.cli.common import app, clean_errors, parse_seeds, usable_cores
from bench.cli.deferred import jobs, provenance, train_precision
from bench.cli.options import DbOpt, DeviceOpt, ProgressOpt, RootOpt
from bench.core.constants import DEFAULT_ATTACKS
from bench.report.render import render_paper
from bench.report.text import time_left
from bench.spec.placement import Options
from bench.spec.run import RunSpec, resolve
from bench.store import db as bdb

DEMO_DEFENSES = ("standard", "trades", "mart")


@app.command()
@clean_errors
def demo(
    train_subset: Annotated[int, typer.Option(min=1)] = 4000,
    test_subset: Annotated[int, typer.Option(min=1)] = 500,
    monitor_subset: Annotated[
        int, typer.Option(min=1, help="first N test images for the per-epoch PGD-20 check")
    ] = 200,
    epochs: Annotated[int | None, typer.Option(min=1, help="default: the preset's")] = None,
    preset: Annotated[str, typer.Option(help="training preset")] = "demo-mnist",
    seeds: Annotated[
        str, typer.Option(help="comma-separated seeds: the table shows mean ± sd")
    ] = "0,1,2",
    precision: Annotated[
        str,
        typer.Option(
            help="training arithmetic: auto (bf16 where it is fast, else fp32), fp32, bf16"
        ),
    ] = "auto",
    workers: Annotated[
        int | None,
        typer.Option(
            min=1, help="runs at a time, in worker processes [default: 2 with 2+ cores on a CPU]"
        ),
    ] = None,
    db: DbOpt = None,
    device: DeviceOpt = None,
    data_root: RootOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """A real run: Standard, TRADES and MART on an MNIST subset, then Table 2.

    Seeds 0, 1 and 2 by default: the table shows mean ± sd (README: how far each cell moves
    between seeds). The default preset `demo-mnist` uses eps 0.1 so that CPU training learns
    something; the table then omits the paper's eps-0.3 numbers. Use
    `--preset paper-4.2-mnist --epochs 50` (and a GPU) for the paper's setting.
    """
    device = provenance.check_device(device)
    precision = train_precision.auto(precision, device)
    engine = bdb.connect(db)
    specs = [
        resolve(
            defense,
            "smallcnn",
            "mnist",
            preset,
            seed=seed,
            train_subset=train_subset,
            test_subset=test_subset,
            overrides={"epochs": epochs},
            precision=precision,
            monitor_subset=min(monitor_subset, test_subset),
        )
        for seed in parse_seeds(seeds, 0)
        for defense in DEMO_DEFENSES
    ]
    n = workers or (2 if device == "cpu" and usable_cores() >= 2 else 1)
    typer.echo(
        f"demo: {len(specs)} runs ({precision} training), {n} at a time on {device}", err=True
    )
    if n > 1:
        pl.run_jobs(
            engine,
            pl.grid_jobs(specs, list(DEFAULT_ATTACKS), {}, skip_wrong=True),
            ("local", Options(workers=n)),
            runs_dir=None,
            data_root=data_root,
            device=device,
            runtime=None,
            progress=False,
        )
    else:
        _one_by_one(engine, specs, device, data_root, progress)
    typer.echo(render_paper(engine, 2, runs=[s.name for s in specs]))


def _one_by_one(
    engine: object, specs: list[RunSpec], device: str, data_root: str | None, progress: bool
) -> None:
    """Train and evaluate each run here, saying which one and how long is left."""
    started = time.monotonic()
    for k, spec in enumerate(specs):
        left = time_left(started, k, len(specs))
        typer.echo(f"== run {k + 1} of {len(specs)}: {spec.name}{left}", err=True)
        jobs.train_job(engine, spec, device=device, data_root=data_root, progress=progress)
        jobs.eval_job(engine, spec.name, device=device, data_root=data_root, progress=progress)
