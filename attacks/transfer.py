"""Black-box transfer attacks (the MART paper's Table 3).

The examples are crafted with a white-box preset (``base``: fgsm, pgd10, pgd20, cw20) on a
separately trained *surrogate* and only then shown to the defended model, which the attack
never queries. The surrogate is a model object, not a setting: it is attached with
``with_surrogate`` and described in ``params()`` by the run name and checkpoint hash the
caller gives (``bench/eval/transfer.py`` trains and records it).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar

from attacks.base import PRESETS, Attack, AttackPreset, add_preset, build, register
from attacks.pgd import FGSM  # noqa: F401  (the white-box presets must exist first)
from bench.core.constants import Protocol

if TYPE_CHECKING:
    from torch import Tensor, nn

TRANSFER_BASES = ("fgsm", "pgd10", "pgd20", "cw20")


@register
@dataclasses.dataclass
class Transfer(Attack):
    """White-box preset ``base`` run on the surrogate; the target model is never queried."""

    base: str = "pgd20"
    surrogate_run: str = ""
    surrogate_sha256: str = ""
    name: ClassVar[str] = "transfer"
    bases: ClassVar[tuple[str, ...]] = TRANSFER_BASES  # the white-box presets it crafts with

    def __post_init__(self) -> None:
        if self.base not in self.bases:
            raise ValueError(f"unknown transfer base {self.base!r}; valid: {self.bases}")
        self.surrogate: nn.Module | None = None

    def with_surrogate(self, model: nn.Module, run: str = "", sha256: str = "") -> Transfer:
        self.surrogate, self.surrogate_run, self.surrogate_sha256 = model, run, sha256
        return self

    def _surrogate(self, model: nn.Module) -> nn.Module:
        if self.surrogate is None:
            raise ValueError("a transfer attack needs a surrogate model (with_surrogate)")
        if self.surrogate is model:
            raise ValueError("the surrogate is the target model: that is a white-box attack")
        return self.surrogate

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        return build(self.base, eps=self.eps)(self._surrogate(model), x, y)

    def perturb_kept(self, model: nn.Module, x: Tensor, y: Tensor, keep: Tensor) -> Tensor:
        return build(self.base, eps=self.eps)(self._surrogate(model), x, y, keep=keep)

    def params(self) -> dict[str, Any]:
        crafted = build(self.base, eps=self.eps).params()
        return {**super().params(), "crafted_with": crafted}


SOURCE = (
    "MART paper §4.2 / Table 3: crafted on a naturally trained surrogate (ResNet-50 for "
    "CIFAR-10, the defense's architecture for MNIST)"
)


def add_transfer_presets(attack: str, bases: tuple[str, ...], source: str = SOURCE) -> None:
    """``transfer-BASE`` for each white-box preset ``base`` (``attack``: the class's name)."""
    for base in bases:
        label = f"{PRESETS.get(base).label} (transfer)"
        preset = AttackPreset(
            attack,
            {"base": base},
            label=label,
            source=source,
            kind="transfer",
            protocol=Protocol.TRANSFER,
        )
        add_preset(f"transfer-{base}", preset)


add_transfer_presets("transfer", TRANSFER_BASES)
