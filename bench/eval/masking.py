"""Signs that a model hides its gradients, found by looking, not by being told (the
lecture's checklist, Athalye et al. 2018): a random part (two forward passes differ), and a
gradient that is missing (the input leaves the autograd graph) or zero (a quantisation).

``adaptive_attack`` names the attack a model needs from what was found: EOT for a random
model (its BPDA view too), BPDA where gradients are missing or a transformation zeroes
them, CW-inf (a loss on the logits) where a bare network's softmax saturates, else PGD-20;
and, behind a quantiser (a thermometer encoding, bit depth, feature squeezing), LS-PGA
beside it (``model_attacks``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from attacks import lspga
from bench.core.constants import EVAL_BATCH
from bench.eval.audit import input_gradient_norms
from bench.eval.checks import ZERO_GRAD


@dataclass(frozen=True)
class Masking:
    """What the probes found on ``n`` points."""

    n: int
    random: bool  # two forward passes in eval mode gave different logits
    missing: bool  # the loss does not reach the input (no autograd path)
    zero: int  # points whose input gradient is zero
    transformed: bool = False  # an input transformation BPDA can differentiate around
    quantised: bool = False  # behind a quantiser: LS-PGA attacks its levels

    @property
    def masked(self) -> bool:
        return self.missing or self.zero > 0

    def summary(self) -> str:
        parts = ["random (two forward passes differ)" if self.random else "deterministic"]
        if self.missing:
            parts.append("no gradient reaches the input")
        else:
            parts.append(f"{self.zero} of {self.n} points with a zero input gradient")
        return "; ".join(parts)


def probe(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = EVAL_BATCH) -> Masking:
    """Look for randomness and missing or zero input gradients (eval mode; mode restored),
    on the device of ``x`` (the model's).
    The per-point gradient norms are the audit's own (``input_gradient_norms``)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            random = any(not torch.equal(model(b), model(b)) for b in x.split(batch_size))
        xg = x[:1].clone().requires_grad_(True)
        with torch.enable_grad():
            loss = nn.functional.cross_entropy(model(xg), y[:1])
            missing = not loss.requires_grad or (
                torch.autograd.grad(loss, [xg], allow_unused=True)[0] is None
            )
    finally:
        model.train(was_training)
    norms = input_gradient_norms(model, x, y, batch_size, device=str(x.device))
    zero = int((norms <= ZERO_GRAD).sum())
    transformed = hasattr(model, "straight_through")
    return Masking(len(y), random, missing, zero, transformed, lspga.quantised(model))


def adaptive_attack(found: Masking) -> str:
    """The attack preset a model needs: EOT for randomness, BPDA for a missing gradient or
    a transformation's zero one, CW-inf where a bare network's gradient is zero (a
    saturated softmax, as after defensive distillation: the logit margin still has one)."""
    if found.random:
        return "eot-pgd20"
    if found.missing or (found.zero and found.transformed):
        return "bpda-pgd20"
    return "cw20" if found.zero else "pgd20"


def model_attacks(found: Masking) -> list[str]:
    """Attacks made for the model's own defense, evaluated beside the adaptive one: LS-PGA
    behind a quantiser (the thermometer paper's attack, on the levels themselves)."""
    return ["ls-pga"] if found.quantised else []
