"""The executor options `bench experiment` and `bench run` share, and placing their jobs.

Without ``--executor`` a command trains and evaluates its jobs itself, one after another
(as before executors existed). With it, the jobs go to an engine (bench/executors):
``local`` worker processes, SLURM through submitit, or Ray; the command waits for them and
prints how many are done (``--no-wait``: it returns once they are placed, and ``--status``
with the same options shows their progress and the engine's state of each). `bench eval
RUN... --executor` places each run's evaluation the same way (a trained run: its
training is skipped by ``train_job``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from sqlalchemy.orm import Session

from bench.cli.deferred import executors
from bench.core.constants import EVAL_BATCH, RunKind, RunStatus, is_external
from bench.spec.experiments import Job
from bench.spec.run import RunSpec
from bench.store.db import find_run


def run_jobs(
    engine: Any,
    jobs: list[Job],
    placing: tuple[str, Any],
    *,
    runs_dir: Path | None,
    data_root: str | None,
    device: str,
    runtime: Any,
    progress: bool,
) -> None:
    """Place ``jobs`` on the chosen executor; wait (unless --no-wait) and show where each
    job is. A failed or unfinished job: its first error, exit code 1."""
    name, opts = placing
    ctx = executors.context(
        engine,
        runs_dir=runs_dir,
        data_root=data_root,
        device=device,
        runtime=runtime,
        progress=progress,
    )

    def say(text: str) -> None:
        typer.echo(f"[{name}] {text}", err=True)

    try:
        executors.place(executors.check(name, opts), engine, ctx, jobs, opts, say)
    except executors.JobsFailed as e:
        typer.echo(f"error: {' '.join(str(e).split())}", err=True)
        raise typer.Exit(1) from None
    finally:
        for line in executors.status_lines(engine, jobs):
            typer.echo(f"  {line}", err=True)


def place_or_status(
    engine: Any,
    jobs: list[Job],
    placing: tuple[str, Any] | None,
    status: bool,
    **where: Any,
) -> None:
    """``--status``: one line per job (progress, and where it was placed); else place the
    jobs (``run_jobs`` with ``where``: runs_dir, data_root, device, runtime, progress)."""
    if status or placing is None:
        for line in executors.status_lines(engine, jobs):
            typer.echo(line)
        return
    run_jobs(engine, jobs, placing, **where)


def check_eval_defaults(
    tags: list[str] | None, test_subset: int | None, eps: float | None, batch_size: int, seed: int
) -> None:
    """A placed evaluation is a job (run, attacks): the run's own test subset and eps,
    every checkpoint it has, the default batch size and seed."""
    if (tags, test_subset, eps, batch_size, seed) != (None, None, None, EVAL_BATCH, 0):
        raise ValueError(
            "--executor and --status take each run's own test subset and eps, every "
            "checkpoint, the default batch size and seed: drop --checkpoint, --test-subset, "
            "--eps, --batch-size and --seed, or run without them"
        )


def eval_jobs(
    engine: Any, names: list[str], attacks: list[str], options: dict, skip_wrong: bool
) -> list[Job]:
    """`bench eval`'s runs as jobs: each a trained run of ours (its spec names its test
    subset and eps), evaluated on both checkpoints."""
    out = []
    with Session(engine) as s:
        for name in names:
            run = find_run(s, name)
            if run is None:
                raise LookupError(f"no run named {name!r} in the database (see `bench ls runs`)")
            what = "a zoo entry" if is_external(run.spec) else run.status
            if run.spec.get("kind") == RunKind.TRANSFORMED:
                what = "a transformed run: evaluate it without --executor"
            if what != RunStatus.DONE:
                raise ValueError(
                    f"{run.name}: --executor places evaluations of finished runs of ours "
                    f"(this one is {what})"
                )
            out.append(RunSpec.from_dict(run.spec))
    return grid_jobs(out, attacks, options, skip_wrong)


def grid_jobs(specs: list[Any], attacks: list[str], options: dict, skip_wrong: bool) -> list[Job]:
    """`bench run`'s specs as jobs: each seed's run, trained then evaluated."""
    opts = tuple(sorted((a, tuple(sorted(o.items()))) for a, o in options.items()))
    return [Job(spec, tuple(attacks), options=opts, skip_wrong=skip_wrong) for spec in specs]
