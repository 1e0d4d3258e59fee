"""Executors: place a command's jobs on an engine people already run.

``bench experiment NAME --executor local|slurm|ray`` (and ``bench run ... --executor``)
hands each job (a run to train and the attacks to evaluate it with) to an engine: N
worker processes here (``local``), SLURM through submitit (``slurm``), or Ray tasks
(``ray``). Every engine runs the same ``train_job`` and ``eval_job`` through the same
claims (``work.py``), so an engine only decides where a job runs, never what is done.
Where each job went is recorded (``placements``), and ``--status`` shows it beside the
database's own progress. docs/executors.md says what is exercised where.
"""

from __future__ import annotations

from bench.executors.base import EXECUTORS, Executor, Options
from bench.executors.drive import JobsFailed, check, place, status_lines
from bench.executors.work import Context, context, run_placed

__all__ = [
    "EXECUTORS",
    "Context",
    "Executor",
    "JobsFailed",
    "Options",
    "check",
    "context",
    "place",
    "run_placed",
    "status_lines",
]
