"""``--executor slurm``: its options (bench/executors/slurm.py submits the jobs)."""

from __future__ import annotations

from dataclasses import dataclass

from bench.core.flags import option

SUBMITIT_CLUSTERS = ("slurm", "local")  # local: submitit's LocalExecutor, on this machine


@dataclass(frozen=True)
class SlurmOptions:
    """``--executor slurm``: SLURM through submitit."""

    partition: str | None = option(
        None, "--slurm-partition", "--executor slurm: the partition", "SLURM_PARTITION"
    )
    time_min: int = option(
        60, "--time", "--executor slurm: each job's time limit, minutes", "SLURM_TIME", 1
    )
    array: bool = option(
        True, "--slurm-array/--no-slurm-array", "slurm: one job array, or a job each", "SLURM_ARRAY"
    )
    cluster: str = option(
        "slurm",
        "--submitit-cluster",
        "--executor slurm: slurm, or local (submitit's LocalExecutor: processes on this "
        "machine, for trying it out without a cluster)",
        "SUBMITIT_CLUSTER",
    )


def check_cluster(cluster: str) -> None:
    if cluster not in SUBMITIT_CLUSTERS:
        raise ValueError(
            f"--submitit-cluster must be one of {', '.join(SUBMITIT_CLUSTERS)}, got {cluster!r}"
        )
