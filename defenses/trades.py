"""TRADES (Zhang et al. 2019), as the official code computes it.

Inner attack: PGD on ``KL(p(x) || p(x'))`` summed over the batch, from ``x + 0.001 N(0,1)``.
Outer: ``CE_mean(f(x), y) + beta * KL_sum(p(x) || p(x')) / B``, nothing detached.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from attacks.losses import kl_to
from bench.core.lazy import F
from defenses.base import PGDDefense, StepContext, register

if TYPE_CHECKING:
    from torch import Tensor, nn


def trades_loss(logits_nat: Tensor, logits_adv: Tensor, y: Tensor, beta: float) -> Tensor:
    p_nat = F.softmax(logits_nat, dim=1)
    robust = kl_to(p_nat, logits_adv).sum() / y.shape[0]
    return F.cross_entropy(logits_nat, y) + beta * robust


@register
@dataclass
class Trades(PGDDefense):
    beta: float = 6.0
    name: ClassVar[str] = "trades"
    display_name: ClassVar[str] = "TRADES"
    summary: ClassVar[str] = "CE(x) + beta * KL(p(x) || p(x')), PGD on the KL term"
    inner_loss: ClassVar[str] = "kl"

    def loss(
        self, model: nn.Module, x: Tensor, y: Tensor, x_adv: Tensor | None, ctx: StepContext
    ) -> Tensor:
        assert x_adv is not None
        return trades_loss(model(x), model(x_adv), y, self.beta)
