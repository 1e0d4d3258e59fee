"""Model registry. The CIFAR architectures are RobustBench's (the ones its model zoo loads
official MART/TRADES checkpoints into); only SmallCNN and a tiny test model are ours.

All models take images in [0, 1] with no mean/std normalisation (REFERENCE.md).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from torch import nn

from bench.registry import Registry

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")


def robustbench_architectures() -> Any:
    """Import RobustBench's architectures (it imports ``autoattack``: alias the PyPI name)."""
    import pyautoattack

    sys.modules.setdefault("autoattack", pyautoattack)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pkg_resources deprecation notice
        from robustbench.model_zoo.architectures import resnet, wide_resnet
    return resnet, wide_resnet


class SmallCNN(nn.Module):
    """The MART/TRADES MNIST "4-layer CNN": four 3x3 convs (no padding), two max-pools,
    FC 1024-200-200-10 with dropout 0.5 after the first FC; no BatchNorm."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1, drop: float = 0.5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3),
            nn.ReLU(),
            nn.MaxPool2d(2, 2),
            nn.Conv2d(32, 64, 3),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3),
            nn.ReLU(),
            nn.MaxPool2d(2, 2),
        )
        self.classifier = nn.Sequential(
            nn.Linear(64 * 4 * 4, 200),
            nn.ReLU(),
            nn.Dropout(drop),
            nn.Linear(200, 200),
            nn.ReLU(),
            nn.Linear(200, num_classes),
        )

    def forward(self, x: Any) -> Any:
        return self.classifier(self.features(x).flatten(1))


class TinyCNN(nn.Module):
    """A few thousand parameters, for tests: any channel count, any size >= 8."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, 8, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
            nn.Linear(64, num_classes),
        )

    def forward(self, x: Any) -> Any:
        return self.net(x)


@MODELS.register("smallcnn")
def smallcnn(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    if in_channels != 1:
        raise ValueError("smallcnn is the MNIST architecture (1x28x28 inputs)")
    return SmallCNN(num_classes, in_channels)


@MODELS.register("tiny-cnn")
def tiny_cnn(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    return TinyCNN(num_classes, in_channels)


def _cifar_only(name: str, in_channels: int) -> None:
    if in_channels != 3:
        raise ValueError(f"{name} is a CIFAR architecture (3x32x32 inputs)")


@MODELS.register("resnet18")
def resnet18(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """CIFAR ResNet-18: 3x3 stem, no max-pool, BasicBlock [2,2,2,2], 4x4 average pool."""
    _cifar_only("resnet18", in_channels)
    resnet, _ = robustbench_architectures()
    return resnet.ResNet18(num_classes=num_classes)


@MODELS.register("resnet50")
def resnet50(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """CIFAR ResNet-50 (Bottleneck [3,4,6,3]): the black-box surrogate of the paper."""
    _cifar_only("resnet50", in_channels)
    resnet, _ = robustbench_architectures()
    return resnet.ResNet50(num_classes=num_classes)


def _wrn(depth: int, width: int) -> Callable[..., nn.Module]:
    def build(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
        """Pre-activation WideResNet; ``sub_block1`` is kept so official checkpoints load."""
        _cifar_only(f"wrn-{depth}-{width}", in_channels)
        _, wide_resnet = robustbench_architectures()
        return wide_resnet.WideResNet(
            depth=depth, num_classes=num_classes, widen_factor=width, sub_block1=True
        )

    return build


for _d, _w in ((34, 10), (34, 8), (28, 10)):
    MODELS.add(f"wrn-{_d}-{_w}", _wrn(_d, _w))


def build_model(name: str, num_classes: int = 10, in_channels: int | None = None) -> nn.Module:
    factory = MODELS.get(name)
    if in_channels is None:
        return factory(num_classes=num_classes)
    return factory(num_classes=num_classes, in_channels=in_channels)
