"""Thermometer encoding (Buckman, Roy, Raffel & Goodfellow, ICLR 2018).

The network is trained and evaluated behind the encoding (``Defense.encoding``): each
pixel value becomes ``levels`` bits, bit k = 1 where x > k / levels
(bench/models/transforms.py ``Thermometer``), and the network takes ``levels`` times the
channels. The encoding is a comparison, so no gradient reaches the input: PGD moves only by
its random start and overrates the model, and BPDA through the encoding's ramp stand-in
(Athalye et al., ICML 2018) takes it down.

- ``thermometer``: cross-entropy on the encoded clean images.
- ``thermometer-at``: with adversarial training as in the paper. The paper's inner attack
  is LS-PGA on the encoding; here it is PGD through the same ramp stand-in (BPDA), with the
  preset's inner attack settings: a stand-in for LS-PGA, stated as such.

levels = 16 as in the paper.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from attacks.adaptive import BPDA
from bench.core.constants import LINF, NORMS
from bench.core.lazy import F, LazyModule
from defenses.base import Defense, StepContext, register
from defenses.standard import Standard

if TYPE_CHECKING:
    from torch import Tensor, nn


transforms = LazyModule("bench.models.transforms")  # PyTorch: loaded with the first model


@dataclass
class _Encoded:
    """The encoding's setting, its check and ``Defense.encoding``, mixed into a defense."""

    levels: int = 16

    def __post_init__(self) -> None:
        super().__post_init__()  # type: ignore[misc]
        if self.levels < 2:
            raise ValueError(f"{self.name}: levels must be >= 2, got {self.levels}")  # type: ignore[attr-defined]

    def encoding(self) -> nn.Module:
        return transforms.Thermometer(self.levels)


@register
@dataclass
class ThermometerEncoding(_Encoded, Defense):
    name: ClassVar[str] = "thermometer"
    norms: ClassVar[tuple[str, ...]] = NORMS  # no attack in training
    display_name: ClassVar[str] = "Thermometer"
    summary: ClassVar[str] = "CE behind a 16-level thermometer encoding (Buckman et al. 2018)"

    def loss(
        self, model: nn.Module, x: Tensor, y: Tensor, x_adv: Tensor | None, ctx: StepContext
    ) -> Tensor:
        return F.cross_entropy(model(x), y)


@register
@dataclass
class ThermometerAT(_Encoded, Standard):
    name: ClassVar[str] = "thermometer-at"
    display_name: ClassVar[str] = "Thermometer + AT"
    norms: ClassVar[tuple[str, ...]] = (LINF,)  # BPDA is an L-inf attack
    summary: ClassVar[str] = "thermometer encoding with PGD-AT through its ramp (BPDA)"

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor, ctx: StepContext) -> Tensor | None:
        """The preset's inner PGD, its gradient through the encoding's ramp (BPDA)."""
        return BPDA(**dataclasses.asdict(self.inner_attack()))(model, x, y)
