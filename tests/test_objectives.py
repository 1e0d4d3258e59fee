"""MART and TRADES objectives against values computed by hand (docs/reference.md §2.2, §2.3)."""

from __future__ import annotations

import math

import pytest
import torch

from defenses.mart import mart_loss, top_wrong_class
from defenses.trades import trades_loss

LOGITS_NAT = [[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]]
LOGITS_ADV = [[0.5, 1.5, -0.5], [1.0, -2.0, 0.0]]
LABELS = [0, 2]


def softmax(z: list[float]) -> list[float]:
    m = max(z)
    e = [math.exp(v - m) for v in z]
    return [v / sum(e) for v in e]


def hand_mart(lam: float) -> float:
    """Per docs/reference.md §2.2: BCE(x') + lam * sum_i KL_i * (1.0000001 - p_y(x_i)) / B."""
    bce, reg = 0.0, 0.0
    for zn, za, y in zip(LOGITS_NAT, LOGITS_ADV, LABELS, strict=True):
        pn, pa = softmax(zn), softmax(za)
        k = max((k for k in range(3) if k != y), key=lambda k: pa[k])
        bce += -math.log(pa[y]) - math.log(1.0001 - pa[k] + 1e-12)
        kl = sum(pn[j] * (math.log(pn[j]) - math.log(pa[j] + 1e-12)) for j in range(3))
        reg += kl * (1.0000001 - pn[y])
    return bce / 2 + lam * reg / 2


def hand_trades(beta: float) -> float:
    ce, kl = 0.0, 0.0
    for zn, za, y in zip(LOGITS_NAT, LOGITS_ADV, LABELS, strict=True):
        pn, pa = softmax(zn), softmax(za)
        ce += -math.log(pn[y])
        kl += sum(pn[j] * (math.log(pn[j]) - math.log(pa[j])) for j in range(3))
    return ce / 2 + beta * kl / 2


def tensors() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return (
        torch.tensor(LOGITS_NAT, dtype=torch.float64, requires_grad=True),
        torch.tensor(LOGITS_ADV, dtype=torch.float64, requires_grad=True),
        torch.tensor(LABELS),
    )


@pytest.mark.parametrize("lam", [0.0, 5.0, 6.0])
def test_mart_matches_hand_computation(lam: float) -> None:
    zn, za, y = tensors()
    assert mart_loss(zn, za, y, lam).item() == pytest.approx(hand_mart(lam), rel=1e-9)


@pytest.mark.parametrize("beta", [0.0, 1.0, 6.0])
def test_trades_matches_hand_computation(beta: float) -> None:
    zn, za, y = tensors()
    assert trades_loss(zn, za, y, beta).item() == pytest.approx(hand_trades(beta), rel=1e-9)


def test_mart_gradient_flows_through_clean_probabilities() -> None:
    """Official MART detaches nothing: the weight (1 - p_y(x)) and KL pass gradient to x."""
    zn, za, y = tensors()
    mart_loss(zn, za, y, 5.0).backward()
    assert zn.grad is not None and zn.grad.abs().sum() > 0
    assert za.grad is not None and za.grad.abs().sum() > 0


def test_mart_without_regulariser_ignores_clean_logits() -> None:
    zn, za, y = tensors()
    mart_loss(zn, za, y, 0.0).backward()
    assert zn.grad is None or zn.grad.abs().sum() == 0


def test_top_wrong_class_skips_the_label() -> None:
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3]])
    assert top_wrong_class(probs, torch.tensor([0, 2, 0])).tolist() == [1, 1, 1]
