"""LS-PGA (attacks/lspga.py): codes and their pixels by hand, the relaxation at its limit,
and the attack against the masking it was built for (a thermometer-encoded model)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import attacks
from attacks.base import check_bounds
from attacks.lspga import codes, pixels, relaxed, thermometer_of
from bench.eval.loop import robust_points
from bench.eval.masking import adaptive_attack, model_attacks, probe
from bench.models.transforms import Thermometer, Transformed

LEVELS = 16


def test_codes_by_hand() -> None:
    x = torch.tensor([0.0, 0.01, 1 / 16, 0.07, 0.5, 0.99, 1.0])
    # l x > k for k = 0 .. 15: 0 -> none; 0.01 -> k = 0; 1/16 -> k = 0 (16/16 > 1 is false)
    assert codes(x, LEVELS).tolist() == [0, 1, 1, 2, 8, 16, 16]
    enc = Thermometer(LEVELS)(x.view(1, 1, 1, -1))  # the encoding's bits, counted
    assert enc.sum(1).flatten().long().tolist() == codes(x, LEVELS).tolist()


def test_every_reachable_code_has_a_pixel_inside_the_ball() -> None:
    """For every pixel and every code the eps-ball reaches, ``pixels`` gives a value in the
    ball and [0, 1] whose code is exactly that one, and x itself for x's own code."""
    x = torch.rand(2000, generator=torch.Generator().manual_seed(0))
    x[:20] = torch.tensor([0.0, 1.0, 0.5, 0.3, 0.7] * 4)  # edges and exact thresholds
    eps = 0.3
    lo, hi = codes((x - eps).clamp(0, 1), LEVELS), codes((x + eps).clamp(0, 1), LEVELS)
    own = codes(x, LEVELS)
    for c in range(LEVELS + 1):
        reach = (lo <= c) & (c <= hi)
        code = torch.full_like(own, c)
        out = pixels(code, x, eps, LEVELS)
        assert torch.equal(codes(out[reach], LEVELS), code[reach])
        assert torch.equal(out[own == c], x[own == c])
        check_bounds(out.view(-1, 1), x.view(-1, 1), eps)


def test_a_peaked_relaxation_is_the_encoding() -> None:
    """At a low temperature the relaxed bits are the encoding of the most probable code."""
    x = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    code = codes(x, LEVELS)
    u = torch.nn.functional.one_hot(code, LEVELS + 1).float() * 10
    assert torch.allclose(relaxed(u, 0.01), Thermometer(LEVELS)(x), atol=1e-6)


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


def test_ls_pga_breaks_what_pgd_cannot_move(mnist_small) -> None:
    _, _, x, y = mnist_small
    model = _thermometer_model(mnist_small)
    clean = robust_points(model, x, y, None).accuracy
    pgd = robust_points(model, x, y, attacks.build("pgd20", eps=0.3)).accuracy
    atk = attacks.build("ls-pga", eps=0.3)
    x_adv = atk(model, x, y)
    check_bounds(x_adv, x, 0.3)
    ls = robust_points(model, x, y, atk).accuracy
    assert clean > 0.8 and pgd > 0.5  # the comparison has no gradient: PGD barely moves
    assert ls < pgd - 0.3, (clean, pgd, ls)


def test_ls_pga_needs_a_thermometer_model(trained_linear: nn.Module, mnist_small) -> None:
    _, _, x, y = mnist_small
    with pytest.raises(ValueError, match="behind a thermometer encoding only"):
        attacks.build("ls-pga", eps=0.3)(trained_linear, x[:4], y[:4])
    assert thermometer_of(Transformed(nn.Identity(), Thermometer(4)))[0] == 4
    with pytest.raises(ValueError, match="steps >= 1"):
        attacks.build("ls-pga", eps=0.3, steps=0)


def test_the_checklist_picks_ls_pga_behind_a_thermometer(
    trained_linear: nn.Module, mnist_small
) -> None:
    """Found by looking: the probe sees the encoding and names LS-PGA beside BPDA."""
    _, _, x, y = mnist_small
    encoded = probe(_thermometer_model(mnist_small), x[:32], y[:32])
    assert encoded.encoded and encoded.missing  # the comparison: no gradient to the input
    assert adaptive_attack(encoded) == "bpda-pgd20" and model_attacks(encoded) == ["ls-pga"]
    plain = probe(trained_linear, x[:32], y[:32])
    assert not plain.encoded and model_attacks(plain) == []
