"""Running named experiments: their jobs' status, and what is missing trained and evaluated.

The experiments themselves (arms, settings, expansion into specs) are specs, in
bench/spec/experiments.py; running one is ``train_job`` and ``eval_job`` over its jobs,
which skip finished work, so running it again continues where it stopped. Several
workers may run the same experiment on one database: each job is claimed (bench/store/
claims.py), and a worker leaves the jobs others are on for later.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bench.core.constants import CHECKPOINTS, RunStatus
from bench.jobs.evaluate import eval_job
from bench.jobs.train import train_job
from bench.spec.experiments import Job
from bench.spec.run import RunSpec
from bench.store import claims
from bench.store.db import Evaluation, Run
from bench.train.runtime import Runtime

STALLED = "stalled"  # marked running, but its worker's claim expired: the next run resumes it


@dataclass(frozen=True)
class JobStatus:
    status: str  # missing | created | running | stalled | interrupted | failed | done
    epochs_done: int
    evals_done: int
    evals_needed: int

    @property
    def complete(self) -> bool:
        return self.status == "done" and self.evals_done >= self.evals_needed


def job_status(engine: Engine, job: Job) -> JobStatus:
    """How far a job is: training status and evaluations of its current checkpoints."""
    needed = len(job.attacks) * len(CHECKPOINTS)
    with Session(engine) as s:
        run = s.scalars(select(Run).where(Run.key == job.spec.key)).first()
        if run is None:
            return JobStatus("missing", 0, 0, needed)
        evaluated = {
            (e.checkpoint_sha256, e.attack)
            for e in s.scalars(select(Evaluation).where(Evaluation.run_id == run.id))
        }  # an evaluation belongs to the weights it ran on, whichever tag reaches them
        done = {
            (c.tag, a) for c in run.checkpoints for a in job.attacks if (c.sha256, a) in evaluated
        }
        status = run.status
        if status == RunStatus.RUNNING and claims.holder(engine, claims.run_key(run.key)) is None:
            status = STALLED
        return JobStatus(status, run.epochs_done, len(done), needed)


def run_experiment(
    engine: Engine,
    job_list: list[Job],
    *,
    runs_dir: Path | None = None,
    device: str = "cpu",
    data_root: str | None = None,
    progress: bool = True,
    on_job: Callable[[Job, str], None] | None = None,
    runtime: Runtime | None = None,
) -> None:
    """Train and evaluate what is missing; finished runs and evaluations are skipped.

    A job another live worker is on is put back at the end of the queue (``on_job(job,
    "busy")`` the first time); when only such jobs are left, look again every few
    seconds: each is finished by its worker, or taken over here if that worker died.
    """
    pending, deferred, in_a_row = deque(job_list), set[str](), 0
    while pending:
        job = pending.popleft()
        if on_job is not None and job.spec.key not in deferred:
            on_job(job, "start")
        try:
            run_job(engine, job, runs_dir, device, data_root, progress, runtime)
        except (claims.Busy, claims.LeaseLost):
            pending.append(job)
            if on_job is not None and job.spec.key not in deferred:
                on_job(job, "busy")
            deferred.add(job.spec.key)
            in_a_row += 1
            if in_a_row >= len(pending):  # every job left is another worker's now
                time.sleep(claims.poll_seconds(claims.lease_seconds()))
                in_a_row = 0
            continue
        in_a_row = 0
        if on_job is not None:
            on_job(job, "done")


def run_job(
    engine: Engine,
    job: Job,
    runs_dir: Path | None,
    device: str,
    data_root: str | None,
    progress: bool,
    runtime: Runtime | None,
    *,
    wait: bool = False,
) -> None:
    """Train a job's run and evaluate it. Another worker on it: wait for it (``wait``: an
    executor's task for this one job), or raise ``claims.Busy`` (or ``LeaseLost``)."""
    train_job(
        engine,
        job.spec,
        runs_dir=runs_dir,
        device=device,
        data_root=data_root,
        progress=progress,
        runtime=runtime,
        wait=wait,
    )
    if job.attacks:
        eval_job(
            engine,
            job.spec.name,
            attack_names=job.attacks,
            device=device,
            data_root=data_root,
            progress=progress,
            wait=wait,
            attack_options=job.attack_options(),
            skip_wrong=job.skip_wrong,
        )


def describe_jobs(engine: Engine, job_list: list[Job]) -> list[str]:
    """One line per job for ``--dry-run``: name, role, training and evaluation status."""
    lines = []
    for job in job_list:
        st = job_status(engine, job)
        state = "done" if st.complete else st.status
        what = job.role if job.role != "run" else ", ".join(a.title for a in job.arms)
        left = "" if st.complete else training_left(engine, job.spec, st.epochs_done)
        lines.append(
            f"{state:<11} {st.epochs_done}/{job.spec.epochs} epochs  "
            f"evals {st.evals_done}/{st.evals_needed}  {job.spec.name}  [{what}]{left}"
        )
    return lines


def training_left(engine: Engine, spec: RunSpec, done: int) -> str:
    """``  (about T of training left, from ...)``: the remaining epochs times the mean
    stored epoch time of this run, else of runs of the same model, data set, defense,
    precision and training subset; "" when nothing comparable has been timed."""
    left = spec.epochs - done
    if left <= 0:
        return ""
    same = ("model", "dataset", "defense")
    with Session(engine) as s:
        rows = s.scalars(select(Run).where(*(getattr(Run, k) == getattr(spec, k) for k in same)))
        timed = {
            r.key: [m.seconds for m in r.epochs]
            for r in rows
            if r.epochs
            and r.spec.get("precision", "fp32") == spec.precision
            and r.spec.get("train_subset") == spec.train_subset
        }
    own = timed.get(spec.key)
    seconds = own or [t for ts in timed.values() for t in ts]
    if not seconds:
        return ""
    total = left * sum(seconds) / len(seconds)
    source = "its own epochs" if own else f"{len(timed)} similar run(s)"
    return f"  (about {total / 3600:.1f} h of training left, from {source})"
