"""The lecture's early adversarial training and input-gradient regularisation (issue 21):
each one file in defenses/, its settings from its own paper, its objective by hand."""

from __future__ import annotations

import pytest
import torch

from bench.spec.run import resolve
from defenses.igr import igr_loss


def test_fast_at_is_one_step_of_1_25_eps_from_a_uniform_start_whatever_the_preset() -> None:
    for preset in ("paper-4.2-mnist", "demo-mnist"):
        spec = resolve("fast", "smallcnn", "mnist", preset)
        p = dict(spec.defense_params)
        assert (p["steps"], p["start"]) == (1, "uniform")
        assert p["step_size"] == pytest.approx(1.25 * spec.eps)
    # the user's own choice still wins over the method's
    assert (
        dict(resolve("fast", "smallcnn", "mnist", overrides={"steps": 2}).defense_params)["steps"]
        == 2
    )


def test_bim_training_starts_at_the_clean_point_with_the_presets_steps() -> None:
    p = dict(resolve("bim", "smallcnn", "mnist").defense_params)
    standard = dict(resolve("standard", "smallcnn", "mnist").defense_params)
    assert p["start"] == "none"
    assert (p["steps"], p["step_size"]) == (standard["steps"], standard["step_size"])


def test_input_gradient_penalty_matches_the_closed_form_of_a_linear_model() -> None:
    """For z = W x + b, d CE / d x = W^T (softmax(z) - onehot(y)) per example."""
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3).double()
    x, y = torch.rand(4, 5, dtype=torch.double), torch.tensor([0, 2, 1, 2])
    p = torch.softmax(model(x), dim=1)
    grad = (p - torch.nn.functional.one_hot(y, 3).double()) @ model.weight
    ce = torch.nn.functional.cross_entropy(model(x), y)
    want = ce + 0.7 * grad.pow(2).sum(1).mean()
    got = igr_loss(model, x, y, 0.7)
    torch.testing.assert_close(got, want)
    got.backward()  # the penalty is trained through (double backprop): weights get gradients
    assert model.weight.grad is not None and torch.isfinite(model.weight.grad).all()


def test_vat_finds_a_direction_that_moves_the_prediction_more_than_a_random_one() -> None:
    """Power iteration on KL(p(x) || p(x + xi d)): its direction at a small radius changes
    the prediction more than random directions of the same L2 length."""
    from attacks.losses import kl_to
    from defenses.vat import virtual_adversarial

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(20, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4))
    x = torch.rand(64, 20) * 0.5 + 0.25  # away from the box, so nothing is clipped
    p = torch.softmax(model(x), dim=1).detach()
    x_v = virtual_adversarial(model, x, p, xi=1e-6, radius=0.2, iterations=2)
    norms = (x_v - x).norm(dim=1)
    torch.testing.assert_close(norms, torch.full_like(norms, 0.2), rtol=1e-3, atol=1e-4)
    rand = torch.randn_like(x)
    x_r = x + 0.2 * rand / rand.norm(dim=1, keepdim=True)
    with torch.no_grad():
        assert kl_to(p, model(x_v)).mean() > 2 * kl_to(p, model(x_r)).mean()
