"""The ``bench`` command line: one module per command group, all on one Typer app.

``run``/``eval``/``demo`` (bench/cli/run.py), ``table``/``audit`` (report.py), ``ls``,
``show``/``rm`` (inspect.py),
``experiment``/``plot`` (experiment.py) and ``zoo`` (zoo.py). Each module registers its
commands on ``bench.cli.common.app`` when imported here. They import only what loads
without PyTorch, and reach the layers that train, attack or use a device through
``deferred.py``, so ``bench --help``, ``ls``, ``table``, ``show`` and ``rm`` start fast.
"""

from __future__ import annotations

import signal

from bench.cli import demo, experiment, inspect, ls, regress, report, run, sweep, zoo
from bench.cli.common import app, on_sigterm


def main() -> None:
    signal.signal(signal.SIGTERM, on_sigterm)  # as Ctrl-C: say so, record it, exit 143
    app()


__all__ = [
    "app",
    "demo",
    "experiment",
    "inspect",
    "ls",
    "main",
    "regress",
    "report",
    "run",
    "sweep",
    "zoo",
]
