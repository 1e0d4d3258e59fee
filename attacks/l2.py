"""L2 threat models: PGD-L2, CW-L2 optimised by PGD (as the paper's CW-inf is),
AutoAttack's L2 version, SPSA in L2 (gradient-free) and transfer from L2 white-box attacks.

PGD-L2 follows Madry et al. and torchattacks' ``PGDL2``: a random start in the ball
(a Gaussian direction scaled to ``U(0, 1) * eps``), then steps of ``step_size`` along the
per-point L2-normalised gradient, each projected back onto the ball (the perturbation
scaled down where longer) and onto [0, 1]. Only the geometry differs from L-inf PGD
(attacks/pgd.py): restarts, the kept points and the losses are the same code.

Default budgets per data set, stated with their sources, are in ``L2_EPS``: what a
command uses for an L2 attack when no ``--eps`` is given.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, ClassVar

from attacks.autoattack import AutoAttackStandard
from attacks.base import L2, AttackPreset, add_preset, per_point, project_l2, register
from attacks.pgd import PGD, CWInf
from attacks.spsa import SETTINGS as SPSA_SETTINGS
from attacks.spsa import SPSA
from attacks.transfer import Transfer, add_transfer_presets
from bench.core.constants import Protocol
from bench.core.lazy import torch

if TYPE_CHECKING:
    from torch import Tensor

# The usual L2 budgets: CIFAR-10 eps 0.5 (RobustBench's L2 leaderboard), MNIST eps 2.0
# (the AutoAttack paper's MNIST L2 evaluations, Croce & Hein 2020).
L2_EPS = {"MNIST": 2.0, "CIFAR-10": 0.5}  # by data-set family (bench/core/paper.py FAMILY)


def uniform_l2_start(x: Tensor, eps: float) -> Tensor:
    """A Gaussian direction at radius ``U(0, 1) * eps`` from each point, then [0, 1]."""
    delta = torch.randn_like(x)
    norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
    radius = torch.rand(len(x), device=x.device, dtype=x.dtype) * eps
    return (x + delta * per_point(radius / norms, x)).clamp_(0.0, 1.0)


@register
@dataclasses.dataclass
class PGDL2(PGD):
    """PGD in L2: ``steps`` steps of L2 length ``step_size`` along the normalised gradient."""

    name: ClassVar[str] = "pgd-l2"
    norm: ClassVar[str] = L2

    def start_point(self, x: Tensor) -> Tensor:
        """uniform: a Gaussian direction at radius U(0, 1) * eps; normal: the official
        MART/TRADES start ``x + sigma * N(0, 1)``, projected onto the ball; none: x."""
        if self.start == "none":
            return x.clone()
        if self.start == "normal":
            return project_l2(x + self.start_sigma * torch.randn_like(x), x, self.eps)
        return uniform_l2_start(x, self.eps)

    def project(self, x_adv: Tensor, x: Tensor) -> Tensor:
        return project_l2(x_adv, x, self.eps)

    def bounds(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x, x  # unused: the L2 projection needs only x

    def step(self, x_adv: Tensor, grad: Tensor, x: Tensor, bounds: tuple[Tensor, Tensor]) -> Tensor:
        norms = grad.flatten(1).norm(dim=1).clamp_min(1e-12)
        return project_l2(x_adv + self.step_size * grad / per_point(norms, x), x, self.eps)


@register
@dataclasses.dataclass
class CWL2(CWInf, PGDL2):
    """CW-L2 optimised by PGD-L2: CW-inf's margin loss (and its check) in PGD-L2's geometry."""

    name: ClassVar[str] = "cw-l2"
    title: ClassVar[str] = "CW-L2"
    plain: ClassVar[str] = "pgd-l2"


@register
@dataclasses.dataclass
class AutoAttackL2(AutoAttackStandard):
    """Standard AutoAttack's L2 version in one call (APGD-CE, APGD-T, FAB-T, Square)."""

    name: ClassVar[str] = "autoattack-l2"
    norm: ClassVar[str] = L2


@register
@dataclasses.dataclass
class SPSAL2(SPSA):
    """SPSA's estimates and Adam steps, started and projected in the L2 ball."""

    name: ClassVar[str] = "spsa-l2"
    norm: ClassVar[str] = L2

    def start_point(self, x: Tensor) -> Tensor:
        return x.clone() if self.start == "none" else uniform_l2_start(x, self.eps)

    def project(self, x_adv: Tensor, x: Tensor) -> Tensor:
        return project_l2(x_adv, x, self.eps)


@register
@dataclasses.dataclass
class TransferL2(Transfer):
    """Transfer from an L2 white-box preset run on the surrogate."""

    name: ClassVar[str] = "transfer-l2"
    norm: ClassVar[str] = L2
    bases: ClassVar[tuple[str, ...]] = ("pgd20-l2", "cw20-l2")


_SOURCE = (
    "bench's L2 counterpart of the MART paper's L-inf presets: random start in the ball, "
    "step eps/10 along the normalised gradient (as torchattacks' PGDL2)"
)
for _k in (20, 100):
    add_preset(
        f"pgd{_k}-l2",
        AttackPreset(
            "pgd-l2",
            {"steps": _k, "start": "uniform", "restarts": 1, "loss": "ce"},
            step_fraction=0.1,
            label=f"PGD-{_k} (L2)",
            source=_SOURCE,
        ),
    )
add_preset(
    "cw20-l2",
    AttackPreset(
        "cw-l2",
        {"steps": 20, "start": "uniform", "restarts": 1},
        step_fraction=0.1,
        label="CW (L2)",
        source="CW margin optimised by PGD-L2, as the MART paper's CW-inf is by PGD; " + _SOURCE,
    ),
)
add_preset(
    "autoattack-l2",
    AttackPreset(
        "autoattack-l2",
        label="AutoAttack (L2)",
        source="AutoAttack standard, L2 version (Croce & Hein 2020; RobustBench L2): "
        "APGD-CE, APGD-T, FAB-T, Square in one call",
        kind="ensemble",
        protocol=Protocol.SINGLE,
    ),
)
add_preset(
    "spsa-l2",
    AttackPreset(
        "spsa-l2",
        dict(SPSA_SETTINGS),
        label="SPSA (L2)",
        source="SPSA's settings (Uesato et al. 2018 via the MART paper §4.2; 100 iterations "
        "assumed) with bench's L2 start and projection (a uniform radius in the ball)",
        kind="score-based",
    ),
)
add_transfer_presets(
    "transfer-l2",
    TransferL2.bases,
    "bench's L2 counterpart of the MART paper's transfer presets (§4.2 / Table 3): an L2 "
    "attack crafted on the same naturally trained surrogate",
)
