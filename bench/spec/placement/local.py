"""``--executor local``: its options (bench/executors/local.py runs the workers)."""

from __future__ import annotations

from dataclasses import dataclass

from bench.core.flags import option


@dataclass(frozen=True)
class LocalOptions:
    """``--executor local``: worker processes on this machine."""

    workers: int = option(2, "--workers", "--executor local: worker processes", "WORKERS", 1)
