"""The cost of a training job, said before the work: after the first batches of the first
epoch this process trains, the whole job's time on this machine is estimated from them."""

from __future__ import annotations

from bench.spec.run import RunSpec

AFTER_BATCHES = 10  # measured over batches 2..AFTER_BATCHES (the first pays for warm-up)
GPU_SIZED_HOURS = 12.0  # a CPU estimate beyond this says the job is sized for a GPU


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    hours = seconds / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"


def estimate_line(
    spec: RunSpec, epochs_left: int, per_batch: float, batches: int, device: str
) -> str:
    """One line: the training time left (epochs x measured time per epoch, without the
    per-epoch monitor), and on a CPU, for a job far beyond it, what to do instead."""
    per_epoch = per_batch * batches
    total = per_epoch * epochs_left
    line = (
        f"estimate: {_duration(total)} of training for {epochs_left} epoch(s) on this machine "
        f"({_duration(per_epoch)} per epoch from the first {AFTER_BATCHES} batches), plus the "
        "per-epoch monitor and the evaluation"
    )
    if device == "cpu" and total > GPU_SIZED_HOURS * 3600:
        line += (
            "; this job is sized for a GPU: consider --device cuda, a --train-subset, or a "
            "smaller preset (continuing, as asked)"
        )
    return line
