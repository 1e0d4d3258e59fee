"""The paper's baselines (MMA, Dynamic, ALP, CLP): objectives by hand, closed forms, resume."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from conftest import requires_mnist
from tests_helpers import binary_linear

import defenses
from bench.models import MODELS
from bench.spec.run import resolve
from bench.store.checkpoints import load_state, save_state
from bench.train.loop import Interrupted, train
from defenses.alp import alp_loss
from defenses.base import StepContext
from defenses.clp import clp_loss
from defenses.dynamic import Dynamic, fosc, fosc_criterion
from defenses.mma import MMA, an_pgd, bisect_eps, mma_loss, soft_logit_margin

Z_NAT = [[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-0.5, 1.0, 0.0]]
Z_ADV = [[0.5, 1.5, -0.5], [1.0, -2.0, 0.0], [0.0, 0.0, 2.0]]
Y = [0, 2, 1]


def ce(z: list[float], y: int) -> float:
    return math.log(sum(math.exp(v) for v in z)) - z[y]


def t(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


# --- MMA ---------------------------------------------------------------------------------


def test_soft_logit_margin_by_hand() -> None:
    got = soft_logit_margin(t(Z_NAT), torch.tensor(Y)).tolist()
    want = [
        math.log(math.exp(0.5) + math.exp(-1.0)) - 2.0,
        math.log(math.exp(0.1) + math.exp(0.2)) - 0.3,
        math.log(math.exp(-0.5) + math.exp(0.0)) - 1.0,
    ]
    assert got == pytest.approx(want, rel=1e-12)


def test_mma_loss_by_hand() -> None:
    """Example 0 correct below the hinge (CE at its margin point), 1 misclassified (clean
    CE of the mixed batch), 2 correct with eps* >= d_max (dropped by the hinge)."""
    correct = torch.tensor([True, False, True])
    eps_star = torch.tensor([0.1, 0.0, 0.5])
    got = mma_loss(t(Z_NAT), t(Z_ADV), torch.tensor(Y), correct, eps_star, 0.45, 1 / 3)
    mma = (ce(Z_ADV[0], 0) + ce(Z_ADV[1], 2) + 0.0) / 3
    clean = sum(ce(z, y) for z, y in zip(Z_NAT, Y, strict=True)) / 3
    assert got.item() == pytest.approx(2 / 3 * mma + 1 / 3 * clean, rel=1e-12)


def margin_model(dim: int, flip_eps: float) -> tuple[torch.nn.Module, torch.Tensor]:
    """2-class linear model whose label-0 margin at x = 0.5 flips at L-inf eps ``flip_eps``:
    ``z_0 - z_1 = flip_eps * ||w_1 - w_0||_1``, the closed form the bisection must find."""
    model, d = binary_linear(dim, seed=3)
    x = torch.full((1, dim), 0.5)
    with torch.no_grad():
        gap = (model(x)[0, 0] - model(x)[0, 1]).item()
        model.bias[0] += flip_eps * d.abs().sum().item() - gap
    return model, d


@pytest.mark.parametrize("prev_eps", [0.05, 0.3])  # bracket [prev, 1.05 d_max] / [0, prev]
def test_an_pgd_finds_the_closed_form_margin(prev_eps: float) -> None:
    d_max, flip = 0.45, 0.2
    model, d = margin_model(16, flip)
    model.train()
    x, y = torch.full((2, 16), 0.5), torch.zeros(2, dtype=torch.long)
    x_m, eps = an_pgd(
        model,
        x,
        y,
        torch.full((2,), prev_eps),
        steps=10,
        step_scale=2.5,
        d_max=d_max,
        search_steps=10,
    )
    tol = 1.05 * d_max / 2**10 + 1e-6
    assert eps.tolist() == pytest.approx([flip, flip], abs=tol)
    torch.testing.assert_close(x_m, x + eps[:, None] * d.sign())
    assert model.training  # mode restored


def test_bisection_keeps_a_flipped_start_below_it() -> None:
    """Starting from a point that already flips, the answer lies in [0, eps0]."""
    model, d = margin_model(8, 0.1)
    x, y = torch.full((1, 8), 0.5), torch.zeros(1, dtype=torch.long)
    eps0 = torch.tensor([0.4])
    m0 = soft_logit_margin(model(x + 0.4 * d.sign()), y)
    assert m0.item() > 0
    got = bisect_eps(model, x, y, d.sign()[None], eps0, m0, 1.05 * 0.45, 12)
    assert got.item() == pytest.approx(0.1, abs=1.05 * 0.45 / 2**12 + 1e-6)


def test_mma_remembers_eps_per_index_and_round_trips() -> None:
    model, _ = margin_model(8, 0.2)
    x = torch.full((3, 8), 0.5)
    y = torch.tensor([0, 1, 0])  # example 1 is misclassified
    mma = MMA(d_max=0.45, min_eps=0.1, steps=5)
    ctx = StepContext(epoch=0, epochs=1, indices=torch.tensor([7, 2, 4]))
    assert mma.stored_eps(torch.tensor([0, 9])).tolist() == pytest.approx([0.1, 0.1])
    loss = mma.loss(model, x, y, None, ctx)
    assert torch.isfinite(loss)
    eps = mma.state_dict()["eps"]
    assert eps.numel() == 10 and eps[2].item() == 0.0
    assert eps[7].item() == pytest.approx(0.2, abs=1e-3) and eps[4].item() == eps[7].item()
    assert eps[0].item() == pytest.approx(0.1)  # untouched indices keep min_eps
    fresh = MMA(d_max=0.45, min_eps=0.1)
    fresh.load_state_dict(mma.state_dict())
    torch.testing.assert_close(fresh.state_dict()["eps"], eps)
    assert "_eps" not in fresh.params()


class ModeLog(torch.nn.Module):
    """Wraps a model and records, per forward pass, whether it ran in train mode."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner, self.modes = inner, []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.modes.append(self.training)
        return self.inner(x)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_an_pgd_searches_in_the_callers_mode_as_the_official_code(mode: str) -> None:
    """PGD in eval mode; the margin at its end and the bisection in train mode (official,
    ``search_mode="train"``) or eval mode. Dropout makes this matter for SmallCNN."""
    inner, _ = margin_model(8, 0.2)
    model = ModeLog(inner).train()
    x, y = torch.full((2, 8), 0.5), torch.zeros(2, dtype=torch.long)
    an_pgd(
        model,
        x,
        y,
        torch.full((2,), 0.1),
        steps=3,
        step_scale=2.5,
        d_max=0.45,
        search_steps=4,
        search_mode=mode,
    )
    searched = mode == "train"
    assert model.modes == [False] * 3 + [searched] * 5  # 3 PGD steps, margin, 4 bisections
    assert model.training
    with pytest.raises(ValueError, match="search_mode"):
        MMA(search_mode="test")


