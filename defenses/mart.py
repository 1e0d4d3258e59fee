"""MART (Wang et al., ICLR 2020), exactly as the official code computes it.

``BCE(p(x'), y) + lam * KL(p(x) || p(x')) * (1 - p_y(x))`` where
- BCE = CE_mean(x') + mean ``-log(1.0001 - p'_{k*} + 1e-12)``, ``k*`` the most likely wrong
  class of the adversarial example (an index: no gradient through the choice);
- KL per example ``sum_k p_k (log p_k - log(p'_k + 1e-12))`` with ``0 log 0 = 0`` (the
  official ``KLDivLoss``: a clean probability that underflows to 0 adds 0, not NaN), weighted by
  ``1.0000001 - p_y(x)``, summed and divided by B; nothing is detached.
Clean and adversarial batches go through the model in two separate forward passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from bench.core.lazy import F, torch
from defenses.base import PGDDefense, StepContext, register

if TYPE_CHECKING:
    from torch import Tensor, nn


def top_wrong_class(probs: Tensor, y: Tensor) -> Tensor:
    """Index of the most probable class other than the label (ties as the official argsort)."""
    top2 = torch.argsort(probs, dim=1)[:, -2:]
    return torch.where(top2[:, -1] == y, top2[:, -2], top2[:, -1])


def _log_or_zero(p: Tensor) -> Tensor:
    """``log p`` where ``p > 0`` and 0 where ``p`` underflowed to 0, so ``p * log p`` is 0 there
    (``KLDivLoss``'s ``0 log 0 = 0``), with a finite gradient: never ``log 0 = -inf``."""
    return torch.log(torch.where(p > 0, p, torch.ones_like(p)))


def mart_per_example(
    logits_nat: Tensor,
    logits_adv: Tensor,
    y: Tensor,
    lam: float,
    *,
    margin: bool = True,
    bce_on_natural: bool = False,
    kl: bool = True,
    weight: bool = True,
    mask: Tensor | None = None,
) -> Tensor:
    """MART's loss per example; its batch mean is ``mart_loss`` (semi-supervised MART
    weighs the examples instead). The switches are documented in ``mart_loss``."""
    p_adv = F.softmax(logits_adv, dim=1)
    logits_first = logits_nat if bce_on_natural else logits_adv
    p_first = F.softmax(logits_first, dim=1) if bce_on_natural else p_adv
    bce = F.cross_entropy(logits_first, y, reduction="none")
    if margin:
        wrong = top_wrong_class(p_first, y)
        bce = bce - torch.log(1.0001 - p_first.gather(1, wrong[:, None]).squeeze(1) + 1e-12)
    if not (kl or weight):
        return bce
    p_nat = F.softmax(logits_nat, dim=1)
    p_true = p_nat.gather(1, y[:, None]).squeeze(1)
    if kl:
        reg = (p_nat * (_log_or_zero(p_nat) - torch.log(p_adv + 1e-12))).sum(dim=1)
        if weight:
            reg = reg * (1.0000001 - p_true)
    else:
        reg = 1.0000001 - p_true
    if mask is not None:
        reg = reg * mask.to(reg.dtype)
    return bce + lam * reg


def mart_loss(
    logits_nat: Tensor,
    logits_adv: Tensor,
    y: Tensor,
    lam: float,
    *,
    margin: bool = True,
    bce_on_natural: bool = False,
    kl: bool = True,
    weight: bool = True,
    mask: Tensor | None = None,
) -> Tensor:
    """MART's objective; the keyword switches give the paper's ablations (Figure 2 a-c).

    The defaults are MART itself. ``margin=False`` replaces BCE by CE; ``bce_on_natural``
    computes the BCE term on the clean logits instead of the adversarial ones; ``kl`` and
    ``weight`` keep the two factors of the regulariser ``KL * (1 - p_y(x))``: without KL
    the regulariser is ``lam * (1 - p_y(x))``, without both it vanishes (BCE only).
    ``mask`` (0/1 per example) applies the regulariser to some examples only; it is still
    divided by the full batch size, so a selected example weighs what it weighs in MART.
    """
    return mart_per_example(
        logits_nat,
        logits_adv,
        y,
        lam,
        margin=margin,
        bce_on_natural=bce_on_natural,
        kl=kl,
        weight=weight,
        mask=mask,
    ).mean()


@register
@dataclass
class Mart(PGDDefense):
    lam: float = 6.0
    name: ClassVar[str] = "mart"
    display_name: ClassVar[str] = "MART"
    summary: ClassVar[str] = "BCE(x') + lam * KL(p(x) || p(x')) * (1 - p_y(x)), PGD on CE"

    def loss(
        self, model: nn.Module, x: Tensor, y: Tensor, x_adv: Tensor | None, ctx: StepContext
    ) -> Tensor:
        assert x_adv is not None
        return mart_loss(model(x), model(x_adv), y, self.lam)
