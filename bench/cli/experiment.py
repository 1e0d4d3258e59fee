"""``bench experiment`` and ``bench plot``: the paper's tables and figures as named jobs
(and ``bench plot curves RUN...``: training curves of any runs).

Both commands take the same overrides, because the overrides are part of each run's spec:
``bench plot NAME`` with the options given to ``bench experiment NAME`` finds its runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy.engine import Engine

from bench.cli import placing as pl
from bench.cli.common import app, check_cores, clean_errors, existing_db, parse_seeds, split_list
from bench.cli.deferred import executors, experiment_jobs, provenance, train_runtime
from bench.cli.groups import option_group, placing_options
from bench.cli.options import (
    DbOpt,
    DeviceOpt,
    OversubscribeOpt,
    ProgressOpt,
    RootOpt,
    RunsDirOpt,
    StatusOpt,
    ThreadsOpt,
    UnlabOpt,
    ValOpt,
)
from bench.core.flags import option
from bench.core.home import home
from bench.report import plots, runplots
from bench.report.render import render_paper, render_table5
from bench.spec import experiments as bexp
from bench.spec.placement import Options
from bench.store import db as bdb

PlotDirOpt = Annotated[
    Path | None, typer.Option(help="where figures go [default $BENCH_HOME/plots]")
]


@dataclass(frozen=True)
class ExperimentFlags:
    """The settings `experiment` and `plot` both take over an experiment's own (None keeps
    the experiment's), declared once (bench/core/flags.py, bench/cli/groups.py)."""

    model: str | None = option(None, "--model", "override the experiment's model")
    dataset: str | None = option(
        None, "--dataset", "override the data set (e.g. mnist, cifar10-jpeg)"
    )
    preset: str | None = option(None, "--preset", "training preset [default: the experiment's]")
    epochs: int | None = option(None, "--epochs", "epochs to train", low=1)
    batch_size: int | None = option(None, "--batch-size", "training batch size", low=1)
    lr: float | None = option(None, "--lr", "learning rate", low=0)
    train_steps: int | None = option(None, "--train-steps", "inner PGD steps", low=0)
    train_subset: int | None = option(None, "--train-subset", "first N training images", low=1)
    test_subset: int | None = option(None, "--test-subset", "first N test images", low=1)
    monitor_subset: int | None = option(
        None,
        "--monitor-subset",
        "first N test images for the per-epoch monitor that picks 'best' [default: all]",
        low=1,
    )
    precision: str = option(
        "fp32", "--precision", "training arithmetic: fp32, bf16 (autocast; CPU or GPU), fp16 (GPU)"
    )
    seed: int = option(0, "--seed", "the seed (one run per arm)")
    seeds: str | None = option(
        None, "--seeds", "comma-separated seeds, e.g. 0,1,2: one run each (replaces --seed)"
    )
    only: str | None = option(None, "--only", "comma-separated defenses to keep")

    def overrides(self, **more: Any) -> bexp.Overrides:
        """The experiment's ``Overrides`` (``more``: unlabelled, val_subset)."""
        same = ("model", "dataset", "preset", "epochs", "batch_size", "lr", "train_steps")
        same += ("train_subset", "test_subset", "monitor_subset", "seed", "precision")
        return bexp.Overrides(
            **{k: getattr(self, k) for k in same},
            seeds=tuple(parse_seeds(self.seeds, self.seed)),
            only=tuple(split_list(self.only or "")),
            **more,
        )


@app.command()
@clean_errors
@option_group(ExperimentFlags, "flags", after="dry_run")
@placing_options
def experiment(
    name: Annotated[str, typer.Argument(help="experiment name (bench ls experiments)")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="list the jobs only")] = False,
    val_subset: ValOpt = None,
    unlabelled: UnlabOpt = None,
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
    flags: ExperimentFlags = ExperimentFlags(),
) -> None:
    """Run a named experiment (a table or figure of the paper): what is missing is done.

    Several workers (processes, machines) may run the same command on one database: each
    job is trained and evaluated by one of them, and a job whose worker died is resumed.
    `--executor local|slurm|ray` places the jobs on worker processes, SLURM or Ray instead
    of running them here; `--status` shows their progress and where they were placed.
    """
    ov = flags.overrides(unlabelled=unlabelled, val_subset=val_subset)
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
@option_group(ExperimentFlags, "flags", after="out")
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
    flags: ExperimentFlags = ExperimentFlags(),
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
    ov = flags.overrides()
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
