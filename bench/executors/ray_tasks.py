"""``--executor ray``: each job a Ray task asking for ``--cpus-per-job`` and
``--gpus-per-job``; Ray places it on a node with them free.

``--ray-address local`` starts a Ray instance on this machine for the command (stopped at
the end), ``auto`` joins the cluster this machine is part of (``ray start``), and
``HOST:PORT`` / ``ray://HOST:PORT`` a given one. A process that already called
``ray.init`` (a test, a notebook) is used as it is. The task runs ``run_placed``: the job
goes through its claims like any other worker's, so Ray only decides where it runs.
Ray tasks end with the driver that submitted them, so this executor always waits.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine

from bench.core.lazy import LazyModule
from bench.executors.base import Options, require
from bench.executors.work import Context, run_placed, with_threads
from bench.spec.experiments import Job
from bench.store import placements
from bench.store.db import Placement

if TYPE_CHECKING:
    import ray
else:
    ray = LazyModule("ray")  # imported when jobs are placed


class RayExecutor:
    name = "ray"

    def __init__(self, opts: Options) -> None:
        require("ray", self.name)
        if not opts.wait:
            raise ValueError(
                "--no-wait with --executor ray: Ray tasks end with the command that "
                "submitted them; use --executor local or slurm to detach"
            )
        self.opts = opts
        self.refs: list[Any] = []  # ray.ObjectRef
        self.ids: list[int] = []
        self.names: list[str] = []
        self.errors: list[str] = []
        self.finished: set[int] = set()
        self.started = False  # whether this executor started the Ray instance
        self.engine: Engine | None = None

    def _connect(self) -> str:
        if ray.is_initialized():
            return "this process's Ray"
        address = self.opts.ray_address
        reachable(address)
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
        self.started = True
        return f"ray {address}"

    def submit(self, engine: Engine, ctx: Context, jobs: list[Job]) -> None:
        where = self._connect()
        ctx = with_threads(ctx, self.opts.cpus_per_job)
        task = ray.remote(
            num_cpus=self.opts.cpus_per_job, num_gpus=self.opts.gpus_per_job, max_retries=0
        )(run_placed)
        self.refs = [task.remote(ctx, job) for job in jobs]
        self.names, self.engine = [j.spec.name for j in jobs], engine
        self.ids = placements.record(
            engine,
            [
                placements.Placed(j.spec.key, j.spec.name, self.name, ref.task_id().hex(), where)
                for j, ref in zip(jobs, self.refs, strict=True)
            ],
        )

    def running(self) -> bool:
        ready, _ = ray.wait(self.refs, num_returns=len(self.refs), timeout=0)
        for ref in ready:
            i = self.refs.index(ref)
            if i in self.finished:
                continue
            self.finished.add(i)
            try:
                ray.get(ref)
                state = "FINISHED"
            except Exception as e:  # a failed task: its error, shown once all are done
                state = "FAILED"
                last = str(e).strip().splitlines()[-1:] or [type(e).__name__]
                self.errors.append(f"{self.names[i]}: ray task failed: {last[0][:300]}")
            if self.engine is not None:
                placements.set_state(self.engine, [self.ids[i]], state)
        return len(self.finished) < len(self.refs)

    def failures(self) -> list[str]:
        return list(self.errors)

    def close(self) -> None:
        if self.started:
            ray.shutdown()

    @staticmethod
    def state(placement: Placement) -> str:
        """The state recorded by the command that placed the task (SUBMITTED, FINISHED,
        FAILED): a Ray task does not outlive that command."""
        return placement.state


CONNECT_SECONDS = 10.0


def reachable(address: str) -> None:
    """A ``host:port`` (or ``ray://host:port``) address answers within ``CONNECT_SECONDS``,
    else one line naming it: Ray itself would retry for ever. ``local`` and ``auto`` are
    Ray's own to resolve."""
    if address in ("local", "auto") or ":" not in address:
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), CONNECT_SECONDS):
            pass
    except ValueError:
        raise ValueError(f"--ray-address {address}: the port is not a number") from None
    except OSError as e:
        why = e.strerror or type(e).__name__
        raise ValueError(
            f"--ray-address {address}: nothing answers there within {CONNECT_SECONDS:g} s "
            f"({why}); start Ray there (ray start --head) or use --ray-address local"
        ) from None
