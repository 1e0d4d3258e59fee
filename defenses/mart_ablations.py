"""MART's ablations (paper §4.1, Figure 2 a-c) as named defenses; lambda sweeps need no code.

Each variant is MART with one switch of ``defenses.mart.mart_loss`` flipped:

* (a) removing components: ``mart-no-kl`` keeps ``BCE + lam * (1 - p_y(x))`` (the KL factor of
  the regulariser removed), ``mart-no-weight`` keeps ``BCE + lam * KL`` (the ``1 - p`` factor
  removed), ``mart-no-kl-no-weight`` is BCE alone.
* (b) replacing components: ``mart-ce`` uses CE instead of BCE on x'; ``mart-bce-nat`` puts
  the BCE term on the natural examples (``BCE(p(x), y)``, the KL term unchanged);
  ``mart-kl-inner`` maximises ``KL(p(x) || p(x'))`` instead of CE in the inner PGD.
* (c) training data: ``mart-frac`` applies the misclassification-aware term
  ``KL * (1 - p)`` to a random fraction of the training examples; BCE stays on all. The
  choice is a hash of (example index, ``select_seed``), so it is the same every epoch and
  after a resume, and the examples chosen at a smaller fraction stay chosen at a larger one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from bench.core.lazy import torch
from defenses.base import StepContext, register
from defenses.mart import Mart, mart_loss

if TYPE_CHECKING:
    from torch import Tensor, nn

_M32 = 0xFFFFFFFF


def unit_hash(idx: Tensor, seed: int) -> Tensor:
    """A uniform-looking number in [0, 1) per example index: a 32-bit integer mix.

    Every product stays below 2**63, so int64 arithmetic is exact on every device.
    """
    x = (idx.to(torch.int64) + (seed & 0x7FFFFFFF) * 0x9E3779B9) & _M32
    for _ in range(2):
        x = ((x ^ (x >> 16)) * 0x45D9F3B) & _M32
    x = x ^ (x >> 16)
    return x.to(torch.float64) / 2.0**32


def selected(idx: Tensor, fraction: float, seed: int) -> Tensor:
    """Which examples get the regulariser: ``unit_hash(idx, seed) < fraction``."""
    return unit_hash(idx, seed) < fraction


@dataclass
class _MartVariant(Mart):
    margin: ClassVar[bool] = True
    bce_on_natural: ClassVar[bool] = False
    use_kl: ClassVar[bool] = True
    use_weight: ClassVar[bool] = True

    def loss(
        self, model: nn.Module, x: Tensor, y: Tensor, x_adv: Tensor | None, ctx: StepContext
    ) -> Tensor:
        assert x_adv is not None
        needs_clean = self.use_kl or self.use_weight or self.bce_on_natural
        logits_nat = model(x) if needs_clean else None
        logits_adv = model(x_adv)
        return mart_loss(
            logits_adv if logits_nat is None else logits_nat,
            logits_adv,
            y,
            self.lam,
            margin=self.margin,
            bce_on_natural=self.bce_on_natural,
            kl=self.use_kl,
            weight=self.use_weight,
            mask=self.mask(y, ctx),
        )

    def mask(self, y: Tensor, ctx: StepContext) -> Tensor | None:
        return None


@register
@dataclass
class MartNoKL(_MartVariant):
    use_kl: ClassVar[bool] = False
    name: ClassVar[str] = "mart-no-kl"
    display_name: ClassVar[str] = "MART w/o KL"
    summary: ClassVar[str] = "MART ablation: BCE(x') + lam * (1 - p_y(x)), KL removed"


@register
@dataclass
class MartNoWeight(_MartVariant):
    use_weight: ClassVar[bool] = False
    name: ClassVar[str] = "mart-no-weight"
    display_name: ClassVar[str] = "MART w/o weight"
    summary: ClassVar[str] = "MART ablation: BCE(x') + lam * KL(p(x) || p(x')), 1-p removed"


@register
@dataclass
class MartNoKLNoWeight(_MartVariant):
    use_kl: ClassVar[bool] = False
    use_weight: ClassVar[bool] = False
    name: ClassVar[str] = "mart-no-kl-no-weight"
    display_name: ClassVar[str] = "MART w/o KL, w/o weight"
    summary: ClassVar[str] = "MART ablation: BCE(x') only (KL and 1-p removed; lam unused)"


@register
@dataclass
class MartCE(_MartVariant):
    margin: ClassVar[bool] = False
    name: ClassVar[str] = "mart-ce"
    display_name: ClassVar[str] = "MART, CE for BCE"
    summary: ClassVar[str] = "MART ablation: CE instead of BCE on x'"


@register
@dataclass
class MartBCENat(_MartVariant):
    bce_on_natural: ClassVar[bool] = True
    name: ClassVar[str] = "mart-bce-nat"
    display_name: ClassVar[str] = "MART, BCE on natural"
    summary: ClassVar[str] = "MART ablation: BCE on natural x instead of x', KL term unchanged"


@register
@dataclass
class MartKLInner(_MartVariant):
    inner_loss: ClassVar[str] = "kl"
    name: ClassVar[str] = "mart-kl-inner"
    display_name: ClassVar[str] = "MART, KL inner attack"
    summary: ClassVar[str] = "MART ablation: inner PGD maximises KL(p(x) || p(x')) instead of CE"


@register
@dataclass
class MartFrac(_MartVariant):
    fraction: float = 0.5
    select_seed: int = 0
    name: ClassVar[str] = "mart-frac"
    display_name: ClassVar[str] = "MART on a fraction"
    summary: ClassVar[str] = "MART ablation: KL * (1 - p) on a fixed random fraction of the data"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"fraction must be in [0, 1], got {self.fraction}")

    def mask(self, y: Tensor, ctx: StepContext) -> Tensor | None:
        if ctx.indices is None:
            raise ValueError("mart-frac selects examples by index: it needs ctx.indices")
        return selected(ctx.indices, self.fraction, self.select_seed).to(y.device)
