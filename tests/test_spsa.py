"""SPSA: the gradient estimate in closed form, bounded memory, and that it actually attacks."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from tests_helpers import binary_linear
from torch import nn

import attacks
from attacks.base import check_bounds
from attacks.spsa import SPSA
from bench.eval.loop import robust_points


def test_preset_is_the_papers_setting() -> None:
    p = attacks.build("spsa", eps=0.3).params()
    assert (p["attack"], p["lr"], p["delta"], p["samples"]) == ("spsa", 0.01, 0.01, 128)
    assert p["steps"] == 100 and p["eps"] == 0.3
    assert attacks.PRESETS.get("spsa").kind == "score-based"


def test_one_antithetic_pair_is_exact_on_a_linear_margin() -> None:
    """For a 2-class linear model the margin is ``w.x + c`` with w = w_1 - w_0 (label 0), so
    ``(L(x + d v) - L(x - d v)) / 2d = w.v`` exactly and the estimate is ``(w.v) v``."""
    model, w = binary_linear(dim=12, seed=0)
    x = torch.rand(5, 12, generator=torch.Generator().manual_seed(1))
    y = torch.zeros(5, dtype=torch.long)
    atk = SPSA(eps=0.1, samples=2, sample_chunk=2, delta=0.01)
    torch.manual_seed(7)
    g = atk.estimate_grad(model, x, y)
    torch.manual_seed(7)
    v = torch.empty(5, 1, 12).bernoulli_(0.5).mul_(2).sub_(1).squeeze(1)
    torch.testing.assert_close(g, (v @ w)[:, None] * v, atol=2e-3, rtol=1e-3)


def test_many_samples_estimate_the_gradient() -> None:
    """E[(w.v) v] = w for Rademacher v; with 4096 samples in 12 dims the estimate is close."""
    model, w = binary_linear(dim=12, seed=2)
    x = torch.rand(3, 12, generator=torch.Generator().manual_seed(3))
    y = torch.zeros(3, dtype=torch.long)
    g = SPSA(eps=0.1, samples=4096, sample_chunk=512).estimate_grad(model, x, y)
    cos = F.cosine_similarity(g, w.expand_as(g), dim=1)
    assert (cos > 0.95).all(), cos


class BatchSpy(nn.Module):
    """Records the largest batch the attack sends through the model."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.largest = inner, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.largest = max(self.largest, len(x))
        return self.inner(x)


def test_probes_are_evaluated_in_chunks(trained_linear: nn.Module, mnist_small) -> None:
    _, _, x, y = mnist_small
    spy = BatchSpy(trained_linear)
    SPSA(eps=0.1, steps=2, samples=128, sample_chunk=16, early_stop=False)(spy, x[:10], y[:10])
    assert spy.largest == 10 * 16  # not 10 * 128


def test_lowers_accuracy_and_stays_in_bounds(trained_linear: nn.Module, mnist_small) -> None:
    _, _, x, y = mnist_small
    x, y = x[:48], y[:48]
    x_adv = attacks.build("spsa", eps=0.1, steps=20)(trained_linear, x, y)
    check_bounds(x_adv, x, 0.1)
    clean = robust_points(trained_linear, x, y, None).accuracy
    with torch.no_grad():
        spsa = (trained_linear(x_adv).argmax(1) == y).float().mean().item()
    assert clean > 0.8
    assert spsa < clean - 0.3, (clean, spsa)
    assert all(p.grad is None for p in trained_linear.parameters())


def test_early_stop_leaves_misclassified_points_alone(trained_linear: nn.Module, mnist_small):
    _, _, x, y = mnist_small
    wrong = trained_linear(x).argmax(1) != y
    assert wrong.any()
    x_adv = SPSA(eps=0.1, steps=3, samples=8, start="none")(trained_linear, x, y)
    assert torch.equal(x_adv[wrong], x[wrong])
    assert not torch.equal(x_adv[~wrong], x[~wrong])


@pytest.mark.parametrize("bad", [{"samples": 3}, {"samples": 0}, {"delta": 0.0}, {"start": "x"}])
def test_rejects_bad_settings(bad: dict) -> None:
    with pytest.raises(ValueError):
        SPSA(eps=0.1, **bad)


def test_reports_progress_per_step_and_leaves_no_hook(trained_linear: nn.Module, mnist_small):
    _, _, x, y = mnist_small
    atk = SPSA(eps=0.1, steps=3, samples=4, sample_chunk=4, early_stop=False)
    seen: list[tuple[int, int, int]] = []
    atk.__dict__["on_step"] = lambda t, n, r: seen.append((t, n, r))
    atk(trained_linear, x[:8], y[:8])
    assert [s[:2] for s in seen] == [(1, 3), (2, 3), (3, 3)]
    atk.__dict__.pop("on_step")
    robust_points(trained_linear, x[:8], y[:8], atk, progress=True)
    assert "on_step" not in atk.__dict__ and "on_step" not in atk.params()
