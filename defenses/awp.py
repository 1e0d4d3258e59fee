"""Adversarial weight perturbation (AWP; Wu, Xia & Wang, NeurIPS 2020) on top of PGD-AT,
TRADES and MART: ``standard-awp``, ``trades-awp`` and ``mart-awp``.

After the inner attack, the weights take an adversarial step of relative size
``awp_gamma`` before the defense's own loss is computed, and the step is undone after the
optimizer's update, as the official code does (``AdvWeightPerturb`` / ``TradesAWP``:
``calc_awp``, ``perturb``, the update, ``restore``). For every weight tensor ``w_l`` with
two or more dimensions (convolutions and linear layers; no biases, no BatchNorm),

    v_l = awp_gamma * ||w_l|| * g_l / ||g_l||,   g_l = d loss(w) / d w_l,

where ``loss`` is the defense's own objective on the batch's clean and adversarial
examples. The official code takes one SGD step that raises the loss on a proxy copy and
rescales the difference to ``||w_l||``; the step size cancels in the rescaling, so the
gradient's direction is all it uses. The gradient is taken in train mode with the
BatchNorm statistics put back afterwards (the proxy's statistics never reach the model).

Under ``--nproc`` each rank's gradient is averaged over the group first
(``StepContext.average``), so every rank perturbs its weights identically.

Settings, from the official code: PGD-AT ``awp_gamma`` 0.01 from the first epoch (its
CIFAR-10 L-inf default); TRADES 0.005 after a warm-up of 9 epochs (its loop counts from 1
and starts AWP at epoch 10); MART 0.005 (the paper's gamma; the official repository has
no MART script).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from bench.core.lazy import torch
from defenses.base import StepContext, register
from defenses.mart import Mart
from defenses.standard import Standard
from defenses.trades import Trades

if TYPE_CHECKING:
    from torch import Tensor, nn

_EPS = 1e-20  # the official code's guard against a zero gradient


@dataclass
class AdversarialWeights:
    """The AWP step, mixed into a defense whose ``loss`` it perturbs the weights for."""

    awp_gamma: float = 0.005
    awp_warmup: int = 0  # epochs trained without AWP first

    def around_update(
        self, model: nn.Module, x: Tensor, y: Tensor, x_adv: Tensor | None, ctx: StepContext
    ) -> AbstractContextManager[None]:
        if self.awp_gamma == 0 or ctx.epoch < self.awp_warmup:
            return nullcontext()
        return _shifted(self.weight_perturbation(model, x, y, x_adv, ctx))

    def weight_perturbation(
        self, model: nn.Module, x: Tensor, y: Tensor, x_adv: Tensor | None, ctx: StepContext
    ) -> list[tuple[Tensor, Tensor]]:
        """(weight, its perturbation v) for every weight of two or more dimensions."""
        weights = [p for n, p in model.named_parameters() if p.ndim > 1 and "weight" in n]
        buffers = [b.detach().clone() for b in model.buffers()]
        loss = self.loss(model, x, y, x_adv, ctx)  # type: ignore[attr-defined]
        grads = torch.autograd.grad(loss, weights, allow_unused=True)
        with torch.no_grad():
            for b, saved in zip(model.buffers(), buffers, strict=True):
                b.copy_(saved)
        grads = [
            torch.zeros_like(w) if g is None else g.detach().float()
            for w, g in zip(weights, grads, strict=True)
        ]
        if ctx.average is not None:
            ctx.average(grads)
        return [
            (w, (self.awp_gamma * w.detach().norm() / (g.norm() + _EPS) * g).to(w.dtype))
            for w, g in zip(weights, grads, strict=True)
        ]


@contextmanager
def _shifted(perturbation: list[tuple[Tensor, Tensor]]) -> Iterator[None]:
    """The weights moved by their perturbation, and moved back on the way out."""
    with torch.no_grad():
        for w, v in perturbation:
            w.add_(v)
    try:
        yield
    finally:
        with torch.no_grad():
            for w, v in perturbation:
                w.sub_(v)


@register
@dataclass
class StandardAWP(AdversarialWeights, Standard):
    awp_gamma: float = 0.01
    name: ClassVar[str] = "standard-awp"
    display_name: ClassVar[str] = "Standard + AWP"
    summary: ClassVar[str] = "PGD-AT with adversarial weight perturbation (Wu et al. 2020)"


@register
@dataclass
class TradesAWP(AdversarialWeights, Trades):
    awp_warmup: int = 9
    name: ClassVar[str] = "trades-awp"
    display_name: ClassVar[str] = "TRADES + AWP"
    summary: ClassVar[str] = "TRADES with adversarial weight perturbation (Wu et al. 2020)"


@register
@dataclass
class MartAWP(AdversarialWeights, Mart):
    name: ClassVar[str] = "mart-awp"
    display_name: ClassVar[str] = "MART + AWP"
    summary: ClassVar[str] = "MART with adversarial weight perturbation (Wu et al. 2020)"
