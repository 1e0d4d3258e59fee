"""Model registry: every architecture builds and runs; the paper's shapes and sizes hold."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.core.registry import UnknownNameError
from bench.models import MODELS, build_model, count_parameters

MNIST_MODELS = {"smallcnn", "tiny-cnn", "linear"}
BIG = {"resnet50", "wrn-34-10", "wrn-34-8", "wrn-28-10"}  # build + one eval forward only


@pytest.mark.parametrize("name", MODELS.names())
def test_forward_shape(name: str) -> None:
    shape = (1, 28, 28) if name in MNIST_MODELS else (3, 32, 32)
    model = build_model(name, num_classes=10, in_channels=shape[0])
    batch = 1 if name in BIG else 2
    x = torch.rand(batch, *shape)
    if name in BIG:
        model.eval()
        with torch.no_grad():
            out = model(x)
    else:
        out = model(x)  # train mode, with gradients: what the trainer does
        out.sum().backward()
    assert out.shape == (batch, 10) and torch.isfinite(out).all()


@pytest.mark.parametrize(
    ("name", "low", "high"),
    [("resnet18", 11.0e6, 11.4e6), ("wrn-34-10", 45.5e6, 47.0e6), ("smallcnn", 3.1e5, 3.2e5)],
)
def test_parameter_counts(name: str, low: float, high: float) -> None:
    assert low <= count_parameters(build_model(name)) <= high


def test_smallcnn_is_the_reference_architecture() -> None:
    model = build_model("smallcnn")
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (1, 32, (3, 3), (0, 0)),
        (32, 32, (3, 3), (0, 0)),
        (32, 64, (3, 3), (0, 0)),
        (64, 64, (3, 3), (0, 0)),
    ]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (1024, 200),
        (200, 200),
        (200, 10),
    ]
    assert [m.p for m in model.modules() if isinstance(m, nn.Dropout)] == [0.5]
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 2
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def test_wrn_loads_official_state_dicts_with_unused_sub_block1() -> None:
    official = MODELS.get("wrn-28-10")(sub_block1=True)  # as in TRADES/MART checkpoints
    state = official.state_dict()
    assert any(k.startswith("sub_block1.") for k in state)
    model = build_model("wrn-28-10")
    model.load_state_dict(state, strict=True)
    assert not hasattr(model, "sub_block1")
    assert any(k.startswith("sub_block1.") for k in state)  # the caller's dict is untouched
    assert torch.equal(model.fc.weight, official.fc.weight)
    model.load_state_dict(build_model("wrn-28-10").state_dict(), strict=True)  # ours too


def test_tiny_cnn_takes_any_channels_and_small_images() -> None:
    for c, size in ((1, 8), (3, 8), (3, 32)):
        assert build_model("tiny-cnn", num_classes=4, in_channels=c)(
            torch.rand(2, c, size, size)
        ).shape == (2, 4)


def test_errors_are_explicit() -> None:
    with pytest.raises(UnknownNameError, match="resnet18"):
        build_model("resnet-18")
    with pytest.raises(ValueError, match="CIFAR"):
        build_model("wrn-34-10", in_channels=1)
    with pytest.raises(ValueError, match="MNIST"):
        build_model("smallcnn", in_channels=3)
