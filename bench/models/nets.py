"""The architectures themselves (``torch.nn`` modules), registered in ``bench/models/__init__.py``.

The CIFAR architectures come from RobustBench (``robustbench.model_zoo.architectures``):
they are the classes its model zoo loads the official MART/TRADES checkpoints into, so a
state dict moves between this harness and RobustBench unchanged. RobustBench is imported
lazily (it takes seconds and needs an ``autoattack`` alias), so MNIST work never pays for
it. SmallCNN and a tiny test model are defined here.

All models take images in [0, 1] with no mean/std normalisation (docs/reference.md §1.3).
"""

from __future__ import annotations

import sys
import warnings
from collections import OrderedDict
from collections.abc import Callable
from types import ModuleType
from typing import Any

import torch
from torch import nn


def robustbench_architectures() -> tuple[ModuleType, ModuleType]:
    """RobustBench's ``resnet`` and ``wide_resnet`` modules, imported without network.

    RobustBench imports ``autoattack`` (published on PyPI as ``pyautoattack``) and
    ``pkg_resources`` (deprecated), so alias the former and silence the latter's notice.
    """
    try:
        import pyautoattack

        sys.modules.setdefault("autoattack", pyautoattack)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # pkg_resources deprecation
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit notices
            warnings.simplefilter("ignore", DeprecationWarning)  # timm's old import paths
            from robustbench.model_zoo.architectures import resnet, wide_resnet
    except ImportError as e:
        raise ImportError(
            f"the CIFAR models need robustbench and pyautoattack (pip install -e .): {e}"
        ) from e
    return resnet, wide_resnet


class SmallCNN(nn.Module):
    """The MNIST "4-layer CNN" of TRADES/MART (docs/reference.md §4).

    conv 1-32, conv 32-32, max-pool, conv 32-64, conv 64-64, max-pool (3x3, no padding),
    then FC 1024-200, dropout 0.5, FC 200-200, FC 200-10; ReLU; no BatchNorm. Layer names
    and initialisation (Kaiming convs, zero biases, a zero last layer) follow the official
    TRADES ``small_cnn.py`` that MART reuses, so its MNIST checkpoints load as they are.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1, drop: float = 0.5) -> None:
        super().__init__()
        self.feature_extractor = nn.Sequential(
            OrderedDict(
                [
                    ("conv1", nn.Conv2d(in_channels, 32, 3)),
                    ("relu1", nn.ReLU()),
                    ("conv2", nn.Conv2d(32, 32, 3)),
                    ("relu2", nn.ReLU()),
                    ("maxpool1", nn.MaxPool2d(2, 2)),
                    ("conv3", nn.Conv2d(32, 64, 3)),
                    ("relu3", nn.ReLU()),
                    ("conv4", nn.Conv2d(64, 64, 3)),
                    ("relu4", nn.ReLU()),
                    ("maxpool2", nn.MaxPool2d(2, 2)),
                ]
            )
        )
        self.classifier = nn.Sequential(
            OrderedDict(
                [
                    ("fc1", nn.Linear(64 * 4 * 4, 200)),
                    ("relu1", nn.ReLU()),
                    ("drop", nn.Dropout(drop)),
                    ("fc2", nn.Linear(200, 200)),
                    ("relu2", nn.ReLU()),
                    ("fc3", nn.Linear(200, num_classes)),
                ]
            )
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight)
                nn.init.zeros_(m.bias)
        # Official init: the logits start at exactly 0 (training moves them at step one).
        nn.init.zeros_(self.classifier.fc3.weight)
        nn.init.zeros_(self.classifier.fc3.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.feature_extractor(x).flatten(1))


class TinyCNN(nn.Module):
    """About 2k parameters, for fast tests: any channel count, any image size >= 8."""

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def smallcnn(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """SmallCNN for 28x28 MNIST (its FC 1024 input fixes the image size): one channel, or
    the channels of an encoding of it (thermometer: one per level)."""
    if in_channels == 3:
        raise ValueError("smallcnn is the MNIST architecture (1x28x28), got 3 ch (CIFAR?)")
    return SmallCNN(num_classes, in_channels)


def tiny_cnn(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    return TinyCNN(num_classes, in_channels)


def linear(num_classes: int = 10, in_channels: int = 1) -> nn.Module:
    """Softmax regression on MNIST (1x28x28) or CIFAR (3x32x32) pixels: learns in a few
    hundred steps on CPU, so tests get an accurate model whose attacks are easy to reason about."""
    side = 28 if in_channels == 1 else 32
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * side * side, num_classes))


def _cifar_only(name: str, in_channels: int) -> None:
    # The RobustBench classes hard-code a 3-channel stem and 32x32 pooling sizes.
    if in_channels != 3:
        raise ValueError(f"{name} is a CIFAR architecture (3x32x32 inputs), got {in_channels} ch")


def resnet18(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """CIFAR ResNet-18: 3x3 stem, no max-pool, BasicBlock [2,2,2,2], 4x4 average pool."""
    _cifar_only("resnet18", in_channels)
    resnet, _ = robustbench_architectures()
    return resnet.ResNet(resnet.BasicBlock, [2, 2, 2, 2], num_classes=num_classes)


def resnet50(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    """CIFAR ResNet-50 (Bottleneck [3,4,6,3]): the paper's black-box surrogate."""
    _cifar_only("resnet50", in_channels)
    resnet, _ = robustbench_architectures()
    return resnet.ResNet(resnet.Bottleneck, [3, 4, 6, 3], num_classes=num_classes)


def _drop_sub_block1(
    module: nn.Module, state_dict: dict[str, Any], prefix: str, *_args: Any, **_kw: Any
) -> None:
    """Load-state-dict pre-hook: discard the official checkpoints' unused ``sub_block1``.

    TRADES/MART's WideResNet builds a ``sub_block1`` that ``forward`` never calls, so their
    checkpoints carry it. Rather than allocate ~2.3M dead parameters (which would inflate
    the parameter count to ~48.5M for WRN-34-10, enlarge every checkpoint and confuse DDP),
    the model omits it and drops those keys on load: official and our own state dicts
    both load with ``strict=True``.
    """
    if hasattr(module, "sub_block1"):
        return
    for key in [k for k in state_dict if k.startswith(f"{prefix}sub_block1.")]:
        del state_dict[key]


def _wrn(depth: int, width: int) -> Callable[..., nn.Module]:
    name = f"wrn-{depth}-{width}"

    def build(num_classes: int = 10, in_channels: int = 3, sub_block1: bool = False) -> nn.Module:
        _cifar_only(name, in_channels)
        _, wide_resnet = robustbench_architectures()
        model = wide_resnet.WideResNet(
            depth=depth, num_classes=num_classes, widen_factor=width, sub_block1=sub_block1
        )
        model.register_load_state_dict_pre_hook(_drop_sub_block1)
        return model

    build.__name__ = name.replace("-", "_")
    build.__doc__ = (
        f"Pre-activation WideResNet-{depth}-{width} (TRADES/MART code via RobustBench); "
        "``sub_block1=True`` materialises the unused block, by default it is dropped on load."
    )
    return build


wrn_34_10 = _wrn(34, 10)
wrn_34_8 = _wrn(34, 8)
wrn_28_10 = _wrn(28, 10)
