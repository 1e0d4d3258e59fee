"""Black-box transfer attacks (the MART paper's Table 3).

The examples are crafted with a white-box preset (``base``: fgsm, pgd10, pgd20, cw20) on a
separately trained *surrogate* and only then shown to the defended model, which the attack
never queries. The surrogate is a model object, not a setting: it is attached with
``with_surrogate`` and described in ``params()`` by the run name and checkpoint hash the
caller gives (``bench/eval/transfer.py`` trains and records it).

Examples crafted on a surrogate do not depend on the target. With a recorded surrogate
(its checkpoint hash), each batch is crafted once, on all its points, and remembered: the
key is the surrogate, the settings, the batch and the random state the crafting starts
from, and a hit leaves the random state where the crafting left it. So every defense of a
table is attacked with the same examples, and the surrogate's cost is paid once per batch
instead of once per target and checkpoint. A kept point gets what crafting it alone gives
(the white-box attacks draw their starts for the whole batch).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, ClassVar

from attacks.base import PRESETS, Attack, AttackPreset, add_preset, build, register
from attacks.pgd import FGSM  # noqa: F401  (the white-box presets must exist first)
from bench.core.constants import Protocol
from bench.core.lazy import torch

if TYPE_CHECKING:
    from torch import Tensor, nn

TRANSFER_BASES = ("fgsm", "pgd10", "pgd20", "cw20")
CRAFTED_BYTES = 2**30  # the most the crafted examples kept in memory take (LRU beyond)
_CRAFTED: OrderedDict[str, tuple[Tensor, list[Tensor]]] = OrderedDict()


def _rng_state(device: torch.device) -> list[Tensor]:
    states = [torch.get_rng_state()]
    if device.type == "cuda":
        states.append(torch.cuda.get_rng_state(device))
    return states


def _set_rng_state(device: torch.device, states: list[Tensor]) -> None:
    torch.set_rng_state(states[0])
    if device.type == "cuda":
        torch.cuda.set_rng_state(states[1], device)


def _remember(key: str, adv: Tensor, after: list[Tensor]) -> None:
    _CRAFTED[key] = (adv.detach().to("cpu", copy=True), after)  # never the caller's tensor
    size = sum(a.nelement() * a.element_size() for a, _ in _CRAFTED.values())
    while size > CRAFTED_BYTES and len(_CRAFTED) > 1:
        old, _ = _CRAFTED.popitem(last=False)[1]
        size -= old.nelement() * old.element_size()


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
        return self._crafted(self._surrogate(model), x, y)

    def perturb_kept(self, model: nn.Module, x: Tensor, y: Tensor, keep: Tensor) -> Tensor:
        adv = self._crafted(self._surrogate(model), x, y)
        return torch.where(keep.view(-1, *([1] * (x.dim() - 1))), adv, x)

    def _crafted(self, surrogate: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """The base attack on the surrogate, for every point of the batch; remembered
        where the surrogate is recorded (its hash), else crafted each time."""
        craft = build(self.base, eps=self.eps)
        if not self.surrogate_sha256:
            return craft(surrogate, x, y)
        key = self._key(craft, x, y)
        hit = _CRAFTED.get(key)
        if hit is None:
            adv = craft(surrogate, x, y)
            _remember(key, adv, _rng_state(x.device))
            return adv
        _CRAFTED.move_to_end(key)
        _set_rng_state(x.device, hit[1])
        return hit[0].to(x.device, copy=True)  # the memory's own copy stays untouched

    def _key(self, craft: Attack, x: Tensor, y: Tensor) -> str:
        h = hashlib.sha256(self.surrogate_sha256.encode())
        h.update(json.dumps(craft.params(), sort_keys=True).encode())
        h.update(str(x.device).encode())
        for t in (x, y, *_rng_state(x.device)):
            h.update(str((t.dtype, tuple(t.shape))).encode())
            h.update(t.detach().cpu().contiguous().flatten().view(torch.uint8).numpy().tobytes())
        return h.hexdigest()

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
