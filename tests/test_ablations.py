"""MART's ablations (paper §4.1, Figure 2 a-c): each variant by hand, its wiring, mart-frac's
deterministic selection, and lambda sweeps through --param."""

from __future__ import annotations

import math

import pytest
import torch

import defenses
from bench.cli.common import parse_params
from bench.spec.run import resolve
from defenses.base import StepContext
from defenses.mart import mart_loss
from defenses.mart_ablations import selected, unit_hash

Z_NAT = [[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-0.5, 1.0, 0.0]]
Z_ADV = [[0.5, 1.5, -0.5], [1.0, -2.0, 0.0], [0.0, 0.0, 2.0]]
Y = [0, 2, 1]

ABLATIONS = {  # name -> the mart_loss switches it must use
    "mart-no-kl": {"kl": False},
    "mart-no-weight": {"weight": False},
    "mart-no-kl-no-weight": {"kl": False, "weight": False},
    "mart-ce": {"margin": False},
    "mart-bce-nat": {"bce_on_natural": True},
    "mart-kl-inner": {},
}


def softmax(z: list[float]) -> list[float]:
    e = [math.exp(v - max(z)) for v in z]
    return [v / sum(e) for v in e]


def hand(
    lam: float,
    margin: bool = True,
    bce_on_natural: bool = False,
    kl: bool = True,
    weight: bool = True,
    mask: list[float] | None = None,
) -> float:
    """The paper's eq. (11) with the official constants, term by term, in plain Python."""
    first_terms, reg = 0.0, 0.0
    for i, (zn, za, y) in enumerate(zip(Z_NAT, Z_ADV, Y, strict=True)):
        pn, pa = softmax(zn), softmax(za)
        p = pn if bce_on_natural else pa
        first_terms += -math.log(p[y])
        if margin:
            k = max((k for k in range(3) if k != y), key=lambda k: p[k])
            first_terms += -math.log(1.0001 - p[k] + 1e-12)
        kl_i = sum(pn[j] * (math.log(pn[j]) - math.log(pa[j] + 1e-12)) for j in range(3))
        w_i = 1.0000001 - pn[y]
        r = (kl_i if kl else 1.0) * (w_i if weight else 1.0) if (kl or weight) else 0.0
        reg += r * (1.0 if mask is None else mask[i])
    return first_terms / 3 + lam * reg / 3


def tensors() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return (
        torch.tensor(Z_NAT, dtype=torch.float64),
        torch.tensor(Z_ADV, dtype=torch.float64),
        torch.tensor(Y),
    )


@pytest.mark.parametrize("switches", [*ABLATIONS.values(), {"mask": [1.0, 0.0, 1.0]}])
@pytest.mark.parametrize("lam", [0.5, 6.0])
def test_each_switch_matches_the_hand_computation(switches: dict, lam: float) -> None:
    zn, za, y = tensors()
    kw = dict(switches)
    if "mask" in kw:
        kw["mask"] = torch.tensor(kw["mask"])
    assert mart_loss(zn, za, y, lam, **kw).item() == pytest.approx(hand(lam, **switches), rel=1e-9)


def test_closed_forms_of_the_removals() -> None:
    """Without KL the regulariser is lam * mean(1 - p_y(x)); without both it is BCE alone."""
    zn, za, y = tensors()
    bce = mart_loss(zn, za, y, 0.0).item()
    mean_w = sum(1.0000001 - softmax(z)[c] for z, c in zip(Z_NAT, Y, strict=True)) / 3
    assert mart_loss(zn, za, y, 2.0, kl=False).item() == pytest.approx(bce + 2.0 * mean_w)
    assert mart_loss(zn, za, y, 2.0, kl=False, weight=False).item() == pytest.approx(bce)


def linear_batch() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    model = torch.nn.Linear(5, 3).double()
    x = torch.rand(6, 5, generator=g, dtype=torch.float64)
    x_adv = (x + 0.1 * torch.randn(6, 5, generator=g, dtype=torch.float64)).clamp(0, 1)
    return model, x, x_adv, torch.tensor([0, 1, 2, 0, 1, 2])


