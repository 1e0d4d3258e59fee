"""ALP, adversarial logit pairing (Kannan et al. 2018), as in the MART paper's baselines.

``CE_mean over the clean+adversarial batch + lam * pairing(z(x'), z(x))`` with PGD on CE.
The official code trains on one mixed minibatch, so the clean and adversarial examples go
through the model in one forward pass (BatchNorm sees both). ``pair_reduction`` says how
the squared logit difference is averaged (docs/reference.md §2.4): ``"example"`` (default)
is ``||z(x') - z(x)||^2`` averaged over examples; ``"element"`` averages over examples and
classes too (``F.mse_loss``, TensorFlow's ``mean_squared_error``), i.e. K times smaller.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from bench.core.lazy import F, torch
from defenses.base import PGDDefense, StepContext, register

if TYPE_CHECKING:
    from torch import Tensor, nn

PAIR_REDUCTIONS = ("example", "element")


def logit_pairing(z_a: Tensor, z_b: Tensor, reduction: str = "example") -> Tensor:
    """Squared logit difference: ``mean_i ||z_a_i - z_b_i||^2`` or its per-element mean."""
    sq = (z_a - z_b).pow(2)
    if reduction == "example":
        return sq.sum(dim=1).mean()
    if reduction == "element":
        return sq.mean()
    raise ValueError(f"unknown pair_reduction {reduction!r}; valid: {PAIR_REDUCTIONS}")


def alp_loss(
    logits_nat: Tensor, logits_adv: Tensor, y: Tensor, lam: float, reduction: str = "example"
) -> Tensor:
    ce = F.cross_entropy(torch.cat([logits_nat, logits_adv]), torch.cat([y, y]))
    return ce + lam * logit_pairing(logits_adv, logits_nat, reduction)


@register
@dataclass
class ALP(PGDDefense):
    lam: float = 0.5
    pair_reduction: str = "example"
    name: ClassVar[str] = "alp"
    display_name: ClassVar[str] = "ALP"
    summary: ClassVar[str] = "CE on clean+adv batch + lam * ||z(x') - z(x)||^2, PGD on CE"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.pair_reduction not in PAIR_REDUCTIONS:
            raise ValueError(f"unknown pair_reduction {self.pair_reduction!r}")

    def loss(
        self, model: nn.Module, x: Tensor, y: Tensor, x_adv: Tensor | None, ctx: StepContext
    ) -> Tensor:
        assert x_adv is not None
        logits = model(torch.cat([x, x_adv]))
        z_nat, z_adv = logits[: len(y)], logits[len(y) :]
        return alp_loss(z_nat, z_adv, y, self.lam, self.pair_reduction)
