"""Signs that a model hides its gradients, found by looking, not by being told (the
lecture's checklist, Athalye et al. 2018): a random part (two forward passes differ), and a
gradient that is missing (the input leaves the autograd graph) or zero (a quantisation).

``adaptive_attack`` names the attack a model needs from what was found: EOT for a random
model (its BPDA view too), BPDA where gradients are missing or zero, else plain PGD-20.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from bench.core.constants import EVAL_BATCH

ZERO = 1e-12  # an input-gradient L1 norm at or below this counts as zero


@dataclass(frozen=True)
class Masking:
    """What the probes found on ``n`` points."""

    n: int
    random: bool  # two forward passes in eval mode gave different logits
    missing: bool  # the loss does not reach the input (no autograd path)
    zero: int  # points whose input gradient is zero

    @property
    def masked(self) -> bool:
        return self.missing or self.zero > 0

    def summary(self) -> str:
        parts = ["random (two forward passes differ)" if self.random else "deterministic"]
        if self.missing:
            parts.append("no gradient reaches the input")
        else:
            parts.append(f"{self.zero} of {self.n} points with a zero input gradient")
        return "; ".join(parts)


def probe(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = EVAL_BATCH) -> Masking:
    """Look for randomness and missing or zero input gradients (eval mode; mode restored)."""
    was_training = model.training
    model.eval()
    random, missing, zero = False, False, 0
    try:
        for lo in range(0, len(y), batch_size):
            xb, yb = x[lo : lo + batch_size], y[lo : lo + batch_size]
            with torch.no_grad():
                random |= not torch.equal(model(xb), model(xb))
            xg = xb.clone().requires_grad_(True)
            with torch.enable_grad():
                loss = nn.functional.cross_entropy(model(xg), yb, reduction="sum")
                if not loss.requires_grad:
                    missing = True
                    continue
                (g,) = torch.autograd.grad(loss, [xg], allow_unused=True)
            if g is None:
                missing = True
                continue
            zero += int((g.flatten(1).abs().sum(1) <= ZERO).sum())
    finally:
        model.train(was_training)
    return Masking(len(y), random, missing, zero)


def adaptive_attack(found: Masking) -> str:
    """The attack preset a model needs: EOT for randomness, BPDA for masked gradients."""
    if found.random:
        return "eot-pgd20"
    return "bpda-pgd20" if found.masked else "pgd20"
