"""Objectives that attacks maximise, each summed over the batch (sign steps ignore scale)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.core.lazy import F, torch

if TYPE_CHECKING:
    from torch import Tensor


def cw_margin(logits: Tensor, y: Tensor) -> Tensor:
    """Per-example CW margin ``max_{k != y} z_k - z_y``, true class masked out before the max.

    Masking with -inf (not multiplying by ``1 - onehot``) matters: with ``(1-y)*z`` a
    negative wrong-class logit loses to the zero put in place of the true class.
    """
    true = logits.gather(1, y[:, None]).squeeze(1)
    others = logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf"))
    return others.amax(dim=1) - true


def kl_to(p_nat: Tensor, logits_adv: Tensor) -> Tensor:
    """Per-example ``KL(p_nat || softmax(logits_adv))`` as TRADES computes it (no epsilon)."""
    log_q = F.log_softmax(logits_adv, dim=1)
    return (p_nat * (torch.log(p_nat.clamp_min(1e-30)) - log_q)).sum(dim=1)


def attack_loss(kind: str, logits: Tensor, y: Tensor, p_nat: Tensor | None = None) -> Tensor:
    if kind == "ce":
        return F.cross_entropy(logits, y, reduction="sum")
    if kind == "cw":
        return cw_margin(logits, y).sum()
    if kind == "kl":
        if p_nat is None:
            raise ValueError("the KL attack loss needs the clean probabilities")
        return kl_to(p_nat, logits).sum()
    raise ValueError(f"unknown attack loss {kind!r}; valid: ce, cw, kl")
