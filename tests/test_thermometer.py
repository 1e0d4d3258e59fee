"""Thermometer encoding (bench/models/transforms.py, defenses/thermometer.py): the bits by
hand, the network built behind it for training and every evaluation, and PGD overrating it
where BPDA through the ramp does not."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import requires_mnist
from torch import nn

import attacks
import defenses
from attacks.base import check_bounds
from attacks.lspga import LSPGA
from bench.eval.loop import robust_points
from bench.eval.masking import adaptive_attack, probe
from bench.models.transforms import BitDepth, Thermometer, Transformed
from bench.spec.run import build_for_spec, resolve
from bench.store.checkpoints import load_weights
from bench.train.loop import train
from bench.train.precision import FloatLogits


def test_bits_and_ramp_by_hand() -> None:
    x = torch.tensor([0.0, 0.3, 0.5, 1.0]).view(1, 1, 2, 2)
    t = Thermometer(4)  # thresholds 0, 0.25, 0.5, 0.75
    bits = t(x)
    assert bits.shape == (1, 4, 2, 2)
    want = {0.0: [0, 0, 0, 0], 0.3: [1, 1, 0, 0], 0.5: [1, 1, 0, 0], 1.0: [1, 1, 1, 1]}
    for i, v in enumerate(want.values()):
        assert bits[0, :, i // 2, i % 2].tolist() == v
    ramp = t.approx(x)  # clamp(4x - k, 0, 1)
    assert ramp[0, :, 0, 1].tolist() == pytest.approx([1.0, 0.2, 0.0, 0.0])
    assert ramp[0, :, 1, 0].tolist() == pytest.approx([1.0, 1.0, 0.0, 0.0])
    xg = x.clone().requires_grad_(True)
    assert not t(xg).requires_grad  # a comparison: no gradient reaches the input
    st = t.straight(xg)
    assert torch.equal(st.detach(), bits)
    (g,) = torch.autograd.grad(st.sum(), [xg])
    # the ramp's slope, 4, inside a level (0.3); at a level's edge (0, 0.5, 1) no ramp moves
    assert g.flatten().tolist() == pytest.approx([0.0, 4.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="levels must be >= 2"):
        Thermometer(1)


def test_the_run_model_is_the_network_behind_its_encoding() -> None:
    spec = resolve("thermometer", "smallcnn", "mnist", defense_overrides={"levels": 8})
    model = build_for_spec(spec)
    assert isinstance(model, Transformed) and isinstance(model.transform, Thermometer)
    assert model.net.feature_extractor.conv1.in_channels == 8
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert not isinstance(build_for_spec(resolve("natural", "smallcnn", "mnist")), Transformed)
    # the bf16 cast keeps BPDA's view of the encoding (training's inner attack uses it);
    # tiny-cnn, as SmallCNN's last layer starts at zero (no gradient at all)
    tiny = build_for_spec(resolve("thermometer-at", "tiny-cnn", "mnist"))
    view = FloatLogits(tiny).straight_through()
    x = torch.rand(2, 1, 28, 28, requires_grad=True)
    (g,) = torch.autograd.grad(view(x).sum(), [x])
    assert g.abs().sum() > 0


@requires_mnist
def test_a_trained_run_loads_behind_its_encoding(tmp_path: Path) -> None:
    short = {"epochs": 1, "batch_size": 64, "steps": 2}
    spec = resolve("thermometer-at", "tiny-cnn", "mnist", train_subset=128, overrides=short)
    trained = train(spec, tmp_path, progress=False)
    # what checkpoint_model does for every evaluation: the spec's model, the file's weights
    loaded = load_weights(build_for_spec(spec), tmp_path / "last.safetensors").eval()
    assert isinstance(loaded, Transformed) and loaded.transform.levels == 16
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(loaded(x), trained.eval()(x))


def _thermometer_regression(mnist_small) -> nn.Module:
    """A softmax regression trained on the 16-level encoding of real MNIST."""
    x_tr, y_tr, _, _ = mnist_small
    g = torch.Generator().manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16 * 784, 10))
    model = Transformed(net, Thermometer(16))
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    for _ in range(300):
        idx = torch.randint(0, len(y_tr), (128,), generator=g)
        loss = nn.functional.cross_entropy(model(x_tr[idx]), y_tr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@requires_mnist
def test_pgd_overrates_the_encoding_and_bpda_through_the_ramp_does_not(mnist_small) -> None:
    _, _, x, y = mnist_small
    x, y = x[:100], y[:100]
    model = _thermometer_regression(mnist_small)
    found = probe(model, x, y)
    assert found.missing and found.transformed and adaptive_attack(found) == "bpda-pgd20"
    acc = {
        name: robust_points(model, x, y, attacks.build(name, eps=0.3), seed=0).accuracy
        for name in ("pgd20", "bpda-pgd20")
    }
    acc["clean"] = (model(x).argmax(1) == y).float().mean().item()
    print(acc)  # measured: clean 0.87, PGD-20 0.79, BPDA 0.03
    assert acc["clean"] >= 0.8, acc
    assert acc["pgd20"] >= acc["clean"] - 0.3, acc  # PGD moves only by its random start
    assert acc["bpda-pgd20"] <= acc["pgd20"] - 0.3, acc


def test_bpda_reaches_through_a_transformation_in_front_of_the_encoding() -> None:
    """``bench eval RUN --transform jpeg`` on a thermometer run: two parts to go around."""
    encoded = build_for_spec(resolve("thermometer", "tiny-cnn", "mnist"))
    both = Transformed(encoded, BitDepth(4)).straight_through()
    x = torch.rand(2, 1, 28, 28, requires_grad=True)
    (g,) = torch.autograd.grad(both(x).sum(), [x])
    assert g.abs().sum() > 0


def test_thermometer_at_trains_on_ls_pga_as_the_paper(mnist_small) -> None:
    """The inner attack is LS-PGA (the paper's), through the bf16 cast too; ``bpda`` keeps
    PGD through the ramp; anything else is refused."""
    _, _, x, y = mnist_small
    x, y = x[:16], y[:16]
    spec = resolve("thermometer-at", "tiny-cnn", "mnist")  # eps 0.3
    defense = defenses.build("thermometer-at", **spec.params())
    assert defense.inner == "ls-pga"
    model = FloatLogits(build_for_spec(spec))  # what a bf16 training step sees
    torch.manual_seed(0)
    x_adv = defense.perturb(model, x, y, ctx=None)
    check_bounds(x_adv, x, 0.3)
    torch.manual_seed(0)  # the same draws: exactly LS-PGA with the preset's inner steps
    want = LSPGA(eps=0.3, steps=spec.params()["steps"], restarts=1)(model, x, y)
    assert torch.equal(x_adv, want)
    code = model.transform.level
    moved = x_adv != x  # a pixel moves only to another code
    assert moved.any() and (code(x_adv) != code(x))[moved].all()
    ramp = defenses.build("thermometer-at", **{**spec.params(), "inner": "bpda"})
    check_bounds(ramp.perturb(model, x, y, ctx=None), x, 0.3)
    with pytest.raises(ValueError, match="inner must be one of ls-pga, bpda"):
        defenses.build("thermometer-at", **{**spec.params(), "inner": "pgd"})


def test_tables_name_the_inner_attack_older_runs_included() -> None:
    """A run made before ``inner`` existed was trained through the ramp: its stored spec
    lacks the key, and the tables still say which it was."""
    assert defenses.shown("thermometer-at", {"inner": "ls-pga", "levels": 16}) == "inner=ls-pga"
    assert defenses.shown("thermometer-at", {"levels": 16}) == "inner=bpda"
    assert defenses.shown("mart", {"beta": 6.0}) == "" == defenses.shown("no-such", {})
