"""Input-gradient regularisation (Ross & Doshi-Velez, AAAI 2018; double backpropagation,
Drucker & LeCun 1992): ``CE(f(x), y) + lam * ||grad_x CE||^2``, no adversarial examples.

The squared L2 norm of the input gradient is taken per example and averaged over the batch;
the gradient is built with ``create_graph`` so that the penalty is trained through (the
second backward pass). ``lam`` has no value in the MART paper: the default 1.0 is this
harness's, stated as such, for MNIST-sized inputs; set it with ``--param lam=...``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from bench.core.constants import NORMS
from bench.core.lazy import F, torch
from defenses.base import Defense, StepContext, register

if TYPE_CHECKING:
    from torch import Tensor, nn


def igr_loss(model: nn.Module, x: Tensor, y: Tensor, lam: float) -> Tensor:
    """Mean CE plus ``lam`` times the mean over examples of ``||d CE_i / d x_i||^2``."""
    x = x.detach().clone().requires_grad_(True)
    ce = F.cross_entropy(model(x), y, reduction="sum")
    (grad,) = torch.autograd.grad(ce, [x], create_graph=True)
    return ce / len(y) + lam * grad.pow(2).flatten(1).sum(1).mean()


@register
@dataclass
class InputGradientRegularisation(Defense):
    lam: float = 1.0
    name: ClassVar[str] = "igr"
    norms: ClassVar[tuple[str, ...]] = NORMS  # no attack in training: any threat model
    display_name: ClassVar[str] = "Input-grad reg."
    summary: ClassVar[str] = "CE + lam ||grad_x CE||^2, double backprop (Ross & Doshi-Velez 2018)"

    def loss(
        self, model: nn.Module, x: Tensor, y: Tensor, x_adv: Tensor | None, ctx: StepContext
    ) -> Tensor:
        return igr_loss(model, x, y, self.lam)
