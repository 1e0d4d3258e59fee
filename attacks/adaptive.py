"""Adaptive attacks for defenses that hide their gradients (Athalye et al., ICML 2018).

Both are PGD with another gradient; the forward pass, the projection and the last iterate
are PGD's own.

- **BPDA** (Backward Pass Differentiable Approximation): where the model has a part that
  gradients cannot go through (a quantisation, JPEG, a median filter), the forward pass goes
  through the real part and the backward pass through a differentiable stand-in: the
  identity unless the part names another. A model says so by a ``straight_through()``
  method returning that view of itself (bench's input transformations,
  ``defenses/transforms.py``); a model without one is attacked as it is, so BPDA on a plain
  network is exactly PGD.
- **EOT** (Expectation over Transformation): for a randomised model, each step follows the
  mean of ``samples`` input gradients, each through a fresh draw of the randomness. On a
  deterministic model the mean is the gradient itself, so EOT is PGD.

``bpda-pgd20`` and ``eot-pgd20`` are the presets (PGD-20's settings; EOT with 10 draws).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, ClassVar

from attacks.base import AttackPreset, add_preset, register
from attacks.pgd import PGD
from bench.core.lazy import torch

if TYPE_CHECKING:
    from torch import Tensor, nn


def straight_through(model: nn.Module) -> nn.Module:
    """The view of ``model`` BPDA differentiates: its ``straight_through()``, else itself."""
    view = getattr(model, "straight_through", None)
    return view() if callable(view) else model


@register
@dataclasses.dataclass
class BPDA(PGD):
    """PGD whose gradient goes through the model's differentiable stand-in (BPDA)."""

    name: ClassVar[str] = "bpda"

    def gradient(self, model: nn.Module, x_adv: Tensor, y: Tensor, p_nat: Tensor | None) -> Tensor:
        return super().gradient(straight_through(model), x_adv, y, p_nat)


@register
@dataclasses.dataclass
class EOT(PGD):
    """PGD whose gradient is the mean over ``samples`` draws of the model's randomness,
    taken through the model's BPDA view (a random and non-differentiable part, such as a
    random resize-and-pad, needs both)."""

    samples: int = 10
    name: ClassVar[str] = "eot"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.samples < 1:
            raise ValueError(f"EOT needs samples >= 1, got {self.samples}")

    def gradient(self, model: nn.Module, x_adv: Tensor, y: Tensor, p_nat: Tensor | None) -> Tensor:
        view = straight_through(model)
        total = torch.zeros_like(x_adv)
        for _ in range(self.samples):
            total += super().gradient(view, x_adv, y, p_nat)
        return total / self.samples


_SOURCE = "Athalye, Carlini & Wagner, ICML 2018 (obfuscated gradients); PGD-20's settings"
_PGD20 = {"steps": 20, "start": "uniform", "restarts": 1, "loss": "ce"}
add_preset(
    "bpda-pgd20",
    AttackPreset("bpda", _PGD20, step_fraction=0.1, label="BPDA PGD-20", source=_SOURCE),
)
add_preset(
    "bpda-pgd100-r5",
    AttackPreset(
        "bpda",
        {**_PGD20, "steps": 100, "restarts": 5},
        step_fraction=0.1,
        label="BPDA PGD-100 x5",
        source="BPDA with PGD-100's settings and 5 random restarts: the checklist's "
        "convergence rung for BPDA",
    ),
)
add_preset(
    "eot-pgd20",
    AttackPreset(
        "eot",
        {**_PGD20, "samples": 10},
        step_fraction=0.1,
        label="EOT PGD-20 (10 draws)",
        source=_SOURCE,
    ),
)
