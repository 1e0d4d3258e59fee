"""Thermometer encoding (Buckman, Roy, Raffel & Goodfellow, ICLR 2018).

The network is trained and evaluated behind the encoding (``Defense.encoding``): each
pixel value becomes ``levels`` bits, bit k = 1 where x > k / levels
(bench/models/transforms.py ``Thermometer``), and the network takes ``levels`` times the
channels. The encoding is a comparison, so no gradient reaches the input: PGD moves only by
its random start and overrates the model, and BPDA through the encoding's ramp stand-in
(Athalye et al., ICML 2018) takes it down.

- ``thermometer``: cross-entropy on the encoded clean images.
- ``thermometer-at``: with adversarial training as in the paper, whose inner attack is
  LS-PGA on the encoding's codes (attacks/lspga.py; ``inner="ls-pga"``, the default): the
  preset's inner steps, one restart, step 1 on the logits and annealing 1.2 from T = 1.
  ``inner="bpda"`` trains against PGD through the ramp stand-in instead (BPDA, the
  preset's inner attack settings): measured on the masking reference, a model trained so
  resists BPDA (88.8% on MNIST at eps 0.3) and falls to LS-PGA (46.6%).

levels = 16 as in the paper.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from attacks.adaptive import BPDA
from attacks.lspga import LSPGA
from bench.core.constants import LINF, NORMS
from bench.core.lazy import F, LazyModule
from defenses.base import Defense, StepContext, register
from defenses.standard import Standard

if TYPE_CHECKING:
    from torch import Tensor, nn


transforms = LazyModule("bench.models.transforms")  # PyTorch: loaded with the first model
INNER = ("ls-pga", "bpda")  # thermometer-at's inner attack


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
    summary: ClassVar[str] = "thermometer encoding with adversarial training on LS-PGA"
    inner: str = "ls-pga"  # or "bpda": PGD through the encoding's ramp
    shown_params: ClassVar[tuple[str, ...]] = ("inner",)
    before_params: ClassVar[dict[str, str]] = {"inner": "bpda"}  # the only inner attack then

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.inner not in INNER:
            raise ValueError(f"{self.name}: inner must be one of {', '.join(INNER)}")

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor, ctx: StepContext) -> Tensor | None:
        """LS-PGA with the preset's inner steps, or its inner PGD through the ramp (BPDA)."""
        pgd = self.inner_attack()
        if self.inner == "ls-pga":
            return LSPGA(eps=pgd.eps, steps=pgd.steps, restarts=1)(model, x, y)
        return BPDA(**dataclasses.asdict(pgd))(model, x, y)
