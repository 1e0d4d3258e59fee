"""L2 threat models: every L2 attack stays in its ball and [0, 1]; PGD-L2 agrees with an
independent implementation written here from Madry et al. / torchattacks' PGDL2; AutoAttack
L2 agrees with a direct pyautoattack run; budgets and keys keep the two norms apart."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import requires_mnist
from torch import nn

import attacks
from attacks.autoattack import STANDARD, frozen, preserve_rng
from bench.spec.evaluation import EvalSpec

L2_ATTACKS = ("pgd20-l2", "pgd100-l2", "cw20-l2", "spsa-l2", "transfer-pgd20-l2")


def reference_pgd_l2(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float, steps: int
) -> torch.Tensor:
    """PGD-L2 as torchattacks 3.x writes it: a Gaussian direction scaled to U(0, 1) * eps,
    clipped to [0, 1]; steps along grad / ||grad||; the perturbation renormalised to eps
    where longer, then clipped to [0, 1]. Written independently of attacks/l2.py."""
    b = len(x)
    delta = torch.randn_like(x)
    n = delta.view(b, -1).norm(p=2, dim=1).view(b, 1, 1, 1)
    r = torch.zeros_like(n).uniform_(0, 1)
    x_adv = torch.clamp(x + delta / n * r * eps, 0, 1).detach()
    for _ in range(steps):
        x_adv.requires_grad_(True)
        loss = nn.functional.cross_entropy(model(x_adv), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, [x_adv])
        g_norm = grad.view(b, -1).norm(p=2, dim=1).view(b, 1, 1, 1) + 1e-10
        x_adv = x_adv.detach() + alpha * grad / g_norm
        d = x_adv - x
        d_norm = d.view(b, -1).norm(p=2, dim=1)
        factor = torch.clamp(eps / (d_norm + 1e-10), max=1.0).view(b, 1, 1, 1)
        x_adv = torch.clamp(x + d * factor, 0, 1).detach()
    return x_adv


def _acc(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


@requires_mnist
@pytest.mark.parametrize("preset", L2_ATTACKS)
def test_every_l2_attack_stays_in_its_ball_and_in_the_unit_box(
    trained_linear, mnist_small, preset: str
) -> None:
    _, _, x, y = mnist_small
    eps = 1.0
    atk = attacks.build(preset, eps=eps)
    assert atk.norm == attacks.L2 and attacks.norm_of(preset) == attacks.L2
    if preset.startswith("transfer-"):  # crafted on another model: a perturbed copy
        surrogate = copy.deepcopy(trained_linear)
        with torch.no_grad():
            surrogate[1].weight.add_(0.01 * torch.randn_like(surrogate[1].weight))
        atk.with_surrogate(surrogate)
    x_adv = atk(trained_linear, x, y)  # the base checks the ball after every call
    dist = attacks.distances(x_adv, x, attacks.L2)
    assert dist.max() <= eps + 1e-5 and x_adv.min() >= 0 and x_adv.max() <= 1
    assert dist.max() > 0.9 * eps  # it uses the budget: an L-inf clip would stay far inside
    assert _acc(trained_linear, x_adv, y) < _acc(trained_linear, x, y)
    bad = x + 1.5 * eps * (x_adv - x) / dist.clamp_min(1e-12).view(-1, 1, 1, 1)
    with pytest.raises(attacks.BoundViolation, match="L2 distance"):
        attacks.check_bounds(bad.clamp(0, 1), x, eps, norm=attacks.L2)


@requires_mnist
def test_pgd_l2_matches_an_independent_implementation(trained_linear, mnist_small) -> None:
    """Same budget, steps, step size and random draws: the two agree within 1 point."""
    _, _, x, y = mnist_small
    eps, steps = 1.0, 20
    torch.manual_seed(0)
    ours = attacks.build("pgd20-l2", eps=eps)(trained_linear, x, y)
    torch.manual_seed(0)
    ref = reference_pgd_l2(trained_linear, x, y, eps, alpha=0.1 * eps, steps=steps)
    a, b = _acc(trained_linear, ours, y), _acc(trained_linear, ref, y)
    assert 0.05 < b < 0.95, b  # a budget where the comparison means something
    assert abs(a - b) <= 0.01, (a, b)


@requires_mnist
def test_autoattack_l2_matches_a_direct_pyautoattack_run(trained_linear, mnist_small) -> None:
    import pyautoattack

    _, _, x, y = mnist_small
    x, y, eps = x[:100], y[:100], 1.0
    ours = attacks.build("autoattack-l2", eps=eps)(trained_linear, x, y)
    # frozen: FAB's backward() would leave .grad on the shared fixture's parameters;
    # preserve_rng: pyautoattack reseeds the global RNG
    with frozen(trained_linear), preserve_rng():
        aa = pyautoattack.AutoAttack(trained_linear, norm="L2", eps=eps, version="standard", seed=0)
        aa.apgd_targeted.n_target_classes = STANDARD["n_target_classes"]
        ref, _ = aa.run_standard_evaluation(x, y, batch_size=len(x))
    assert attacks.distances(ours, x, attacks.L2).max() <= eps + 1e-5
    a, b = _acc(trained_linear, ours, y), _acc(trained_linear, ref, y)
    assert abs(a - b) <= 0.01, (a, b)
    assert a < _acc(trained_linear, x, y)


def test_budgets_keep_the_norms_apart() -> None:
    assert EvalSpec("pgd20-l2", eps=2.0).eps == 2.0  # MNIST's usual L2 budget
    with pytest.raises(ValueError, match=r"L-inf eps must be a finite number in \[0, 1\]"):
        EvalSpec("pgd20", eps=2.0)
    a, b = EvalSpec("pgd20-l2", eps=0.5), EvalSpec("pgd20", eps=0.5)
    assert a.key("r", "w", 10, {}) != b.key("r", "w", 10, {})
    assert attacks.norm_of("pgd20") == attacks.LINF and attacks.norm_of("clean") == attacks.LINF


def test_an_l2_run_spec_names_its_norm_and_linf_specs_are_unchanged() -> None:
    from bench.spec.run import resolve
    from defenses import DEFENSES

    linf = resolve("standard", "smallcnn", "mnist")
    assert "norm" not in linf.to_dict() and "norm" not in linf.params()
    l2 = resolve("standard", "smallcnn", "mnist", overrides={"norm": "l2"})
    assert l2.eps == 2.0 and "-l2-" in l2.name and l2.params()["norm"] == "l2"
    assert l2.key != linf.key
    assert resolve("trades", "smallcnn", "mnist", overrides={"norm": "l2", "eps": 1.5}).eps == 1.5
    assert resolve("natural", "smallcnn", "mnist", overrides={"norm": "l2"}).norm == "l2"
    for defense in ("mma", "dynamic"):  # their own L-inf loops
        with pytest.raises(ValueError, match=f"{defense} does not train in l2"):
            resolve(defense, "smallcnn", "mnist", overrides={"norm": "l2"})
    with pytest.raises(ValueError, match=r"eps must be a finite number in \[0, 1\]"):
        resolve("standard", "smallcnn", "mnist", overrides={"eps": 2.0})
    inner = DEFENSES.get("trades")(**l2.params()).inner_attack()
    assert inner.norm == attacks.L2 and inner.loss == "kl"


@requires_mnist
def test_an_l2_run_trains_monitors_and_is_evaluated_in_l2(tmp_path) -> None:
    from sqlalchemy.orm import Session
    from typer.testing import CliRunner

    from bench.cli import app
    from bench.store import db as bdb

    db, runner = str(tmp_path / "t.sqlite"), CliRunner()
    common = ["--db", db, "--quiet"]
    train = "--defense standard --model linear --dataset mnist --norm l2 --epochs 1"
    subsets = "--train-subset 256 --test-subset 100"
    where = ["--runs-dir", str(tmp_path / "runs"), *common]
    res = runner.invoke(app, ["run", *train.split(), *subsets.split(), *where])
    assert res.exit_code == 0, res.output
    name = res.output.split()[1]  # "run NAME on cpu"
    assert "-l2-" in name and "pgd20-l2" in res.output and "cw20-l2" in res.output
    more = "pgd20,spsa-l2,transfer-pgd20-l2"  # SPSA and transfer in L2 too
    res = runner.invoke(app, ["eval", name, "--attacks", more, "--checkpoint", "best", *common])
    assert res.exit_code == 0, res.output
    with Session(bdb.connect(db)) as s:
        run = bdb.find_run(s, name)
        assert run.epochs[0].monitor_attack["preset"] == "pgd20-l2"
        eps = {e.attack: e.attack_params["eps"] for e in run.evaluations}
    assert eps["pgd20-l2"] == eps["cw20-l2"] == eps["clean"] == 2.0
    assert eps["spsa-l2"] == eps["transfer-pgd20-l2"] == 2.0
    assert eps["pgd20"] == 0.3  # an L-inf attack on an L2 run: MNIST's usual L-inf budget
    bad = runner.invoke(app, ["eval", name, "--attacks", "pgd20,pgd20-l2", "--eps", "0.5", *common])
    assert bad.exit_code == 2 and "one --eps for L-inf and L2 attacks" in bad.output
    # the site: one leaderboard per threat model and budget, with that norm's attacks
    site = tmp_path / "site"
    assert runner.invoke(app, ["report", "--out", str(site), *common]).exit_code == 0
    l2_board = (site / "board-mnist-l2-eps2.html").read_text()
    assert "MNIST (mnist), L2 eps 2" in l2_board and "PGD-20 (L2)" in l2_board
    assert "PGD-20 (L2)" not in (site / "board-mnist-eps0.3.html").read_text()


def test_the_attack_listing_says_each_presets_norm() -> None:
    from typer.testing import CliRunner

    from bench.cli import app

    out = CliRunner().invoke(app, ["ls", "attacks"]).output
    norms = {ln.split()[0]: ln for ln in out.splitlines()[1:] if ln.startswith("  ")}
    assert "  L2  " in norms["pgd20-l2"] and "  L-inf  " in norms["pgd20"]