@pytest.mark.parametrize("clip", [False, True])
def test_mma_margin_point_is_unclipped_as_the_official_code(clip: bool) -> None:
    """Past eps 0.5 around x = 0.5, ``x + eps* * direction`` leaves [0, 1]: the official code
    trains on it as it is (``clip_point=False``, the default); ``True`` clips it."""
    model, d = margin_model(16, 0.55)
    x, y = torch.full((1, 16), 0.5), torch.zeros(1, dtype=torch.long)
    x_m, eps = an_pgd(
        model,
        x,
        y,
        torch.full((1,), 0.1),
        steps=5,
        step_scale=2.5,
        d_max=0.6,
        search_steps=10,
        clip_point=clip,
    )
    if clip:
        assert x_m.min() >= 0 and x_m.max() <= 1
    else:
        assert eps.item() > 0.5  # the bisection evaluates clipped points: it ends above 0.5
        assert x_m.max() > 1  # the point the official code trains on
        torch.testing.assert_close(x_m - x, eps.item() * d.sign()[None])
    assert MMA().clip_point is False and MMA().search_mode == "train"


# --- Dynamic -----------------------------------------------------------------------------


def test_fosc_known_values() -> None:
    g = torch.tensor([[1.0, -2.0, 0.5]])
    x0 = torch.zeros(1, 3)
    assert fosc(x0, x0, g, 0.3).item() == pytest.approx(0.3 * 3.5)  # x^k = x^0: eps ||g||_1
    assert fosc(x0 + 0.3 * g.sign(), x0, g, 0.3).item() == pytest.approx(0.0, abs=1e-7)
    xk = torch.tensor([[0.1, 0.1, -0.1]])  # 1.05 - (0.1 - 0.2 - 0.05)
    assert fosc(xk, x0, g, 0.3).item() == pytest.approx(1.2)


