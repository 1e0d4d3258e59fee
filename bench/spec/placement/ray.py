"""``--executor ray``: its options (bench/executors/ray_tasks.py runs the tasks)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bench.core.flags import option

_ADDRESS = re.compile(r"^(auto|local|[\w.-]+:\d+|ray://[\w.-]+(:\d+)?)$")


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


def check_address(address: str) -> None:
    if not _ADDRESS.match(address):
        raise ValueError(
            f"--ray-address must be auto, local, HOST:PORT or ray://HOST[:PORT], got {address!r}"
        )
