"""``--executor local --workers N``: N worker processes on this machine, one database.

Each worker (``python -m bench.executors.work TASK.pkl``) runs the whole job list the way
``bench experiment`` does: it claims a job nobody holds, trains and evaluates it, moves on
past jobs another worker holds and comes back to them until every job is done. A worker
killed with kill -9 stops renewing its claim; once the lease has expired another worker
resumes its run after the last recorded epoch. The workers start in their own session, so
they keep going after ``--no-wait`` returns (or the terminal closes).
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
from pathlib import Path

from sqlalchemy.engine import Engine

from bench.executors.base import Options
from bench.executors.work import Context, with_threads, write_task
from bench.spec.experiments import Job
from bench.store import placements
from bench.store.db import Placement
from bench.train.runtime import usable_cores


class LocalExecutor:
    name = "local"

    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[Path] = []
        self.ids: list[int] = []
        self.shown = ""
        self.engine: Engine | None = None

    def submit(self, engine: Engine, ctx: Context, jobs: list[Job]) -> None:
        n = self.opts.workers
        ctx = with_threads(ctx, max(1, usable_cores() // n))  # share the cores
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        folder = (self.opts.folder() / f"local-{stamp}-{os.getpid()}").resolve()
        task = write_task(folder / "task.pkl", ctx, jobs)
        for i in range(n):
            self.logs.append(folder / f"worker{i}.log")
            with self.logs[-1].open("wb") as log:
                self.procs.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "bench.executors.work", str(task)],
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        pids = ",".join(str(p.pid) for p in self.procs)
        where = f"{socket.gethostname()}:{folder}"
        self.ids = placements.record(
            engine,
            [
                placements.Placed(j.spec.key, j.spec.name, self.name, pids, where, "RUNNING")
                for j in jobs
            ],
        )
        self.engine = engine

    def running(self) -> bool:
        alive = sum(p.poll() is None for p in self.procs)
        state = f"RUNNING ({alive}/{len(self.procs)} workers)" if alive else self._exited()
        if state != self.shown and self.engine is not None:
            placements.set_state(self.engine, self.ids, state)
            self.shown = state
        return alive > 0

    def _exited(self) -> str:
        codes = sorted({p.returncode for p in self.procs})
        return "EXITED" if codes == [0] else f"EXITED (codes {','.join(map(str, codes))})"

    def failures(self) -> list[str]:
        return [
            f"local worker {p.pid} exited with code {p.returncode} (log: {log})"
            for p, log in zip(self.procs, self.logs, strict=True)
            if p.returncode not in (0, None)
        ]

    def close(self) -> None:
        pass

    @staticmethod
    def state(placement: Placement) -> str:
        """Which of the workers are alive (seen from their host), else the state recorded."""
        host = placement.location.split(":", 1)[0]
        if host != socket.gethostname():
            return f"{placement.state} (workers on {host})"
        pids = [int(p) for p in placement.external_id.split(",") if p.isdigit()]
        alive = [p for p in pids if _alive(p)]
        if alive:
            return f"RUNNING (workers {','.join(map(str, alive))} alive)"
        return placement.state if placement.state.startswith("EXITED") else "EXITED"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a worker that exited but was not waited for yet is a zombie: not alive
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] != "Z"
    except OSError:
        return True
