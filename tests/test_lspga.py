"""LS-PGA (attacks/lspga.py): levels and their pixels by hand, the relaxation at its limit,
and the attack against the masking it was built for (a thermometer-encoded model) and
bit-depth reduction."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import attacks
from attacks.base import check_bounds
from attacks.lspga import pixels, quantiser_of
from bench.eval.loop import robust_points
from bench.eval.masking import adaptive_attack, model_attacks, probe
from bench.models.transforms import (
    BitDepth,
    FeatureSqueeze,
    Quantiser,
    Thermometer,
    Transformed,
)

LEVELS = 16
QUANTISERS = [Thermometer(LEVELS), Thermometer(5), BitDepth(1), BitDepth(3), FeatureSqueeze()]


def test_levels_by_hand() -> None:
    x = torch.tensor([0.0, 0.01, 1 / 16, 0.07, 0.5, 0.99, 1.0])
    # l x > k for k = 0 .. 15: 0 -> none; 0.01 -> k = 0; 1/16 -> k = 0 (16/16 > 1 is false)
    assert Thermometer(LEVELS).level(x).tolist() == [0, 1, 1, 2, 8, 16, 16]
    enc = Thermometer(LEVELS)(x.view(1, 1, 1, -1))  # the encoding's bits, counted
    assert enc.sum(1).flatten().long().tolist() == [0, 1, 1, 2, 8, 16, 16]
    # 1 bit: round(x), halves to even; 3 bits: round(7 x)
    assert BitDepth(1).level(x).tolist() == [0, 0, 0, 0, 0, 1, 1]
    assert BitDepth(3).level(x).tolist() == [0, 0, 0, 0, 4, 7, 7]


@pytest.mark.parametrize("front", QUANTISERS, ids=repr)
def test_every_reachable_level_has_a_pixel_inside_the_ball(front: Quantiser) -> None:
    """For every pixel and every level the eps-ball reaches, ``pixels`` gives a value in the
    ball and [0, 1] whose level is exactly that one, and x itself for x's own level."""
    x = torch.rand(2000, generator=torch.Generator().manual_seed(0))
    x[:20] = torch.tensor([0.0, 1.0, 0.5, 0.3, 0.7] * 4)  # edges and exact thresholds
    eps = 0.3
    lo, hi = front.level((x - eps).clamp(0, 1)), front.level((x + eps).clamp(0, 1))
    own = front.level(x)
    for c in range(front.options):
        reach = (lo <= c) & (c <= hi)
        level = torch.full_like(own, c)
        out = pixels(level, x, eps, front)
        assert torch.equal(front.level(out[reach]), level[reach])
        assert torch.equal(out[own == c], x[own == c])
        check_bounds(out.view(-1, 1), x.view(-1, 1), eps)


@pytest.mark.parametrize("front", QUANTISERS, ids=repr)
def test_a_peaked_relaxation_is_the_forward_pass(front: Quantiser) -> None:
    """At a one-hot level distribution the relaxed input is the quantiser's own output."""
    x = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    p = torch.nn.functional.one_hot(front.level(x), front.options).float()
    assert torch.allclose(front.relaxed(p), front(x), atol=1e-6)


def _thermometer_model(mnist_small) -> nn.Module:
    """A linear model trained on the encoding of real MNIST: PGD sees no gradient."""
    x_tr, y_tr, _, _ = mnist_small
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784 * LEVELS, 10))
    model = Transformed(net, Thermometer(LEVELS))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    for i in range(200):
        idx = torch.arange(i * 64, (i + 1) * 64) % len(y_tr)
        loss = nn.functional.cross_entropy(model(x_tr[idx]), y_tr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def _clean_pgd_ls(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, ...]:
    """Clean, PGD-20 and LS-PGA accuracy; LS-PGA's points inside the ball and [0, 1]."""
    atk = attacks.build("ls-pga", eps=0.3)
    check_bounds(atk(model, x, y), x, 0.3)
    pgd = attacks.build("pgd20", eps=0.3)
    return tuple(robust_points(model, x, y, a).accuracy for a in (None, pgd, atk))


def test_ls_pga_breaks_what_pgd_cannot_move(mnist_small) -> None:
    _, _, x, y = mnist_small
    clean, pgd, ls = _clean_pgd_ls(_thermometer_model(mnist_small), x, y)
    assert clean > 0.8 and pgd > 0.5  # the comparison has no gradient: PGD barely moves
    assert ls < pgd - 0.3, (clean, pgd, ls)


def test_ls_pga_on_bit_depth_breaks_what_pgd_cannot_move(
    trained_linear: nn.Module, mnist_small
) -> None:
    """A 1-bit image in front of a softmax regression: rounding has a zero gradient, so
    PGD-20 stays near the clean accuracy; LS-PGA climbs over the reachable 0/1 levels."""
    _, _, x, y = mnist_small
    clean, pgd, ls = _clean_pgd_ls(Transformed(trained_linear, BitDepth(1)).eval(), x, y)
    assert clean > 0.7 and pgd > clean - 0.05  # only the random start moves it
    assert ls < pgd - 0.3, (clean, pgd, ls)


def test_ls_pga_needs_a_quantiser(trained_linear: nn.Module, mnist_small) -> None:
    _, _, x, y = mnist_small
    with pytest.raises(ValueError, match="behind a quantiser only"):
        attacks.build("ls-pga", eps=0.3)(trained_linear, x[:4], y[:4])
    front = Thermometer(4)
    assert quantiser_of(Transformed(nn.Identity(), front))[0] is front
    with pytest.raises(ValueError, match="steps >= 1"):
        attacks.build("ls-pga", eps=0.3, steps=0)


def test_the_checklist_picks_ls_pga_behind_a_thermometer(
    trained_linear: nn.Module, mnist_small
) -> None:
    """Found by looking: the probe sees the encoding and names LS-PGA beside BPDA."""
    _, _, x, y = mnist_small
    encoded = probe(_thermometer_model(mnist_small), x[:32], y[:32])
    assert encoded.quantised and encoded.missing  # the comparison: no gradient to the input
    assert adaptive_attack(encoded) == "bpda-pgd20" and model_attacks(encoded) == ["ls-pga"]
    plain = probe(trained_linear, x[:32], y[:32])
    assert not plain.quantised and model_attacks(plain) == []
    rounded = probe(Transformed(trained_linear, BitDepth(1)).eval(), x[:32], y[:32])
    assert rounded.quantised and model_attacks(rounded) == ["ls-pga"]
    assert adaptive_attack(rounded) == "bpda-pgd20"  # the zero gradient of rounding
