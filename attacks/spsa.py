"""SPSA (Uesato et al. 2018): a gradient-free L-inf attack, the standard gradient-masking check.

The attack never asks the model for a gradient. Each iteration estimates the gradient of the
CW margin from ``samples`` antithetic Rademacher probes, ``(L(x + d v) - L(x - d v)) / 2d * v``
averaged over probes, takes an Adam step on the perturbation and projects back onto the
eps-ball and [0, 1]. A model whose robustness comes from broken gradients falls to it while
holding up against PGD; a truly robust one does not (the MART paper's §4.2 check).

The probes are evaluated ``sample_chunk`` copies per example at a time, so memory is bounded
by ``batch * sample_chunk`` images whatever ``samples`` is.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, ClassVar

from attacks.base import Attack, AttackPreset, add_preset, project, register
from attacks.losses import cw_margin
from bench.core.lazy import no_grad, torch

if TYPE_CHECKING:
    from torch import Tensor, nn


@register
@dataclasses.dataclass
class SPSA(Attack):
    """Adam (``lr``) on SPSA gradient estimates of the margin ``max_{k != y} z_k - z_y``.

    ``early_stop``: an example stops moving once it is misclassified (its current iterate is
    kept), as cleverhans' ``early_stop_loss_threshold`` does; it changes no accuracy (a
    misclassified iterate is already a success) and saves most of the queries on weak models.
    """

    steps: int = 100
    lr: float = 0.01
    delta: float = 0.01
    samples: int = 128
    sample_chunk: int = 32
    start: str = "uniform"
    early_stop: bool = True
    beta1: float = 0.9
    beta2: float = 0.999
    adam_eps: float = 1e-8
    name: ClassVar[str] = "spsa"

    def __post_init__(self) -> None:
        if self.samples < 2 or self.samples % 2:
            raise ValueError("SPSA needs an even number of samples (antithetic pairs), >= 2")
        if self.sample_chunk < 1 or self.steps < 0 or self.delta <= 0:
            raise ValueError("SPSA needs sample_chunk >= 1, steps >= 0 and delta > 0")
        if self.start not in ("uniform", "none"):
            raise ValueError(f"unknown SPSA start {self.start!r}; valid: uniform, none")

    @no_grad
    def estimate_grad(self, model: nn.Module, x_adv: Tensor, y: Tensor) -> Tensor:
        """Antithetic SPSA estimate of d margin / d x for each example of ``x_adv``."""
        n, shape = len(x_adv), x_adv.shape[1:]
        pairs = self.samples // 2
        grad = torch.zeros_like(x_adv)
        per = max(1, self.sample_chunk // 2)  # antithetic pairs evaluated per forward pass
        for lo in range(0, pairs, per):
            k = min(per, pairs - lo)
            v = torch.empty((n, k, *shape), device=x_adv.device).bernoulli_(0.5).mul_(2).sub_(1)
            step = self.delta * v
            probes = torch.cat([x_adv[:, None] + step, x_adv[:, None] - step], 1)
            yy = y[:, None].expand(n, 2 * k).reshape(-1)
            loss = cw_margin(model(probes.reshape(-1, *shape)), yy).view(n, 2 * k)
            diff = (loss[:, :k] - loss[:, k:]) / (2 * self.delta)
            grad += (diff.view(n, k, *([1] * len(shape))) * v).sum(1)
        return grad / pairs

    def start_point(self, x: Tensor) -> Tensor:
        """uniform: a uniform draw in the eps-ball (projected onto [0, 1]); none: x."""
        if self.start == "none":
            return x.clone()
        return project(x + torch.empty_like(x).uniform_(-self.eps, self.eps), x, self.eps)

    def project(self, x_adv: Tensor, x: Tensor) -> Tensor:
        """Back onto the eps-ball around x and [0, 1] (L2: ``SPSAL2``)."""
        return project(x_adv, x, self.eps)

    @no_grad
    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        x_adv = self.start_point(x)
        m, v = torch.zeros_like(x), torch.zeros_like(x)
        active = torch.ones(len(x), dtype=torch.bool, device=x.device)
        for t in range(1, self.steps + 1):
            if self.early_stop:
                active &= model(x_adv).argmax(1) == y
            idx = active.nonzero().squeeze(1)
            if idx.numel() == 0:
                break
            g = self.estimate_grad(model, x_adv[idx], y[idx])
            # Adam ascent on the margin; per-element state, only active examples move.
            m[idx] = self.beta1 * m[idx] + (1 - self.beta1) * g
            v[idx] = self.beta2 * v[idx] + (1 - self.beta2) * g * g
            m_hat = m[idx] / (1 - self.beta1**t)
            v_hat = v[idx] / (1 - self.beta2**t)
            step = self.lr * m_hat / (v_hat.sqrt() + self.adam_eps)
            x_adv[idx] = self.project(x_adv[idx] + step, x[idx])
            self.tick(t, self.steps, int(active.sum()))
        return x_adv


# The preset's settings (the L2 preset, attacks/l2.py, takes the same).
SETTINGS = {"steps": 100, "lr": 0.01, "delta": 0.01, "samples": 128, "sample_chunk": 32}
add_preset(
    "spsa",
    AttackPreset(
        "spsa",
        SETTINGS,
        label="SPSA",
        source="Uesato et al. 2018 via the MART paper §4.2 (Adam lr 0.01, 128 antithetic "
        "Rademacher samples, delta 0.01, margin loss); 100 iterations assumed: neither the "
        "paper nor the MART repo states it, 100 is the common cleverhans setting (unverified)",
        kind="score-based",
    ),
)
