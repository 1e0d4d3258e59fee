"""Jobs: specs become trained runs and evaluation rows in the database (controllers).

``train_job`` and ``eval_job`` are the only ways work is done; experiments, the model zoo
and auxiliary runs (pseudo-labellers, transfer surrogates) all go through them.
"""

from __future__ import annotations

from bench.jobs.evaluate import eval_job, run_checkpoint_tags
from bench.jobs.train import train_job

__all__ = ["eval_job", "run_checkpoint_tags", "train_job"]
