"""Which weights a run keeps, and the points they are chosen on.

After every epoch the loop measures clean and PGD-20 accuracy on the monitored test points
(the first ``--monitor-subset`` of the test set) and, with ``--val-subset N``, on the last N
training images, which are held out of training. It then writes

- ``last``: this epoch's weights;
- ``best``: the epoch with the highest PGD-20 accuracy on the monitored *test* points, the
  papers' convention (MART, TRADES: "best" is chosen on the test set, which flatters it);
- ``best-val``: the epoch with the highest PGD-20 accuracy on the held-out *training*
  images, a choice that never looks at the test set.

Ties keep the earlier epoch. Tables say which selection each number used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench import data as bdata
from bench.core.constants import MONITOR_ATTACKS, Tag
from bench.eval.loop import EvalResult, robust_points
from bench.spec.run import RunSpec
from bench.store.checkpoints import save_weights

Points = tuple[torch.Tensor, torch.Tensor]


@dataclass
class Selection:
    """The best monitored accuracies so far and their epochs (1-based; 0: none yet)."""

    best_robust: float = -1.0
    best_epoch: int = 0
    val_robust: float = -1.0
    val_epoch: int = 0

    def to_file(self) -> dict[str, Any]:
        return {
            "best_robust": self.best_robust,
            "best_epoch": self.best_epoch,
            "best_val_robust": self.val_robust,
            "best_val_epoch": self.val_epoch,
        }

    @classmethod
    def from_file(cls, state: dict[str, Any]) -> Selection:
        """From a resume state (one written before ``--val-subset`` has no val fields)."""
        return cls(
            state["best_robust"],
            state["best_epoch"],
            state.get("best_val_robust", -1.0),
            state.get("best_val_epoch", 0),
        )


def split_validation(
    spec: RunSpec, x: torch.Tensor, y: torch.Tensor
) -> tuple[Points, Points | None]:
    """(training images, held-out images): the last ``spec.val_subset`` are held out."""
    v = spec.val_subset
    if not v:
        return (x, y), None
    return (x[:-v], y[:-v]), (x[-v:], y[-v:])


def monitor_set(spec: RunSpec, data_root: str | None) -> Points:
    """The test points the best checkpoint is chosen on."""
    test = bdata.subset(*bdata.load_split(spec.dataset, False, data_root), spec.test_subset)
    return bdata.subset(*test, spec.monitor_subset)


def measure(
    model: nn.Module,
    points: Points,
    attack: Any,
    batch: int,
    device: str,
    seed: int,
    progress: bool = False,
) -> tuple[EvalResult, EvalResult]:
    """Clean and monitor-attack accuracy on ``points``."""
    clean = robust_points(model, *points, None, batch_size=batch, device=device)
    desc = f"monitor {MONITOR_ATTACKS[attack.norm]}"  # PGD-20 in the run's norm
    robust = robust_points(
        model,
        *points,
        attack,
        batch_size=batch,
        device=device,
        seed=seed,
        desc=desc,
        progress=progress,
    )
    return clean, robust


def write_checkpoints(
    spec: RunSpec,
    sel: Selection,
    model: nn.Module,
    run_dir: Path,
    epoch: int,
    robust_acc: float,
    val_robust_acc: float | None,
) -> None:
    """Write ``last`` every epoch, ``best`` and ``best-val`` when their accuracy improves
    (``epoch`` is 0-based here; files and ``sel`` count from 1)."""
    done = epoch + 1
    targets = [(Tag.LAST.value, robust_acc)]
    if robust_acc > sel.best_robust:
        sel.best_robust, sel.best_epoch = robust_acc, done
        targets.append((Tag.BEST.value, robust_acc))
    if val_robust_acc is not None and val_robust_acc > sel.val_robust:
        sel.val_robust, sel.val_epoch = val_robust_acc, done
        targets.append((Tag.BEST_VAL.value, val_robust_acc))
    for tag, acc in targets:
        # robust_acc: the monitored accuracy the checkpoint row shows (for best-val, on the
        # held-out images)
        meta = {"run": spec.name, "epoch": str(done), "robust_acc": repr(acc)}
        save_weights(model, run_dir / f"{tag}.safetensors", meta)
