"""Attack invariants and a closed-form check on a linear model."""

from __future__ import annotations

import copy

import pytest
import torch
from tests_helpers import binary_linear
from torch import nn

import attacks
from attacks.base import BoundViolation, check_bounds
from attacks.losses import cw_margin
from attacks.pgd import PGD
from attacks.transfer import Transfer
from bench.eval.loop import robust_points
from bench.models.transforms import Thermometer, Transformed

EVAL_ATTACKS = [n for n in attacks.PRESETS.names() if n != "clean"]
# Cheap settings for the slow protocols, by attack class (their own test files check the
# preset settings); a transfer attack gets a surrogate: a copy of the target.
CHEAP = {
    "spsa": {"steps": 3, "samples": 16},
    "autoattack-part": {"n_iter": 5, "n_target_classes": 2, "n_queries": 20},
    "autoattack": {"n_iter": 5, "n_target_classes": 2, "n_queries": 20},
    "eot": {"samples": 2},
    "rays": {"queries": 60},
    "ls-pga": {"steps": 3, "restarts": 2},
}


@pytest.mark.parametrize("name", EVAL_ATTACKS)
def test_invariants(name: str, trained_linear: nn.Module, mnist_small) -> None:
    _, _, x, y = mnist_small
    x, y = x[:64], y[:64]
    x_copy = x.clone()
    model = trained_linear.train()  # the attack must switch to eval and back
    kind = attacks.PRESETS.get(name).attack
    if kind == "ls-pga":  # an attack on a thermometer encoding: a model behind one
        net = nn.Sequential(nn.Flatten(), nn.Linear(784 * 4, 10))
        model = Transformed(net, Thermometer(4)).train()
    atk = attacks.build(name, eps=0.1, **CHEAP.get(kind, {}))
    if isinstance(atk, Transfer):
        atk.with_surrogate(copy.deepcopy(model))
    x_adv = atk(model, x, y)
    assert torch.equal(x, x_copy), "input mutated"
    assert model.training, "caller's mode not restored"
    assert all(p.grad is None for p in model.parameters()), "gradients left on the model"
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    check_bounds(x_adv, x, 0.1)
    model.eval()
    clean = robust_points(model, x, y, None)
    robust = robust_points(model, x, y, atk)
    assert robust.correct <= clean.correct
    assert atk.params()["eps"] == 0.1


def test_pgd_lowers_accuracy_of_trained_model(trained_linear: nn.Module, mnist_small) -> None:
    _, _, x, y = mnist_small
    clean = robust_points(trained_linear, x, y, None).accuracy
    fgsm = robust_points(trained_linear, x, y, attacks.build("fgsm", eps=0.1)).accuracy
    pgd = robust_points(trained_linear, x, y, attacks.build("pgd20", eps=0.1)).accuracy
    assert clean > 0.8
    assert pgd < clean - 0.3
    assert pgd <= fgsm + 0.02


def test_bound_check_rejects_out_of_ball() -> None:
    x = torch.full((2, 3), 0.5)
    with pytest.raises(BoundViolation):
        check_bounds(x + 0.2, x, 0.1)
    with pytest.raises(BoundViolation):
        check_bounds(torch.full((2, 3), 1.5), torch.ones(2, 3), 0.6)


class Escaping(PGD):
    """A broken attack that ignores the projection: the base must catch it."""

    def perturb(self, model, x, y):
        return (x + 2 * self.eps).clamp(0, 1)


def test_base_catches_a_broken_attack(trained_linear: nn.Module, mnist_small) -> None:
    _, _, x, y = mnist_small
    with pytest.raises(BoundViolation):
        Escaping(eps=0.05)(trained_linear, x[:8] * 0.5 + 0.25, y[:8])


@pytest.mark.parametrize("name", ["fgsm", "pgd20", "cw20"])
def test_linear_model_reaches_closed_form_optimum(name: str) -> None:
    """For z = Wx + b with two classes, the worst L-inf perturbation is eps * sign(w_1 - w_0)
    for label 0 (no box clipping when x stays inside [eps, 1 - eps]): the margin grows by
    exactly eps * ||w_1 - w_0||_1."""
    model, w_diff = binary_linear(dim=20, seed=3)
    eps = 0.05
    x = 0.2 + 0.6 * torch.rand(16, 20, generator=torch.Generator().manual_seed(1))
    y = torch.zeros(16, dtype=torch.long)
    x_adv = attacks.build(name, eps=eps)(model, x, y)
    expected = (x + eps * w_diff.sign()).clamp(0, 1)
    torch.testing.assert_close(x_adv, expected, atol=1e-6, rtol=0)
    gain = cw_margin(model(x_adv), y) - cw_margin(model(x), y)
    torch.testing.assert_close(gain, torch.full((16,), eps * w_diff.abs().sum().item()))


def test_cw_margin_masks_true_class_with_negative_logits() -> None:
    """The known bug max((1-y)*z) would return 0 here; the right margin is -1 - (-0.5)."""
    z = torch.tensor([[-0.5, -1.0, -3.0]])
    assert cw_margin(z, torch.tensor([0])).item() == pytest.approx(-0.5)


def test_restarts_never_hurt(trained_linear: nn.Module, mnist_small) -> None:
    _, _, x, y = mnist_small
    one = robust_points(
        trained_linear, x, y, attacks.build("pgd", eps=0.05, steps=5, step_size=0.01)
    )
    three = robust_points(
        trained_linear, x, y, attacks.build("pgd", eps=0.05, steps=5, step_size=0.01, restarts=3)
    )
    assert three.correct <= one.correct


def test_unknown_attack_lists_choices() -> None:
    with pytest.raises(ValueError, match=r"valid: .*pgd20"):
        attacks.build("pgd21", eps=0.1)
