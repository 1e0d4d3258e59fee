"""What every executor shares: the interface and the registry of engines (their options:
bench/spec/placement/).

The engines are registered by reference (``Registry.add_lazy``): naming one imports its
module, and its third-party engine (submitit, Ray) is imported only when it places work
(``bench.core.lazy.LazyModule``), so neither is needed to run anything else.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from importlib.util import find_spec
from typing import Protocol

from sqlalchemy.engine import Engine

from bench.core.registry import Registry
from bench.executors.work import Context
from bench.spec.experiments import Job
from bench.spec.placement import Options
from bench.store.db import Placement


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
