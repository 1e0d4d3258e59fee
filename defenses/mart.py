"""MART (Wang et al., ICLR 2020), exactly as the official code computes it.

``BCE(p(x'), y) + lam * KL(p(x) || p(x')) * (1 - p_y(x))`` where
- BCE = CE_mean(x') + mean ``-log(1.0001 - p'_{k*} + 1e-12)``, ``k*`` the most likely wrong
  class of the adversarial example (an index: no gradient through the choice);
- KL per example ``sum_k p_k (log p_k - log(p'_k + 1e-12))``, weighted by
  ``1.0000001 - p_y(x)``, summed and divided by B; nothing is detached.
Clean and adversarial batches go through the model in two separate forward passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from defenses.base import PGDDefense, StepContext


def top_wrong_class(probs: Tensor, y: Tensor) -> Tensor:
    """Index of the most probable class other than the label (ties as the official argsort)."""
    top2 = torch.argsort(probs, dim=1)[:, -2:]
    return torch.where(top2[:, -1] == y, top2[:, -2], top2[:, -1])


def mart_loss(logits_nat: Tensor, logits_adv: Tensor, y: Tensor, lam: float) -> Tensor:
    batch = y.shape[0]
    p_adv = F.softmax(logits_adv, dim=1)
    wrong = top_wrong_class(p_adv, y)
    bce = F.cross_entropy(logits_adv, y) + F.nll_loss(torch.log(1.0001 - p_adv + 1e-12), wrong)
    p_nat = F.softmax(logits_nat, dim=1)
    p_true = p_nat.gather(1, y[:, None]).squeeze(1)
    kl = (p_nat * (torch.log(p_nat) - torch.log(p_adv + 1e-12))).sum(dim=1)
    return bce + lam * (kl * (1.0000001 - p_true)).sum() / batch


@dataclass
class Mart(PGDDefense):
    lam: float = 6.0
    name: ClassVar[str] = "mart"
    summary: ClassVar[str] = "BCE(x') + lam * KL(p(x) || p(x')) * (1 - p_y(x)), PGD on CE"

    def loss(
        self, model: nn.Module, x: Tensor, y: Tensor, x_adv: Tensor | None, ctx: StepContext
    ) -> Tensor:
        assert x_adv is not None
        return mart_loss(model(x), model(x_adv), y, self.lam)
