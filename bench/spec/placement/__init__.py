"""Where a command's jobs run: each executor's options, declared once.

One dataclass per engine, each in its own file (``local.py``, ``slurm.py``, ``ray.py``, and
``resources.py``: what SLURM and Ray both ask for); ``Options`` is all of them together
with what every engine shares. Each field's metadata (``Flag``) is its command-line flag,
help line and environment variable: ``bench run``, ``eval`` and ``experiment`` take every
option through one decorator (``bench/cli/groups.py``), and each engine
(``bench/executors``) reads its own fields. The package needs neither PyTorch nor the
engines, so ``bench CMD --help`` lists every option without importing them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.core.flags import changed, check_lows, option
from bench.core.home import home
from bench.spec.placement.local import LocalOptions
from bench.spec.placement.ray import RayOptions, check_address
from bench.spec.placement.resources import Resources
from bench.spec.placement.slurm import SlurmOptions, check_cluster


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
        check_cluster(self.cluster)
        check_address(self.ray_address)

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
