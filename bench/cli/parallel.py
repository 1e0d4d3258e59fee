"""``bench run --nproc N`` and ``torchrun ... bench run``: each run trained by a process group.

Rank 0 is the command as it runs alone (claims, database rows, checkpoints, evaluation);
ranks 1.. follow it (``bench.train.loop.follow``) and write nothing. ``--nproc N``
spawns the N processes on this machine; under torchrun (``RANK`` and ``WORLD_SIZE`` set)
each process joins torchrun's group instead. bench/train/distributed.py has the rest.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

import typer

from bench.cli.common import clean_errors
from bench.cli.deferred import train_loop, train_processes
from bench.store import db as bdb


def torchrun_size() -> int:
    """The group torchrun started this process in (1: none)."""
    return int(os.environ.get("WORLD_SIZE", "1")) if "RANK" in os.environ else 1


def check_nproc(nproc: int | None) -> int:
    """``--nproc`` checked: at least 1, and torchrun's ``WORLD_SIZE`` when under torchrun."""
    if nproc is not None and nproc < 1:
        raise ValueError(f"--nproc must be at least 1, got {nproc}")
    size = torchrun_size()
    if size > 1 and nproc not in (None, size):
        raise ValueError(f"--nproc {nproc} under torchrun with WORLD_SIZE {size}: leave it out")
    return size if size > 1 else nproc or 1


def train_in_group(work: Callable[[Any], None], db: str | None, nproc: int, device: str) -> None:
    """``work(engine)`` here alone, or on rank 0 of ``nproc`` processes."""
    if nproc == 1:
        work(bdb.connect(db))
        return
    lead = partial(_lead, work, db)
    if torchrun_size() > 1:
        with train_processes.joined(device) as group:
            (lead if group.rank == 0 else _follow)()
        return
    code = train_processes.launch(nproc, device, lead, _follow)
    if code:
        raise typer.Exit(code)  # rank 0 said why


def _lead(work: Callable[[Any], None], db: str | None) -> None:
    """Rank 0, in its own process: the command's error boundary, as its exit code."""
    try:
        clean_errors(lambda: work(bdb.connect(db)))()
    except typer.Exit as e:
        sys.exit(e.exit_code)


def _follow() -> None:
    try:
        train_loop.follow()
    except KeyboardInterrupt:  # rank 0 reports the interruption
        sys.exit(130)
