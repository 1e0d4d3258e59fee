"""The ``bench`` command line: one module per command group, all on one Typer app.

``run``/``eval``/``demo`` (bench/cli/run.py), ``table``/``audit`` (report.py), ``ls``,
``show``/``rm`` (inspect.py),
``experiment``/``plot`` (experiment.py) and ``zoo`` (zoo.py). Each module registers its
commands on ``bench.cli.common.app`` when imported here.
"""

from __future__ import annotations

from bench.cli import experiment, inspect, ls, regress, report, run, zoo
from bench.cli.common import app


def main() -> None:
    app()


__all__ = ["app", "experiment", "inspect", "ls", "main", "regress", "report", "run", "zoo"]
