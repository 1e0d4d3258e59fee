"""Dynamic adversarial training (Wang et al., ICML 2019): PGD stopped early by FOSC.

The first-order stationary condition of the inner maximisation at iterate ``x^k``,
``c(x^k) = eps * ||g||_1 - <x^k - x^0, g>`` with ``g`` the gradient of the (summed) CE,
is 0 exactly at a maximiser of the linearised loss over the eps-ball. Training starts
with a loose criterion ``c_t`` (weak attacks, early stop) and tightens it linearly to 0:
``c_t = max(c_max - c_max * t / T', 0)``, ``t`` the 0-based epoch, ``T'`` the epoch where it
reaches 0 (100 of 120 in the official code: ``T' = t_fraction * epochs``).

Inner attack as the official ``pgd_attack.py``: uniform start, sign steps of eps/4, the
first step always taken, then an example moves only while its FOSC at the current iterate
is above ``c_t``. Two choices the sources leave open are parameters:

* ``fosc_origin``: ``"start"`` (default, the official code: ``x^0`` is the random start) or
  ``"natural"`` (the paper's definition: the centre of the eps-ball);
* ``weight_by_loss``: the official code weights each example's CE by its own (constant) CE
  from the second epoch on; off by default, as the paper says plain CE (docs/reference.md §2.6);
* ``clip_start``: the official code does not clip the uniform random start to [0, 1] (the
  paper does not say); off by default, following the official code. The first projected step
  clips every iterate after it.

Where the paper speaks its choice is the default, elsewhere the official code's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from attacks.base import check_bounds, input_grad, project
from attacks.pgd import random_start
from bench.core.constants import LINF
from bench.core.lazy import F, torch
from defenses.base import PGDDefense, StepContext, register

if TYPE_CHECKING:
    from torch import Tensor, nn

ORIGINS = ("start", "natural")


def fosc(x_k: Tensor, x_0: Tensor, grad: Tensor, eps: float) -> Tensor:
    """Per-example ``eps * ||grad||_1 - <x_k - x_0, grad>`` (>= 0 inside the eps-ball)."""
    g = grad.flatten(1)
    return eps * g.abs().sum(dim=1) - ((x_k - x_0).flatten(1) * g).sum(dim=1)


def fosc_criterion(epoch: int, epochs: int, c_max: float, t_fraction: float) -> float:
    """``c_t = max(c_max - c_max * t / T', 0)`` with ``T' = t_fraction * epochs``."""
    t_end = t_fraction * epochs
    if t_end <= 0:
        return 0.0
    return max(c_max - c_max * epoch / t_end, 0.0)


@register
@dataclass
class Dynamic(PGDDefense):
    c_max: float = 0.5
    t_fraction: float = 100 / 120  # T' / total epochs (official code: 100 of 120)
    fosc_origin: str = "start"
    weight_by_loss: bool = False
    clip_start: bool = False
    name: ClassVar[str] = "dynamic"
    display_name: ClassVar[str] = "Dynamic"
    summary: ClassVar[str] = "CE(x') with PGD stopped per example once FOSC <= c_t (c_t -> 0)"
    norms: ClassVar[tuple[str, ...]] = (LINF,)  # its own L-inf loop (FOSC is L-inf's)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.fosc_origin not in ORIGINS:
            raise ValueError(f"unknown fosc_origin {self.fosc_origin!r}; valid: {ORIGINS}")
        self.weight_by_loss = bool(self.weight_by_loss)

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor, ctx: StepContext) -> Tensor | None:
        c_t = fosc_criterion(ctx.epoch, ctx.epochs, self.c_max, self.t_fraction)
        was_training = model.training
        model.eval()
        try:
            x = x.detach()
            x_adv = random_start(x, self.eps, self.start, self.start_sigma, clip=self.clip_start)
            origin = x_adv.clone() if self.fosc_origin == "start" else x
            active = torch.ones(len(y), dtype=torch.bool, device=x.device)
            for k in range(self.steps):
                x_adv.requires_grad_(True)
                with torch.enable_grad():
                    loss = F.cross_entropy(model(x_adv), y, reduction="sum")
                    grad = input_grad(loss, x_adv)
                x_adv = x_adv.detach()
                if k > 0:  # the official loop always takes the first step
                    active &= fosc(x_adv, origin, grad, self.eps) > c_t
                move = active.to(x.dtype).view(-1, *([1] * (x.dim() - 1)))
                x_adv = project(x_adv + move * self.step_size * grad.sign(), x, self.eps)
        finally:
            model.train(was_training)
        x_adv = project(x_adv, x, self.eps)
        check_bounds(x_adv, x, self.eps)
        return x_adv

    def loss(
        self, model: nn.Module, x: Tensor, y: Tensor, x_adv: Tensor | None, ctx: StepContext
    ) -> Tensor:
        assert x_adv is not None
        ce = F.cross_entropy(model(x_adv), y, reduction="none")
        if self.weight_by_loss and ctx.epoch > 0:
            return (ce * ce.detach()).mean()
        return ce.mean()
