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


def official_mart(zn: torch.Tensor, za: torch.Tensor, y: torch.Tensor, lam: float) -> torch.Tensor:
    """The official code's formula, with ``nn.KLDivLoss(reduction="none")`` for the KL."""
    p_adv, p_nat = torch.softmax(za, dim=1), torch.softmax(zn, dim=1)
    wrong = top_wrong_class(p_adv, y)
    margin = -torch.log(1.0001 - p_adv.gather(1, wrong[:, None]).squeeze(1) + 1e-12)
    bce = torch.nn.functional.cross_entropy(za, y) + margin.mean()
    kl = torch.nn.KLDivLoss(reduction="none")(torch.log(p_adv + 1e-12), p_nat).sum(dim=1)
    true = p_nat.gather(1, y[:, None]).squeeze(1)
    return bce + lam * (kl * (1.0000001 - true)).sum() / len(y)


def test_mart_kl_is_zero_not_nan_where_a_clean_probability_underflows() -> None:
    """A logit gap above ~104 makes a float32 clean probability exactly 0: ``0 log 0`` must
    count 0 as in ``KLDivLoss``, with finite gradients, so training does not stop on NaN.

    The reference is the official formula in float64, where nothing underflows (there,
    ``KLDivLoss`` itself would give a NaN gradient at an exact 0)."""
    logits_nat = [[150.0, 0.0, -10.0], [1.0, 2.0, 0.5]]
    logits_adv = [[1.0, 2.0, 0.0], [0.0, 3.0, 1.0]]
    y = torch.tensor([0, 1])
    grads, values = [], []
    for dtype, loss_fn in ((torch.float32, mart_loss), (torch.float64, official_mart)):
        zn = torch.tensor(logits_nat, dtype=dtype, requires_grad=True)
        za = torch.tensor(logits_adv, dtype=dtype, requires_grad=True)
        if dtype == torch.float32:
            assert torch.softmax(zn, dim=1)[0, 2] == 0  # the case: an exact underflow
        loss = loss_fn(zn, za, y, 5.0)
        loss.backward()
        values.append(loss.item())
        grads.append((zn.grad.double(), za.grad.double()))
    assert math.isfinite(values[0]) and values[0] == pytest.approx(values[1], rel=1e-6)
    for ours, ref in zip(grads[0], grads[1], strict=True):
        assert torch.isfinite(ours).all()
        torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
