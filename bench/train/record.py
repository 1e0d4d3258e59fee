"""What a training run reports: one line of numbers per finished epoch, and how many
epochs a run folder has finished (its resume state, written by bench/train/loop.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bench.core.constants import STATE_FILE
from bench.store.checkpoints import load_state


@dataclass(frozen=True)
class EpochReport:
    epoch: int  # 1-based count of completed epochs
    lr: float
    train_loss: float
    clean_acc: float
    robust_acc: float
    n_monitor: int
    monitor_attack: dict
    train_seconds: float  # the optimisation loop alone
    seconds: float  # including the monitor evaluation and checkpointing
    best_epoch: int
    best_robust: float
    # --val-subset: the same on the held-out training images (bench/train/selection.py)
    val_clean_acc: float | None = None
    val_robust_acc: float | None = None
    n_val: int = 0
    best_val_epoch: int = 0


class Interrupted(RuntimeError):
    """Raised by ``stop_after`` in tests to simulate a killed run."""


def completed_epochs(run_dir: Path) -> int:
    """Epochs a run directory has finished (0 when it has no usable resume state)."""
    path = run_dir / STATE_FILE
    return int(load_state(path).get("epoch", 0)) if path.exists() else 0
