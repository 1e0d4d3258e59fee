"""Semi-supervised defenses (MART paper §3.3): MART-semi, RST and UAT++.

All three train on labelled and pseudo-labelled examples with the same per-example loss
``l_i`` and weigh the pseudo-labelled ones by ``gamma``:

    L = sum_i w_i * l_i / B,   w_i = 1 (labelled) or gamma (pseudo-labelled)

so that, with no pseudo-labelled example in the batch (or gamma = 1), each reduces
exactly to its supervised parent. Dividing by the whole batch size B (not by the
weight sum) is the paper's ``L_sup + gamma * L_unsup`` with both sums over one batch.

- ``mart-semi``: ``l_i`` = MART's (BCE(x') + lam * KL(p(x) || p(x')) * (1 - p_y(x))),
  PGD on CE with the (pseudo-)label.
- ``rst`` (Carmon et al. 2019): ``l_i`` = TRADES's (CE(x) + beta * KL(p(x) || p(x'))),
  PGD on the KL term (label-free). RST's own weighting is a 50/50 batch mix with gamma
  1; here batches are drawn uniformly from the union, so its gamma stays a parameter.
- ``uat++`` (Uesato/Alayrac et al. 2019, as the MART paper writes it, eq. 9):
  ``l_i`` = CE(p(x'), y) + lam * KL(p(x) || p(x')), with x' the PGD-on-CE example
  reused for the KL term (the paper's footnote: UAT++ reuses it "for efficiency").

Which examples are pseudo-labelled comes from ``ctx.unlabelled`` (set by the training
loop for runs with an unlabelled source; None means all labelled).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from attacks.losses import kl_to
from bench.core.lazy import F, torch
from defenses.base import PGDDefense, StepContext, register
from defenses.mart import Mart, mart_per_example
from defenses.trades import Trades

if TYPE_CHECKING:
    from torch import Tensor, nn


def weighted_mean(per_example: Tensor, unlabelled: Tensor | None, gamma: float) -> Tensor:
    """``sum_i w_i * l_i / B`` with ``w_i`` = 1 (labelled) or ``gamma`` (pseudo-labelled)."""
    if unlabelled is None:
        return per_example.mean()
    w = torch.where(unlabelled.to(per_example.device).bool(), gamma, 1.0).to(per_example.dtype)
    return (w * per_example).sum() / per_example.shape[0]


def semi_mart_loss(
    logits_nat: Tensor,
    logits_adv: Tensor,
    y: Tensor,
    lam: float,
    gamma: float,
    unlabelled: Tensor | None = None,
) -> Tensor:
    return weighted_mean(mart_per_example(logits_nat, logits_adv, y, lam), unlabelled, gamma)


def rst_loss(
    logits_nat: Tensor,
    logits_adv: Tensor,
    y: Tensor,
    beta: float,
    gamma: float,
    unlabelled: Tensor | None = None,
) -> Tensor:
    """TRADES per example (CE on the clean logits + beta * KL), weighted."""
    per = F.cross_entropy(logits_nat, y, reduction="none")
    per = per + beta * kl_to(F.softmax(logits_nat, dim=1), logits_adv)
    return weighted_mean(per, unlabelled, gamma)


def uat_pp_loss(
    logits_nat: Tensor,
    logits_adv: Tensor,
    y: Tensor,
    lam: float,
    gamma: float,
    unlabelled: Tensor | None = None,
) -> Tensor:
    """Adversarial CE + lam * KL(p(x) || p(x')) per example, weighted."""
    per = F.cross_entropy(logits_adv, y, reduction="none")
    per = per + lam * kl_to(F.softmax(logits_nat, dim=1), logits_adv)
    return weighted_mean(per, unlabelled, gamma)


@register
@dataclass
class MartSemi(Mart):
    gamma: float = 1.0
    name: ClassVar[str] = "mart-semi"
    display_name: ClassVar[str] = "MART"
    summary: ClassVar[str] = "MART on labelled + gamma * MART on pseudo-labelled data (§3.3)"

    def loss(
        self, model: nn.Module, x: Tensor, y: Tensor, x_adv: Tensor | None, ctx: StepContext
    ) -> Tensor:
        assert x_adv is not None
        return semi_mart_loss(model(x), model(x_adv), y, self.lam, self.gamma, ctx.unlabelled)


@register
@dataclass
class RST(Trades):
    gamma: float = 1.0
    name: ClassVar[str] = "rst"
    display_name: ClassVar[str] = "RST"
    summary: ClassVar[str] = "RST: TRADES on labelled + gamma * pseudo-labelled data"

    def loss(
        self, model: nn.Module, x: Tensor, y: Tensor, x_adv: Tensor | None, ctx: StepContext
    ) -> Tensor:
        assert x_adv is not None
        return rst_loss(model(x), model(x_adv), y, self.beta, self.gamma, ctx.unlabelled)


@register
@dataclass
class UATPlusPlus(PGDDefense):
    lam: float = 6.0
    gamma: float = 1.0
    name: ClassVar[str] = "uat++"
    display_name: ClassVar[str] = "UAT++"
    summary: ClassVar[str] = "UAT++: CE(x') + lam * KL(p(x) || p(x')), PGD on CE; gamma on unlab."

    def loss(
        self, model: nn.Module, x: Tensor, y: Tensor, x_adv: Tensor | None, ctx: StepContext
    ) -> Tensor:
        assert x_adv is not None
        return uat_pp_loss(model(x), model(x_adv), y, self.lam, self.gamma, ctx.unlabelled)
