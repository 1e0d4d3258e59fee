"""``bench experiment`` and ``bench plot``: the paper's tables and figures as named jobs
(and ``bench plot curves RUN...``: training curves of any runs).

Both commands take the same overrides, because the overrides are part of each run's spec:
``bench plot NAME`` with the options given to ``bench experiment NAME`` finds its runs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.engine import Engine

from bench.cli import placing as pl
from bench.cli.common import app, check_cores, clean_errors, existing_db, parse_seeds, split_list
from bench.cli.deferred import executors, experiment_jobs, provenance, train_runtime
from bench.cli.groups import placing_options
from bench.cli.options import (
    DbOpt,
    DeviceOpt,
    MonitorOpt,
    OversubscribeOpt,
    PrecisionOpt,
    ProgressOpt,
    RootOpt,
    RunsDirOpt,
    SeedsOpt,
    StatusOpt,
    TestSubOpt,
    ThreadsOpt,
    TrainSubOpt,
    UnlabOpt,
    ValOpt,
)
from bench.core.home import home
from bench.report import plots, runplots
from bench.report.render import render_paper, render_table5
from bench.spec import experiments as bexp
from bench.spec.placement import Options
from bench.store import db as bdb

ModelOpt = Annotated[str | None, typer.Option(help="override the experiment's model")]
DatasetOpt = Annotated[
    str | None, typer.Option(help="override the data set (e.g. mnist, cifar10-jpeg)")
]
PresetOpt = Annotated[str | None, typer.Option(help="training preset [default: the experiment's]")]
EpochsOpt = Annotated[int | None, typer.Option(min=1)]
BatchOpt = Annotated[int | None, typer.Option(min=1)]
LrOpt = Annotated[float | None, typer.Option(min=0.0)]
StepsOpt = Annotated[int | None, typer.Option(min=0, help="inner PGD steps")]
PlotDirOpt = Annotated[
    Path | None, typer.Option(help="where figures go [default $BENCH_HOME/plots]")
]
OnlyOpt = Annotated[str | None, typer.Option(help="comma-separated defenses to keep")]


def _overrides(
    model: str | None,
    dataset: str | None,
    preset: str | None,
    epochs: int | None,
    batch_size: int | None,
    lr: float | None,
    train_steps: int | None,
    train_subset: int | None,
    test_subset: int | None,
    monitor_subset: int | None,
    seed: int,
    unlabelled: str | None,
    only: str | None,
) -> bexp.Overrides:
    return bexp.Overrides(
        model=model,
        dataset=dataset,
        preset=preset,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        train_steps=train_steps,
        train_subset=train_subset,
        test_subset=test_subset,
        monitor_subset=monitor_subset,
        seed=seed,
        unlabelled=unlabelled,
        only=tuple(split_list(only or "")),
    )


@app.command()
@clean_errors
@placing_options
def experiment(
    name: Annotated[str, typer.Argument(help="experiment name (bench ls experiments)")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list the jobs only")] = False,
    model: ModelOpt = None,
    dataset: DatasetOpt = None,
    preset: PresetOpt = None,
    epochs: EpochsOpt = None,
    batch_size: BatchOpt = None,
    lr: LrOpt = None,
    train_steps: StepsOpt = None,
    train_subset: TrainSubOpt = None,
    test_subset: TestSubOpt = None,
    monitor_subset: MonitorOpt = None,
    val_subset: ValOpt = None,
    precision: PrecisionOpt = "fp32",
    seed: int = 0,
    seeds: SeedsOpt = None,
    unlabelled: UnlabOpt = None,
    only: OnlyOpt = None,
    plot_dir: PlotDirOpt = None,
    threads: ThreadsOpt = None,
    oversubscribe: OversubscribeOpt = False,
    device: DeviceOpt = None,
    db: DbOpt = None,
    runs_dir: RunsDirOpt = None,
    data_root: RootOpt = None,
    progress: ProgressOpt = True,
    status: StatusOpt = False,
    placing: tuple[str, Options] | None = None,
) -> None:
    """Run a named experiment (a table or figure of the paper): what is missing is done.

    Several workers (processes, machines) may run the same command on one database: each
    job is trained and evaluated by one of them, and a job whose worker died is resumed.
    `--executor local|slurm|ray` places the jobs on worker processes, SLURM or Ray instead
    of running them here; `--status` shows their progress and where they were placed.
    """
    ov = _overrides(
        model,
        dataset,
        preset,
        epochs,
        batch_size,
        lr,
        train_steps,
        train_subset,
        test_subset,
        monitor_subset,
        seed,
        unlabelled,
        only,
    )
    ov = dataclasses.replace(
        ov, seeds=tuple(parse_seeds(seeds, seed)), precision=precision, val_subset=val_subset
    )
    check_cores("--threads", threads, oversubscribe)
    job_list = bexp.expand(name, ov, data_root)
    engine = bdb.connect(db)
    _describe(engine, name, ov, job_list, status)
    if dry_run or status:
        return
    where = {
        "runs_dir": runs_dir,
        "data_root": data_root,
        "device": provenance.check_device(device),
        "progress": progress,
        "runtime": train_runtime.Runtime(threads=threads),
    }
    if placing is not None:
        pl.run_jobs(engine, job_list, placing, **where)
        if placing[1].wait:
            _render(engine, name, job_list, plot_dir)
        return
    experiment_jobs.run_experiment(engine, job_list, on_job=announce, **where)
    _render(engine, name, job_list, plot_dir)


def _describe(
    engine: Engine, name: str, ov: bexp.Overrides, job_list: list[bexp.Job], status: bool
) -> None:
    """The experiment, its settings and a line per job (``--status``: where it was placed)."""
    exp = bexp.EXPERIMENTS.get(name)
    typer.echo(f"{name}: {exp.description} ({exp.source}); {len(job_list)} job(s)")
    m, d, p = bexp.settings(exp, ov)
    typer.echo(f"  model {m}, data set {d}, preset {p}; attacks {', '.join(exp.attacks)}")
    describe = executors.status_lines if status else experiment_jobs.describe_jobs
    for line in describe(engine, job_list):
        typer.echo(f"  {line}")


def announce(job: bexp.Job, stage: str) -> None:
    """What a worker says as it takes a job on, or finds another worker on it."""
    if stage == "start":
        typer.echo(f"== {job.spec.name} ({job.role})", err=True)
    elif stage == "busy":
        typer.echo(f"   {job.spec.name}: another worker is on it; back to it later", err=True)


def _render(engine, name: str, job_list: list[bexp.Job], plot_dir: Path | None) -> None:
    plot_dir = plot_dir or home() / "plots"
    exp = bexp.EXPERIMENTS.get(name)
    names = [j.spec.name for j in job_list if j.role == "run"]
    if exp.kind in plots.PLOTTERS:
        path = plots.plot_experiment(engine, name, job_list, plot_dir)
        typer.echo(f"wrote {path} (caption in {path.with_suffix('.txt')})")
    elif exp.kind == "table5":
        typer.echo(render_table5(engine, runs=names))
    else:
        typer.echo(render_paper(engine, 4 if exp.kind == "table4" else 2, runs=names))


CURVES = "curves"  # `bench plot curves RUN...`: training curves of runs, not an experiment


@app.command()
@clean_errors
def plot(
    name: Annotated[
        str,
        typer.Argument(
            help="a figure experiment (fig2-ablation, fig2-lambda), or `curves` followed by "
            "run names: their training curves"
        ),
    ],
    runs: Annotated[
        list[str] | None, typer.Argument(help="with `curves`: the runs to draw", show_default=False)
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="output folder [default $BENCH_HOME/plots]; with `curves`, the PNG file "
            "[default $BENCH_HOME/plots/curves.png]"
        ),
    ] = None,
    model: ModelOpt = None,
    dataset: DatasetOpt = None,
    preset: PresetOpt = None,
    epochs: EpochsOpt = None,
    batch_size: BatchOpt = None,
    lr: LrOpt = None,
    train_steps: StepsOpt = None,
    train_subset: TrainSubOpt = None,
    test_subset: TestSubOpt = None,
    monitor_subset: MonitorOpt = None,
    precision: PrecisionOpt = "fp32",
    seed: int = 0,
    seeds: SeedsOpt = None,
    only: OnlyOpt = None,
    allow_missing: Annotated[
        bool, typer.Option("--allow-missing", help="draw what there is when runs are missing")
    ] = False,
    db: DbOpt = None,
    data_root: RootOpt = None,
) -> None:
    """Render a figure of the paper from the database (same overrides as `experiment`), or
    the training curves of runs (`bench plot curves RUN [RUN...] --out FILE.png`)."""
    engine = existing_db(db)
    if name == CURVES:
        _curves(engine, runs or [], out)
        return
    if runs:
        raise ValueError(f"{name} takes no run names (only `bench plot curves RUN...` does)")
    out = out or home() / "plots"
    ov = _overrides(
        model,
        dataset,
        preset,
        epochs,
        batch_size,
        lr,
        train_steps,
        train_subset,
        test_subset,
        monitor_subset,
        seed,
        None,
        only,
    )
    ov = dataclasses.replace(ov, seeds=tuple(parse_seeds(seeds, seed)), precision=precision)
    job_list = bexp.expand(name, ov, data_root)
    missing = plots.missing_runs(engine, [j.spec.name for j in job_list if j.role == "run"])
    if missing and not allow_missing:
        raise LookupError(
            f"{len(missing)} of the figure's runs are missing or unfinished ({missing[0]} ...): "
            f"run `bench experiment {name}` with the same options, or pass --allow-missing"
        )
    path = plots.plot_experiment(engine, name, job_list, out)
    typer.echo(f"wrote {path} (caption in {path.with_suffix('.txt')})")


def _curves(engine, runs: list[str], out: Path | None) -> None:
    out = out or home() / "plots" / "curves.png"
    if out.suffix.lower() != ".png":
        raise ValueError(f"--out {out}: `bench plot curves` writes a PNG file; name it *.png")
    path = runplots.plot_curves(engine, runs, out)
    typer.echo(f"wrote {path} (caption in {path.with_suffix('.txt')})")
