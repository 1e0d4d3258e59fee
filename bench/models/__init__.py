"""Model registry: the paper's architectures, built by name.

The names are registered here by reference (``"module:factory"``), so listing them (``bench
ls models``) or checking a spec's model imports no PyTorch; ``MODELS.get(name)`` imports
the module that defines the architecture (``bench/models/nets.py``: SmallCNN, a tiny test
CNN, softmax regression, and RobustBench's CIFAR ResNets and WideResNets). A new
architecture is a factory in ``nets.py`` (or its own module) and one line below.

All models take images in [0, 1] with no mean/std normalisation (docs/reference.md §1.3).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from bench.core.registry import Registry

if TYPE_CHECKING:
    from torch import nn

MODELS: Registry[Callable[..., nn.Module]] = Registry("model")
for _name, _factory in (
    ("smallcnn", "smallcnn"),  # MNIST, the TRADES/MART "4-layer CNN"
    ("tiny-cnn", "tiny_cnn"),  # about 2k parameters, for tests
    ("linear", "linear"),  # softmax regression on pixels
    ("resnet18", "resnet18"),
    ("resnet50", "resnet50"),  # the paper's black-box surrogate
    ("wrn-34-10", "wrn_34_10"),
    ("wrn-34-8", "wrn_34_8"),
    ("wrn-28-10", "wrn_28_10"),
):
    MODELS.add_lazy(_name, f"bench.models.nets:{_factory}")

# Input transformations applied at inference (bench/models/transforms.py), by reference too.
TRANSFORMS: Registry[Callable[..., nn.Module]] = Registry("input transformation")
for _name, _cls in (
    ("bit-depth", "BitDepth"),
    ("median", "MedianFilter"),
    ("feature-squeeze", "FeatureSqueeze"),
    ("jpeg", "Jpeg"),
    ("resize-pad", "RandomResizePad"),
):
    TRANSFORMS.add_lazy(_name, f"bench.models.transforms:{_cls}")


def build_model(name: str, num_classes: int = 10, in_channels: int | None = None) -> nn.Module:
    """Build a fresh model by registry name; ``in_channels=None`` keeps its natural value.

    Unknown names raise :class:`bench.core.registry.UnknownNameError` listing the choices; an
    input shape the architecture cannot take raises ValueError before any weights exist.
    """
    factory = MODELS.get(name)
    if in_channels is None:
        return factory(num_classes=num_classes)
    return factory(num_classes=num_classes, in_channels=in_channels)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (what the papers report, e.g. 46.2M for WRN-34-10)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
