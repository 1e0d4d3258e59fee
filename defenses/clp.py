"""CLP, clean logit pairing (Kannan et al. 2018): no adversarial examples at all.

``CE_mean(f(x), y) + lam * pairing(z(x_a), z(x_b))`` where the pairs are the two halves of
the (already shuffled) batch: example ``i`` of the first half with example ``i`` of the
second; an odd batch leaves its last example unpaired. CLP is the textbook case of
gradient masking (docs/reference.md §7.7), which is why it is here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from bench.core.lazy import F
from defenses.alp import PAIR_REDUCTIONS, logit_pairing
from defenses.base import Defense, StepContext, register

if TYPE_CHECKING:
    from torch import Tensor, nn


def clp_loss(logits: Tensor, y: Tensor, lam: float, reduction: str = "example") -> Tensor:
    half = len(y) // 2
    ce = F.cross_entropy(logits, y)
    if half == 0:
        return ce
    return ce + lam * logit_pairing(logits[:half], logits[half : 2 * half], reduction)


@register
@dataclass
class CLP(Defense):
    lam: float = 0.5
    pair_reduction: str = "example"
    name: ClassVar[str] = "clp"
    display_name: ClassVar[str] = "CLP"
    summary: ClassVar[str] = "CE(x) + lam * ||z(x_a) - z(x_b)||^2 over clean pairs (no attack)"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.pair_reduction not in PAIR_REDUCTIONS:
            raise ValueError(f"unknown pair_reduction {self.pair_reduction!r}")

    def loss(
        self, model: nn.Module, x: Tensor, y: Tensor, x_adv: Tensor | None, ctx: StepContext
    ) -> Tensor:
        return clp_loss(model(x), y, self.lam, self.pair_reduction)
