"""The one attack loop: run an attack over a test set in batches and record, per point,
whether the model is still correct. Every evaluation (and the per-epoch monitor) uses it."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from attacks.base import AttackFn
from bench.core.constants import EVAL_BATCH


@dataclass(frozen=True)
class EvalResult:
    robust: np.ndarray  # bool per test point
    seconds: float

    @property
    def n(self) -> int:
        return int(self.robust.size)

    @property
    def correct(self) -> int:
        return int(self.robust.sum())

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else float("nan")


def to_float(x: Tensor) -> Tensor:
    """uint8 images -> float in [0, 1] (no mean/std normalisation, docs/reference.md §1.3)."""
    return x.float().div_(255.0) if x.dtype == torch.uint8 else x.float()


def robust_points(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    attack: AttackFn | None,
    *,
    batch_size: int = EVAL_BATCH,
    device: str | torch.device = "cpu",
    seed: int = 0,
    desc: str = "eval",
    progress: bool = False,
    skip_wrong: bool = False,
) -> EvalResult:
    """Per-point correctness under ``attack`` (or on clean inputs when it is None).

    With ``skip_wrong``, points the model gets wrong on clean inputs count as not robust
    without being attacked (AutoAttack's and RobustBench's convention), which saves the
    attack's cost on them; the kept points are attacked exactly as they would be without it.
    The model is put in eval mode for the predictions and its mode restored after.
    """
    was_training = model.training
    model.eval()
    torch.manual_seed(seed)
    out = np.zeros(len(y), dtype=bool)
    start = time.perf_counter()
    # Points done, robust so far and the time left; smaller batches give finer progress.
    bar = tqdm(total=len(y), desc=desc, unit="img", disable=not progress, leave=False)
    if attack is not None and progress:  # long attacks (SPSA) also report their steps
        attack.__dict__["on_step"] = lambda t, n, r: bar.set_postfix(step=f"{t}/{n}", active=r)
    try:
        for lo in range(0, len(y), batch_size):
            xb = to_float(x[lo : lo + batch_size]).to(device)
            yb = y[lo : lo + batch_size].to(device)
            keep = None
            if attack is not None and skip_wrong:
                with torch.inference_mode():
                    keep = model(xb).argmax(1) == yb
                keep = keep.clone()  # a normal tensor: the attack indexes with it
            if attack is not None:
                xb = attack(model, xb, yb, keep=keep)
            with torch.inference_mode():
                correct = model(xb).argmax(1) == yb
            if keep is not None:
                correct = correct & keep
            out[lo : lo + len(yb)] = correct.cpu().numpy()
            bar.update(len(yb))
            bar.set_postfix(robust=f"{int(out[: lo + len(yb)].sum())}/{lo + len(yb)}")
    finally:
        bar.close()
        if attack is not None:
            attack.__dict__.pop("on_step", None)
        model.train(was_training)
    return EvalResult(out, time.perf_counter() - start)
