"""Natural training: cross-entropy on clean examples, no inner attack."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from bench.core.constants import NORMS
from bench.core.lazy import F
from defenses.base import Defense, StepContext, register

if TYPE_CHECKING:
    from torch import Tensor, nn


@register
@dataclass
class Natural(Defense):
    name: ClassVar[str] = "natural"
    norms: ClassVar[tuple[str, ...]] = NORMS  # no attack in training: any threat model
    display_name: ClassVar[str] = "Natural"
    summary: ClassVar[str] = "CE on clean examples (no defense)"

    def loss(
        self, model: nn.Module, x: Tensor, y: Tensor, x_adv: Tensor | None, ctx: StepContext
    ) -> Tensor:
        return F.cross_entropy(model(x), y)
