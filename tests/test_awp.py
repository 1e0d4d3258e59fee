"""AWP (defenses/awp.py): the weight step as the official code computes it, undone after
the update, off during the warm-up, and the same on two processes as on one."""

from __future__ import annotations

import copy
from functools import partial
from pathlib import Path

import ddp_helpers
import pytest
import torch
from conftest import requires_mnist
from torch import nn

from bench.spec.run import resolve
from bench.store.checkpoints import load_state
from bench.train import processes
from bench.train.loop import follow, train
from bench.train.runtime import Runtime
from defenses import DEFENSES, StepContext

AWP = ("standard-awp", "trades-awp", "mart-awp")
CTX = StepContext(epoch=0, epochs=1)


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(144, 10)
    )


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(16, 1, 8, 8, generator=g)
    x_adv = (x + 0.1 * torch.randn(x.shape, generator=g).sign()).clamp(0, 1)
    return x, torch.randint(0, 10, (16,), generator=g), x_adv


def _by_name(model: nn.Module, pert: list) -> dict[str, torch.Tensor]:
    return {n: v for n, p in model.named_parameters() for w, v in pert if w is p}


def _official(model: nn.Module, loss_of, gamma: float) -> dict[str, torch.Tensor]:
    """The official AWP code's step, written out: a proxy copy takes one SGD step (lr
    0.01) that raises the loss; each weight's difference is rescaled to the weight's norm."""
    proxy = copy.deepcopy(model).train()
    opt = torch.optim.SGD(proxy.parameters(), lr=0.01)
    opt.zero_grad()
    (-loss_of(proxy)).backward()
    opt.step()
    out = {}
    for (k, old), (_, new) in zip(
        model.state_dict().items(), proxy.state_dict().items(), strict=True
    ):
        if old.dim() > 1 and "weight" in k:
            d = new - old
            out[k] = gamma * old.norm() / (d.norm() + 1e-20) * d
    return out


@pytest.mark.parametrize("name", AWP)
def test_weight_step_is_the_official_one_and_leaves_batchnorm_alone(name: str) -> None:
    model, (x, y, x_adv) = _net().train(), _batch()
    d = DEFENSES.get(name)(eps=0.3)
    want = _official(model, lambda m: d.loss(m, x, y, x_adv, CTX), d.awp_gamma)
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    got = _by_name(model, d.weight_perturbation(model, x, y, x_adv, CTX))
    assert list(got) == ["0.weight", "4.weight"]  # no bias, no BatchNorm weight
    for k, v in want.items():
        torch.testing.assert_close(got[k], v, rtol=1e-4, atol=1e-7)
        assert got[k].norm().item() == pytest.approx(
            d.awp_gamma * model.state_dict()[k].norm().item(), 1e-4
        )
    for k, v in stats.items():
        assert torch.equal(model.state_dict()[k], v), k


def test_update_uses_the_perturbed_weights_and_restores_them() -> None:
    model, (x, y, x_adv) = _net().train(), _batch()
    d = DEFENSES.get("standard-awp")(eps=0.3, awp_gamma=0.05)
    w0 = {k: v.clone() for k, v in model.named_parameters()}
    pert = _by_name(model, d.weight_perturbation(model, x, y, x_adv, CTX))
    # by hand: the gradient at w + v, one SGD step (lr 0.1), then v taken away again
    shifted = copy.deepcopy(model)
    with torch.no_grad():
        for k, p in shifted.named_parameters():
            p.add_(pert.get(k, torch.zeros_like(p)))
    grads = torch.autograd.grad(d.loss(shifted, x, y, x_adv, CTX), list(shifted.parameters()))
    want = {k: w0[k] - 0.1 * g for k, g in zip(w0, grads, strict=True)}

    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with d.around_update(model, x, y, x_adv, CTX):
        for k, p in model.named_parameters():
            torch.testing.assert_close(p, w0[k] + pert.get(k, 0))
        opt.zero_grad()
        d.loss(model, x, y, x_adv, CTX).backward()
        opt.step()
    for k, p in model.named_parameters():
        torch.testing.assert_close(p, want[k])
    assert any((p - w0[k]).abs().max() > 0 for k, p in model.named_parameters())


def test_no_weight_step_during_warmup_or_at_gamma_zero() -> None:
    model, (x, y, x_adv) = _net().train(), _batch()
    w0 = [p.clone() for p in model.parameters()]
    for d, epoch in (
        (DEFENSES.get("trades-awp")(eps=0.3), 8),  # the official TRADES-AWP warm-up: 9 epochs
        (DEFENSES.get("mart-awp")(eps=0.3, awp_gamma=0), 0),
    ):
        with d.around_update(model, x, y, x_adv, StepContext(epoch=epoch, epochs=20)):
            assert all(torch.equal(p, w) for p, w in zip(model.parameters(), w0, strict=True))
    on = DEFENSES.get("trades-awp")(eps=0.3)
    with on.around_update(model, x, y, x_adv, StepContext(epoch=9, epochs=20)):
        assert not torch.equal(next(model.parameters()), w0[0])


def test_presets_reach_the_base_defense_and_bad_settings_are_refused() -> None:
    spec = resolve("mart-awp", "smallcnn", "mnist", "paper-4.2-mnist")
    assert spec.params()["lam"] == 5.0  # the preset's MART value
    assert spec.params()["awp_gamma"] == 0.005
    assert resolve("standard-awp", "smallcnn", "mnist").params()["awp_gamma"] == 0.01
    with pytest.raises(ValueError, match="awp_gamma must be >= 0"):
        resolve("trades-awp", "smallcnn", "mnist", defense_overrides={"awp_gamma": -1})


@requires_mnist
def test_two_processes_give_the_one_process_weights(tmp_path: Path) -> None:
    spec = resolve(
        "mart-awp",
        "smallcnn",
        "mnist",
        train_subset=128,
        test_subset=16,
        overrides={"epochs": 1, "batch_size": 64, "steps": 2},
        defense_overrides={"awp_gamma": 0.05},
    )
    train(spec, tmp_path / "one", progress=False, runtime=Runtime(threads=1))
    lead = partial(ddp_helpers.lead, spec, tmp_path / "two")
    assert processes.launch(2, "cpu", lead, follow) == 0
    one, two = (load_state(tmp_path / d / "state.pt")["model"] for d in ("one", "two"))
    diff = max((one[k] - two[k]).abs().max().item() for k in one)
    print(f"max |w(2 processes) - w(1 process)| = {diff:.3g}")
    assert diff < 1e-5
