"""Projected gradient descent in L-inf (Madry et al.), the workhorse of training and evaluation.

One loop serves the evaluation attacks (PGD-k on CE, CW-inf on the margin) and the
inner maximisation of the defenses (CE for Standard/MART, KL for TRADES).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, ClassVar

from attacks.base import Attack, AttackPreset, add_preset, input_grad, project, register
from attacks.losses import attack_loss
from bench.core.lazy import F, torch

if TYPE_CHECKING:
    from torch import Tensor, nn

STARTS = ("uniform", "normal", "none")


def random_start(x: Tensor, eps: float, start: str, sigma: float, *, clip: bool = True) -> Tensor:
    """The first iterate. ``clip=False`` leaves a uniform start outside [0, 1] where it falls
    (Dynamic's official code); the first projected step brings it back."""
    if start == "uniform":
        x0 = x + torch.empty_like(x).uniform_(-eps, eps)
        return x0.clamp_(0.0, 1.0) if clip else x0
    if start == "normal":
        # The official MART/TRADES code: x + sigma * N(0, 1), left unclipped until the first step.
        return x + sigma * torch.randn_like(x)
    if start == "none":
        return x.clone()
    raise ValueError(f"unknown start {start!r}; valid: {', '.join(STARTS)}")


@register
@dataclasses.dataclass
class PGD(Attack):
    """``steps`` signed-gradient steps of size ``step_size``, projected after each.

    ``restarts`` > 1 keeps, per example, the first restart that fools the model.
    Accuracy is measured at the last iterate, as in the MART/TRADES evaluations.
    """

    steps: int = 20
    step_size: float = 0.003
    start: str = "uniform"
    start_sigma: float = 0.001
    restarts: int = 1
    loss: str = "ce"
    name: ClassVar[str] = "pgd"

    def __post_init__(self) -> None:
        if self.steps < 0 or self.restarts < 1:
            raise ValueError("PGD needs steps >= 0 and restarts >= 1")
        if self.start not in STARTS:
            raise ValueError(f"unknown start {self.start!r}; valid: {', '.join(STARTS)}")
        if self.loss not in ("ce", "cw", "kl"):
            raise ValueError(f"unknown PGD loss {self.loss!r}; valid: ce, cw, kl")

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        return self._attack(model, x, y, self.start_point(x))

    def perturb_kept(self, model: nn.Module, x: Tensor, y: Tensor, keep: Tensor) -> Tensor:
        """The start is drawn for the whole batch first, so each kept point starts where it
        would have started had every point been attacked: its result is the same."""
        start = self.start_point(x)
        out = x.clone()
        idx = keep.nonzero().squeeze(1)
        if idx.numel():
            out[idx] = self._attack(model, x[idx], y[idx], start[idx])
        return out

    def _attack(self, model: nn.Module, x: Tensor, y: Tensor, start: Tensor) -> Tensor:
        p_nat = None
        if self.loss == "kl":
            with torch.no_grad():
                p_nat = F.softmax(model(x), dim=1)
        best = self.run_once(model, x, y, p_nat, start)
        for _ in range(self.restarts - 1):
            with torch.no_grad():
                robust = model(best).argmax(1) == y
            if not robust.any():
                break
            idx = robust.nonzero().squeeze(1)
            p_sub = None if p_nat is None else p_nat[idx]
            cand = self.run_once(model, x[idx], y[idx], p_sub)
            with torch.no_grad():
                fooled = model(cand).argmax(1) != y[idx]
            best[idx[fooled]] = cand[fooled]
        return best

    def run_once(
        self,
        model: nn.Module,
        x: Tensor,
        y: Tensor,
        p_nat: Tensor | None,
        start: Tensor | None = None,
    ) -> Tensor:
        x_adv = self.start_point(x) if start is None else start
        if self.steps == 0:
            return self.project(x_adv, x)
        bounds = self.bounds(x)
        for _ in range(self.steps):
            grad = self.gradient(model, x_adv.detach().requires_grad_(True), y, p_nat)
            x_adv = self.step(x_adv.detach(), grad, x, bounds)
        return x_adv

    # The geometry of the threat model: where to start, how to step, how to project. The
    # L2 attacks (attacks/l2.py) change only these.
    def start_point(self, x: Tensor) -> Tensor:
        return random_start(x, self.eps, self.start, self.start_sigma)

    def project(self, x_adv: Tensor, x: Tensor) -> Tensor:
        return project(x_adv, x, self.eps)

    def bounds(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The eps-ball within [0, 1] as two bounds, computed once: one clamp a step, and
        bit for bit the same as ``project`` (min and max are exact)."""
        return (x - self.eps).clamp_(min=0.0), (x + self.eps).clamp_(max=1.0)

    def step(self, x_adv: Tensor, grad: Tensor, x: Tensor, bounds: tuple[Tensor, Tensor]) -> Tensor:
        """One signed-gradient step of ``step_size``, projected."""
        return torch.clamp(x_adv + self.step_size * grad.sign(), *bounds)

    def gradient(self, model: nn.Module, x_adv: Tensor, y: Tensor, p_nat: Tensor | None) -> Tensor:
        """The input gradient each step follows (the adaptive attacks change only this:
        bench's BPDA differentiates a stand-in of the model, EOT averages over draws)."""
        with torch.enable_grad():
            return input_grad(attack_loss(self.loss, model(x_adv), y, p_nat), x_adv)


@register
@dataclasses.dataclass
class FGSM(Attack):
    """One signed-gradient step of size eps on CE, no random start (Goodfellow et al.)."""

    name: ClassVar[str] = "fgsm"

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        x_req = x.clone().requires_grad_(True)
        with torch.enable_grad():
            grad = input_grad(attack_loss("ce", model(x_req), y), x_req)
        return project(x + self.eps * grad.sign(), x, self.eps)


@register
@dataclasses.dataclass
class CWInf(PGD):
    """CW-inf: PGD on the CW margin (kappa 0) with the true class masked out."""

    loss: str = "cw"
    name: ClassVar[str] = "cw"
    title: ClassVar[str] = "CW-inf"
    plain: ClassVar[str] = "pgd"  # the attack to use for other losses

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.loss != "cw":
            raise ValueError(
                f"{self.title} always uses the margin loss; use '{self.plain}' for other losses"
            )


add_preset("fgsm", AttackPreset("fgsm", label="FGSM", source="MART paper §4.2"))
_PAPER = "MART paper §4: random start, step eps/10"
for _k, _restarts, _source in (
    (10, 1, _PAPER),
    (20, 1, _PAPER),
    (100, 1, _PAPER),
    (20, 5, "PGD-20 of MART §4 with 5 random restarts (a gradient-masking check)"),
    (100, 5, "PGD-100 of MART §4 with 5 random restarts (the checklist's convergence rung)"),
):
    _x = f"-r{_restarts}" if _restarts > 1 else ""
    add_preset(
        f"pgd{_k}{_x}",
        AttackPreset(
            "pgd",
            {"steps": _k, "start": "uniform", "restarts": _restarts, "loss": "ce"},
            step_fraction=0.1,
            label=f"PGD-{_k}" + (f" x{_restarts}" if _x else ""),
            source=_source,
        ),
    )
add_preset(
    "cw20",
    AttackPreset(
        "cw",
        {"steps": 20, "start": "uniform", "restarts": 1},
        step_fraction=0.1,
        label="CW-inf",
        source="MART paper §4.2: CW-inf optimised by PGD (steps as PGD-20; unverified)",
    ),
)
