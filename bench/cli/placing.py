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
from typing import Annotated, Any

import typer
from sqlalchemy.orm import Session

from bench.cli.deferred import executors
from bench.core.constants import EVAL_BATCH, EXTERNAL, RunStatus
from bench.spec.experiments import Job
from bench.spec.run import RunSpec
from bench.store.db import find_run

ExecutorOpt = Annotated[
    str | None,
    typer.Option(
        help="place the jobs on an engine: local (--workers processes here), slurm "
        "(submitit), ray [default: run them in this process, one after another]"
    ),
]
WorkersOpt = Annotated[int, typer.Option(min=1, help="--executor local: worker processes")]
PartitionOpt = Annotated[
    str | None, typer.Option("--slurm-partition", help="--executor slurm: the partition")
]
GpusOpt = Annotated[
    int, typer.Option("--gpus-per-job", min=0, help="slurm, ray: GPUs each job asks for")
]
CpusOpt = Annotated[
    int, typer.Option("--cpus-per-job", min=1, help="slurm, ray: CPUs each job asks for")
]
TimeOpt = Annotated[
    int, typer.Option("--time", min=1, help="--executor slurm: each job's time limit, minutes")
]
ArrayOpt = Annotated[
    bool,
    typer.Option("--slurm-array/--no-slurm-array", help="slurm: one job array, or a job each"),
]
ClusterOpt = Annotated[
    str,
    typer.Option(
        "--submitit-cluster",
        help="--executor slurm: slurm, or local (submitit's LocalExecutor: processes on "
        "this machine, for trying it out without a cluster)",
    ),
]
RayAddressOpt = Annotated[
    str,
    typer.Option(
        "--ray-address",
        help="--executor ray: local (start Ray here), auto (this machine's cluster), "
        "HOST:PORT or ray://HOST:PORT",
    ),
]
ExecutorDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--executor-dir", help="task files and logs of placed jobs [default $BENCH_HOME/executors]"
    ),
]
WaitOpt = Annotated[
    bool,
    typer.Option(
        "--wait/--no-wait",
        help="wait for placed jobs, printing progress (--no-wait: return once placed; "
        "not with ray)",
    ),
]
StatusOpt = Annotated[
    bool,
    typer.Option(
        "--status", help="each job's progress and, if placed, its engine's state; run nothing"
    ),
]


def options(
    executor: str | None,
    workers: int,
    partition: str | None,
    gpus_per_job: int,
    cpus_per_job: int,
    time_min: int,
    array: bool,
    cluster: str,
    ray_address: str,
    executor_dir: Path | None,
    wait: bool,
) -> tuple[str, Any] | None:
    """The executor's name and ``executors.Options`` (checked), or None: run inline. An
    executor option given without ``--executor`` is an error, not silently ignored."""
    opts = executors.Options(
        workers=workers, partition=partition, gpus_per_job=gpus_per_job,
        cpus_per_job=cpus_per_job, time_min=time_min, array=array, cluster=cluster,
        ray_address=ray_address, log_dir=executor_dir, wait=wait,
    )  # fmt: skip
    if executor is None:
        if opts != executors.Options():
            raise ValueError(
                "--workers, --slurm-*, --gpus-per-job, --cpus-per-job, --time, --ray-address, "
                "--executor-dir and --no-wait place jobs: add --executor local|slurm|ray"
            )
        return None
    executors.check(executor, opts)  # an unknown name or a refused option: one line
    return executor, opts


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
        engine, runs_dir=runs_dir, data_root=data_root, device=device, runtime=runtime,
        progress=progress,
    )  # fmt: skip

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
            what = "a zoo entry" if run.spec.get("kind") == EXTERNAL else run.status
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
