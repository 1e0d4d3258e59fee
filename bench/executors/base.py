"""What every executor shares: its options, the interface, and the registry of engines.

The engines are registered by reference (``Registry.add_lazy``): naming one imports its
module, and its third-party engine (submitit, Ray) is imported only when it places work
(``bench.core.lazy.LazyModule``), so neither is needed to run anything else.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Protocol

from sqlalchemy.engine import Engine

from bench.core.home import home
from bench.core.registry import Registry
from bench.executors.work import Context
from bench.spec.experiments import Job
from bench.store.db import Placement

SUBMITIT_CLUSTERS = ("slurm", "local")  # local: submitit's LocalExecutor, on this machine
_ADDRESS = re.compile(r"^(auto|local|[\w.-]+:\d+|ray://[\w.-]+(:\d+)?)$")


@dataclass(frozen=True)
class Options:
    """How to place jobs; each engine reads the options that concern it."""

    workers: int = 2  # local: worker processes
    partition: str | None = None  # slurm: --partition
    gpus_per_job: int = 0  # slurm, ray
    cpus_per_job: int = 1  # slurm, ray
    time_min: int = 60  # slurm: the time limit of each job, minutes
    array: bool = True  # slurm: one job array rather than one job each
    cluster: str = "slurm"  # submitit: slurm, or local (its LocalExecutor, for tests)
    ray_address: str = "local"  # ray: local (start one here), auto, host:port, ray://...
    log_dir: Path | None = None  # default $BENCH_HOME/executors
    wait: bool = True  # wait for the jobs, printing progress
    poll: float = 2.0  # seconds between looks while waiting

    def __post_init__(self) -> None:
        for name, low in (("workers", 1), ("gpus_per_job", 0), ("cpus_per_job", 1),
                          ("time_min", 1)):  # fmt: skip
            if getattr(self, name) < low:
                flag = "--time" if name == "time_min" else "--" + name.replace("_", "-")
                raise ValueError(f"{flag} must be >= {low}, got {getattr(self, name)}")
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


def require(module: str, executor: str) -> None:
    """A one-line error when the engine's package is not installed (checked before any
    work, without importing it)."""
    if find_spec(module) is None:
        raise ValueError(
            f"--executor {executor} needs the {module} package: pip install -e '.[cluster]' "
            f"(or pip install {module})"
        )


class Executor(Protocol):
    """An engine that places jobs; it never decides what is done (the claims do)."""

    name: str

    def submit(self, engine: Engine, ctx: Context, jobs: list[Job]) -> None:
        """Hand the jobs to the engine and record where each went (``placements``)."""

    def running(self) -> bool:
        """Whether any placed job is still going (and record the states seen)."""

    def failures(self) -> list[str]:
        """One line per job or worker that failed, once nothing is running."""

    def close(self) -> None:
        """Let go of the engine (a Ray instance started here is stopped)."""


class ExecutorType(Protocol):
    def __call__(self, opts: Options) -> Executor: ...

    def state(self, placement: Placement) -> str:
        """The engine's state of a placed job, as seen now from any process."""


EXECUTORS: Registry[ExecutorType] = Registry("executor")
EXECUTORS.add_lazy("local", "bench.executors.local:LocalExecutor")
EXECUTORS.add_lazy("slurm", "bench.executors.slurm:SlurmExecutor")
EXECUTORS.add_lazy("ray", "bench.executors.ray_tasks:RayExecutor")


@contextlib.contextmanager
def owner_only() -> Iterator[None]:
    """Files and folders created inside are readable by their owner only (umask 077): for
    what holds the database URL, which may carry a password."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)
