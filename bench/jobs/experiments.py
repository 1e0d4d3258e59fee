"""Running named experiments: their jobs' status, and what is missing trained and evaluated.

The experiments themselves (arms, settings, expansion into specs) are specs, in
bench/spec/experiments.py; running one is ``train_job`` and ``eval_job`` over its jobs,
which skip finished work, so running it again continues where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bench.core.constants import CHECKPOINTS
from bench.jobs.evaluate import eval_job
from bench.jobs.train import train_job
from bench.spec.experiments import Job
from bench.store.db import Evaluation, Run


@dataclass(frozen=True)
class JobStatus:
    status: str  # missing | created | running | interrupted | done
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
        return JobStatus(run.status, run.epochs_done, len(done), needed)


def run_experiment(
    engine: Engine,
    job_list: list[Job],
    *,
    runs_dir: Path | None = None,
    device: str = "cpu",
    data_root: str | None = None,
    progress: bool = True,
    on_job: Callable[[Job, str], None] | None = None,
) -> None:
    """Train and evaluate what is missing; finished runs and evaluations are skipped."""
    for job in job_list:
        if on_job is not None:
            on_job(job, "start")
        train_job(
            engine,
            job.spec,
            runs_dir=runs_dir,
            device=device,
            data_root=data_root,
            progress=progress,
        )
        if job.attacks:
            eval_job(
                engine,
                job.spec.name,
                attack_names=job.attacks,
                device=device,
                data_root=data_root,
                progress=progress,
            )
        if on_job is not None:
            on_job(job, "done")


def describe_jobs(engine: Engine, job_list: list[Job]) -> list[str]:
    """One line per job for ``--dry-run``: name, role, training and evaluation status."""
    lines = []
    for job in job_list:
        st = job_status(engine, job)
        state = "done" if st.complete else st.status
        what = job.role if job.role != "run" else ", ".join(a.title for a in job.arms)
        lines.append(
            f"{state:<11} {st.epochs_done}/{job.spec.epochs} epochs  "
            f"evals {st.evals_done}/{st.evals_needed}  {job.spec.name}  [{what}]"
        )
    return lines