def test_fosc_schedule_values() -> None:
    frac = 100 / 120
    got = [fosc_criterion(e, 120, 0.5, frac) for e in (0, 50, 99, 100, 119)]
    assert got == pytest.approx([0.5, 0.25, 0.005, 0.0, 0.0])
    assert fosc_criterion(3, 12, 0.5, 0.5) == pytest.approx(0.25)  # T' = 6


@pytest.mark.parametrize(("c_max", "moves"), [(1e9, 1), (0.0, 4)])
def test_dynamic_stops_examples_by_fosc(c_max: float, moves: int) -> None:
    """On a linear model the CE gradient's sign is constant: an unmet criterion stops the
    attack after its one obligatory step; c_t = 0 lets it run to the vertex (4 x eps/4)."""
    model, d = binary_linear(6, seed=1)
    x, y = torch.full((2, 6), 0.5), torch.zeros(2, dtype=torch.long)
    dyn = Dynamic(eps=0.1, steps=10, step_size=0.025, start="none", c_max=c_max)
    x_adv = dyn.perturb(model, x, y, StepContext(epoch=0, epochs=10))
    torch.testing.assert_close(x_adv, x + moves * 0.025 * d.sign())


@pytest.mark.parametrize("clip", [False, True])
def test_dynamic_random_start_is_unclipped_as_the_official_code(clip: bool) -> None:
    """At black pixels (x = 0) a uniform start falls below 0; the official code keeps it
    there until the first projected step (``clip_start=False``, the default)."""
    model, d = binary_linear(6, seed=1)
    x, y = torch.zeros(64, 6), torch.zeros(64, dtype=torch.long)
    dyn = Dynamic(eps=0.1, steps=10, step_size=0.025, start="uniform", c_max=1e9, clip_start=clip)
    torch.manual_seed(0)
    x_adv = dyn.perturb(model, x, y, StepContext(epoch=0, epochs=10))
    torch.manual_seed(0)
    x0 = x + torch.empty_like(x).uniform_(-0.1, 0.1)
    x0 = x0.clamp(0, 1) if clip else x0
    want = torch.min(torch.max(x0 + 0.025 * d.sign(), x - 0.1), x + 0.1).clamp(0, 1)
    torch.testing.assert_close(x_adv, want)  # one step (c_t never met), from that start
    assert Dynamic().clip_start is False


def test_dynamic_weight_by_loss_parses_cli_strings() -> None:
    assert Dynamic(weight_by_loss="true").weight_by_loss is True  # type: ignore[arg-type]
    assert Dynamic(weight_by_loss="false").weight_by_loss is False  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fosc_origin"):
        Dynamic(fosc_origin="centre")


# --- ALP and CLP -------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["example", "element"])
def test_alp_by_hand(reduction: str) -> None:
    lam = 0.5
    ce_all = sum(ce(z, y) for zs in (Z_NAT, Z_ADV) for z, y in zip(zs, Y, strict=True)) / 6
    sq = [
        sum((a - b) ** 2 for a, b in zip(za, zn, strict=True))
        for za, zn in zip(Z_ADV, Z_NAT, strict=True)
    ]
    pair = sum(sq) / 3 / (3 if reduction == "element" else 1)
    got = alp_loss(t(Z_NAT), t(Z_ADV), torch.tensor(Y), lam, reduction)
    assert got.item() == pytest.approx(ce_all + lam * pair, rel=1e-12)


