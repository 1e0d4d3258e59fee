"""What each job placed on SLURM or Ray asks for: options both engines share."""

from __future__ import annotations

from dataclasses import dataclass

from bench.core.flags import option


@dataclass(frozen=True)
class Resources:
    """What each placed job asks of SLURM or Ray."""

    gpus_per_job: int = option(
        0, "--gpus-per-job", "slurm, ray: GPUs each job asks for", "GPUS_PER_JOB", 0
    )
    cpus_per_job: int = option(
        1, "--cpus-per-job", "slurm, ray: CPUs each job asks for", "CPUS_PER_JOB", 1
    )