@pytest.mark.parametrize("name", sorted(ABLATIONS))
def test_variant_uses_its_switches(name: str) -> None:
    model, x, x_adv, y = linear_batch()
    ctx = StepContext(epoch=0, epochs=1, indices=torch.arange(6))
    got = defenses.build(name, lam=3.0).loss(model, x, y, x_adv, ctx)
    want = mart_loss(model(x), model(x_adv), y, 3.0, **ABLATIONS[name])
    assert got.item() == pytest.approx(want.item(), rel=1e-12)
    inner = defenses.build(name).inner_attack().loss
    assert inner == ("kl" if name == "mart-kl-inner" else "ce")


def test_mart_frac_masks_the_regulariser_by_index() -> None:
    model, x, x_adv, y = linear_batch()
    idx = torch.tensor([3, 10, 11, 500, 7, 42])
    ctx = StepContext(epoch=0, epochs=1, indices=idx)
    got = defenses.build("mart-frac", lam=3.0, fraction=0.5).loss(model, x, y, x_adv, ctx)
    mask = selected(idx, 0.5, 0)
    assert 0 < int(mask.sum()) < 6  # a real mix in this batch
    want = mart_loss(model(x), model(x_adv), y, 3.0, mask=mask)
    assert got.item() == pytest.approx(want.item(), rel=1e-12)
    full = defenses.build("mart-frac", lam=3.0, fraction=1.0).loss(model, x, y, x_adv, ctx)
    mart = defenses.build("mart", lam=3.0).loss(model, x, y, x_adv, ctx)
    assert full.item() == pytest.approx(mart.item(), rel=1e-12)
    none = defenses.build("mart-frac", lam=3.0, fraction=0.0).loss(model, x, y, x_adv, ctx)
    bce = defenses.build("mart-no-kl-no-weight").loss(model, x, y, x_adv, ctx)
    assert none.item() == pytest.approx(bce.item(), rel=1e-12)
    with pytest.raises(ValueError, match="fraction"):
        defenses.build("mart-frac", fraction=1.5)


def py_unit_hash(i: int, seed: int) -> float:
    m = 0xFFFFFFFF
    x = (i + (seed & 0x7FFFFFFF) * 0x9E3779B9) & m
    for _ in range(2):
        x = ((x ^ (x >> 16)) * 0x45D9F3B) & m
    return (x ^ (x >> 16)) / 2**32


def test_selection_is_a_fixed_function_of_index_and_seed() -> None:
    idx = torch.tensor([0, 1, 2, 12345, 59999, 2**31])
    for seed in (0, 7):
        want = [py_unit_hash(int(i), seed) for i in idx]
        assert unit_hash(idx, seed).tolist() == pytest.approx(want, abs=0)
    many = torch.arange(20000)
    assert unit_hash(many, 0).min() >= 0 and unit_hash(many, 0).max() < 1
    for frac in (0.0, 0.3, 0.5, 1.0):
        assert selected(many, frac, 0).double().mean().item() == pytest.approx(frac, abs=0.02)
    small, large = selected(many, 0.3, 0), selected(many, 0.6, 0)
    assert bool((small & ~large).sum() == 0)  # nested: raising the fraction only adds
    assert not torch.equal(selected(many, 0.5, 0), selected(many, 0.5, 1))
    # Batches in any order and on a resumed run choose the same examples.
    perm = torch.randperm(20000)
    assert torch.equal(selected(perm, 0.5, 0), selected(many, 0.5, 0)[perm])


@pytest.mark.parametrize("name", ["mart", *sorted(ABLATIONS), "mart-frac"])
def test_lambda_sweeps_through_param(name: str) -> None:
    over = parse_params(["lam=0.5"])
    spec = resolve(name, "resnet18", "cifar10", "paper-4.1", defense_overrides=over)
    assert spec.params()["lam"] == 0.5


def test_trades_sweeps_beta_not_lam() -> None:
    """TRADES calls its lambda ``beta`` (the MART paper's Table 1 lambda is TRADES's beta)."""
    over = parse_params(["beta=2"])
    spec = resolve("trades", "resnet18", "cifar10", "paper-4.1", defense_overrides=over)
    assert spec.params()["beta"] == 2
    with pytest.raises(ValueError, match="no parameter 'lam'"):
        resolve("trades", "resnet18", "cifar10", defense_overrides=parse_params(["lam=2"]))


def test_ablations_are_registered_under_their_exact_names() -> None:
    names = set(defenses.DEFENSES.names())
    assert {*ABLATIONS, "mart-frac"} <= names
    for n in (*ABLATIONS, "mart-frac"):
        assert defenses.DEFENSES.get(n).summary.startswith("MART ablation")
