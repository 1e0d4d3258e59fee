"""Where a command's jobs run: each executor's options, declared once.

One dataclass per engine (``local``, ``slurm``, ``ray``, plus ``Resources`` that SLURM and
Ray both ask for); ``Options`` is all of them together with what every engine shares. Each
field's metadata (``Flag``) is its command-line flag, help line and environment variable:
``bench run``, ``eval`` and ``experiment`` take every option through one decorator
(``bench/cli/groups.py``), and each engine (``bench/executors``) reads its own fields. The
module needs neither PyTorch nor the engines, so ``bench CMD --help`` lists every option
without importing them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from bench.core.flags import changed, check_lows, option
from bench.core.home import home

SUBMITIT_CLUSTERS = ("slurm", "local")  # local: submitit's LocalExecutor, on this machine
_ADDRESS = re.compile(r"^(auto|local|[\w.-]+:\d+|ray://[\w.-]+(:\d+)?)$")


@dataclass(frozen=True)
class LocalOptions:
    """``--executor local``: worker processes on this machine."""

    workers: int = option(2, "--workers", "--executor local: worker processes", "WORKERS", 1)


@dataclass(frozen=True)
class Resources:
    """What each placed job asks of SLURM or Ray."""

    gpus_per_job: int = option(
        0, "--gpus-per-job", "slurm, ray: GPUs each job asks for", "GPUS_PER_JOB", 0
    )
    cpus_per_job: int = option(
        1, "--cpus-per-job", "slurm, ray: CPUs each job asks for", "CPUS_PER_JOB", 1
    )


@dataclass(frozen=True)
class SlurmOptions:
    """``--executor slurm``: SLURM through submitit."""

    partition: str | None = option(
        None, "--slurm-partition", "--executor slurm: the partition", "SLURM_PARTITION"
    )
    time_min: int = option(
        60, "--time", "--executor slurm: each job's time limit, minutes", "SLURM_TIME", 1
    )
    array: bool = option(
        True, "--slurm-array/--no-slurm-array", "slurm: one job array, or a job each", "SLURM_ARRAY"
    )
    cluster: str = option(
        "slurm",
        "--submitit-cluster",
        "--executor slurm: slurm, or local (submitit's LocalExecutor: processes on this "
        "machine, for trying it out without a cluster)",
        "SUBMITIT_CLUSTER",
    )


@dataclass(frozen=True)
class RayOptions:
    """``--executor ray``: Ray tasks."""

    ray_address: str = option(
        "local",
        "--ray-address",
        "--executor ray: local (start Ray here), auto (this machine's cluster), HOST:PORT or "
        "ray://HOST:PORT",
        "RAY_ADDRESS",
    )


@dataclass(frozen=True)
class Options(RayOptions, Resources, SlurmOptions, LocalOptions):  # fields: local first
    """How to place jobs: every engine's options and what they share; each engine reads
    the fields that concern it."""

    log_dir: Path | None = option(
        None,
        "--executor-dir",
        "task files and logs of placed jobs [default $BENCH_HOME/executors]",
        "EXECUTOR_DIR",
    )
    wait: bool = option(
        True,
        "--wait/--no-wait",
        "wait for placed jobs, printing progress (--no-wait: return once placed; not with ray)",
        "WAIT",
    )
    poll: float = 2.0  # seconds between looks while waiting (not an option: tests set it)

    def __post_init__(self) -> None:
        check_lows(self)
        if self.cluster not in SUBMITIT_CLUSTERS:
            raise ValueError(
                f"--submitit-cluster must be one of {', '.join(SUBMITIT_CLUSTERS)}, "
                f"got {self.cluster!r}"
            )
        if not _ADDRESS.match(self.ray_address):
            raise ValueError(
                f"--ray-address must be auto, local, HOST:PORT or ray://HOST[:PORT], "
                f"got {self.ray_address!r}"
            )

    def folder(self) -> Path:
        """Where placed jobs' task files and logs go."""
        return Path(self.log_dir) if self.log_dir is not None else home() / "executors"

    def changed(self) -> list[str]:
        """The flags set away from their defaults (placing options given without an
        executor are an error, not silently ignored)."""
        return changed(self)


@dataclass(frozen=True)
class Placing:
    """A command's ``--executor`` choice and its options; ``executor`` None: the command
    runs its jobs itself, one after another."""

    executor: str | None = option(
        None,
        "--executor",
        "place the jobs on an engine: local (--workers processes here), slurm (submitit), ray "
        "[default: run them in this process, one after another]",
        "EXECUTOR",
    )
    options: Options = field(default_factory=Options)
