"""``--executor slurm``: each job a SLURM job (or one task of a job array), via submitit.

submitit pickles ``run_placed`` with the job and the context, writes an sbatch script
asking for ``--time``, ``--gpus-per-job``, ``--cpus-per-job`` and ``--slurm-partition``,
and the node runs the job through its claims like any other worker. Logs and pickles go
to ``--log-dir`` (default ``$BENCH_HOME/executors/submitit``). ``--submitit-cluster
local`` hands the same jobs to submitit's LocalExecutor instead (processes on this
machine): that is what the tests exercise, since no SLURM cluster is reachable here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine

from bench.core.lazy import LazyModule
from bench.executors.base import Options, owner_only, require
from bench.executors.work import Context, run_placed, with_threads
from bench.spec.experiments import Job
from bench.store import placements
from bench.store.db import Placement

if TYPE_CHECKING:
    import submitit
else:
    submitit = LazyModule("submitit")  # imported when a job is placed or looked at


class SlurmExecutor:
    name = "slurm"

    def __init__(self, opts: Options) -> None:
        require("submitit", self.name)
        if opts.cluster == "slurm" and shutil.which("sbatch") is None:
            raise ValueError(
                "--executor slurm: no sbatch on PATH, so this is not a SLURM login node "
                "(--submitit-cluster local runs the jobs through submitit on this machine)"
            )
        self.opts = opts
        self.jobs: list[Any] = []  # submitit.Job
        self.names: list[str] = []
        self.ids: list[int] = []
        self.shown: list[str] = []
        self.engine: Engine | None = None

    def _executor(self) -> Any:
        folder = (self.opts.folder() / "submitit").resolve()
        cluster = self.opts.cluster
        try:
            ex = submitit.AutoExecutor(folder=folder / "%j", cluster=cluster)
        except RuntimeError as e:  # submitit found no srun
            raise ValueError(f"--executor slurm: {e}") from None
        params: dict[str, Any] = {
            "timeout_min": self.opts.time_min,
            "gpus_per_node": self.opts.gpus_per_job,
            "cpus_per_task": self.opts.cpus_per_job,
            "name": "bench",
        }
        if cluster == "slurm" and self.opts.partition:
            params["slurm_partition"] = self.opts.partition
        ex.update_parameters(**params)
        return ex

    def submit(self, engine: Engine, ctx: Context, jobs: list[Job]) -> None:
        ex = self._executor()
        ctx = with_threads(ctx, self.opts.cpus_per_job)
        try:
            # submitit pickles ctx, and with it the database URL (its password too), into
            # *_submitted.pkl: whatever is written while submitting is for this user alone.
            with owner_only():
                if self.opts.array:
                    with ex.batch():
                        pending = [ex.submit(run_placed, ctx, job) for job in jobs]
                else:
                    pending = [ex.submit(run_placed, ctx, job) for job in jobs]
        except FileNotFoundError as e:  # no sbatch on PATH: not a SLURM login node
            raise ValueError(
                f"cannot submit to SLURM ({e.filename or e}): run on a SLURM login node, or "
                "use --executor local"
            ) from None
        self.jobs, self.names, self.engine = pending, [j.spec.name for j in jobs], engine
        where = f"{self.opts.cluster}:{socket.gethostname()}:{ex.folder}"
        self.ids = placements.record(
            engine,
            [
                placements.Placed(j.spec.key, j.spec.name, self.name, str(sj.job_id), where)
                for j, sj in zip(jobs, pending, strict=True)
            ],
        )
        self.shown = ["SUBMITTED"] * len(pending)

    def running(self) -> bool:
        going = False
        for i, job in enumerate(self.jobs):
            state = str(job.state)
            going = going or not job.done()
            if state != self.shown[i] and self.engine is not None:
                placements.set_state(self.engine, [self.ids[i]], state)
                self.shown[i] = state
        return going

    def failures(self) -> list[str]:
        out = []
        for name, job in zip(self.names, self.jobs, strict=True):
            error = job.exception()
            if error is not None:
                last = str(error).strip().splitlines()[-1:] or [type(error).__name__]
                out.append(
                    f"{name}: submitit job {job.job_id} failed: {last[0][:300]} "
                    f"(log: {job.paths.stderr})"
                )
        return out

    def close(self) -> None:
        pass

    @staticmethod
    def state(placement: Placement) -> str:
        """SLURM: sacct's word (submitit's watcher); submitit's local jobs: its result file,
        or the job's process if it is alive on this host."""
        cluster, host, folder = [*placement.location.split(":", 2), "", ""][:3]
        path = Path(folder.replace("%j", placement.external_id))
        if cluster == "slurm":
            with contextlib.suppress(Exception):  # sacct unreachable: the state recorded
                return str(submitit.SlurmJob(folder=path, job_id=placement.external_id).state)
            return placement.state
        if host == socket.gethostname() and placement.external_id.isdigit():
            with contextlib.suppress(OSError):
                os.kill(int(placement.external_id), 0)
                return "RUNNING"
        job = submitit.LocalJob(folder=path, job_id=placement.external_id)
        state = str(job.state)
        return placement.state if state.startswith("NO PROCESS") else state