def test_clp_pairs_the_two_halves_by_hand() -> None:
    z = Z_NAT + Z_ADV[:1]  # 4 examples: pairs (0, 2) and (1, 3)
    y = [*Y, 1]
    cross = sum(ce(zi, yi) for zi, yi in zip(z, y, strict=True)) / 4
    sq = [sum((a - b) ** 2 for a, b in zip(z[i], z[i + 2], strict=True)) for i in (0, 1)]
    got = clp_loss(t(z), torch.tensor(y), 2.0)
    assert got.item() == pytest.approx(cross + 2.0 * sum(sq) / 2, rel=1e-12)
    odd = clp_loss(t(Z_NAT), torch.tensor(Y), 1.0)  # 3 examples: (0, 1), the last unpaired
    sq01 = sum((a - b) ** 2 for a, b in zip(Z_NAT[0], Z_NAT[1], strict=True))
    want = sum(ce(zi, yi) for zi, yi in zip(Z_NAT, Y, strict=True)) / 3 + sq01
    assert odd.item() == pytest.approx(want, rel=1e-12)


# --- presets and resume ------------------------------------------------------------------


def test_presets_carry_the_papers_baseline_settings() -> None:
    mn = resolve("mma", "smallcnn", "mnist", "paper-4.2-mnist").params()
    assert mn["d_max"] == 0.45 and mn["min_eps"] == 0.1
    for preset in ("paper-4.1", "paper-4.2-cifar", "mart-code-wrn"):
        assert resolve("mma", "resnet18", "cifar10", preset).params()["d_max"] == 12 / 255
        assert resolve("dynamic", "resnet18", "cifar10", preset).params()["c_max"] == 0.5
    assert resolve("alp", "smallcnn", "mnist", defense_overrides={"lam": 1.0}).params()["lam"] == 1


def softmax_regression(num_classes: int = 10, in_channels: int = 1) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(in_channels * 784, num_classes))


@requires_mnist
def test_mma_eps_state_survives_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model that learns in one epoch, so that some examples are correct by the soft
    margin and get an eps* of their own (tiny-cnn stays near-uniform: all misclassified)."""
    monkeypatch.setitem(MODELS._items, "softmax-regression", softmax_regression)

    def spec():
        return resolve(
            "mma",
            "softmax-regression",
            "mnist",
            "paper-4.2-mnist",
            train_subset=256,
            test_subset=32,
            overrides={"epochs": 2, "batch_size": 16, "lr": 1.0, "momentum": 0.0},
            defense_overrides={"steps": 3},
        )

    model_a = train(spec(), tmp_path / "a", progress=False)
    for run in ("b", "c"):
        with pytest.raises(Interrupted):
            train(spec(), tmp_path / run, progress=False, stop_after=1)
    eps = load_state(tmp_path / "b" / "state.pt")["defense"]["eps"]
    assert eps.numel() == 256 and ((eps > 0) & (eps != 0.1)).sum() > 20  # eps* of their own
    model_b = train(spec(), tmp_path / "b", progress=False)
    for pa, pb in zip(model_a.state_dict().values(), model_b.state_dict().values(), strict=True):
        torch.testing.assert_close(pa, pb)
    # Control: forgetting eps* on resume changes the training, so the check above has teeth.
    state = load_state(tmp_path / "c" / "state.pt")
    save_state({**state, "defense": {}}, tmp_path / "c" / "state.pt")
    model_c = train(spec(), tmp_path / "c", progress=False)
    assert any(
        not torch.equal(pa, pc)
        for pa, pc in zip(model_a.state_dict().values(), model_c.state_dict().values(), strict=True)
    )


def test_new_defenses_are_registered() -> None:
    for n in ("mma", "dynamic", "alp", "clp"):
        assert defenses.DEFENSES.get(n).summary
