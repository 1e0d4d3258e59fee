"""Standard adversarial training (Madry et al. 2018): CE on PGD examples only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from bench.core.lazy import F
from defenses.base import PGDDefense, StepContext, register

if TYPE_CHECKING:
    from torch import Tensor, nn


@register
@dataclass
class Standard(PGDDefense):
    name: ClassVar[str] = "standard"
    display_name: ClassVar[str] = "Standard"
    summary: ClassVar[str] = "PGD-AT (Madry): CE on adversarial examples from PGD on CE"

    def loss(
        self, model: nn.Module, x: Tensor, y: Tensor, x_adv: Tensor | None, ctx: StepContext
    ) -> Tensor:
        assert x_adv is not None
        return F.cross_entropy(model(x_adv), y)
