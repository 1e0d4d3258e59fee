"""Data: the data-set registry and loaders, batches, and unlabelled-image sources."""

from __future__ import annotations

from bench.data.batches import AUGMENTS, Batches, crop_flip
from bench.data.datasets import (
    CIFAR10_CLASSES,
    DATASETS,
    ENV_CACHE,
    ENV_OFFLINE,
    ENV_ROOT,
    DataNotFoundError,
    DatasetInfo,
    Split,
    cache_dir,
    describe,
    load_split,
    offline,
    resolve_root,
    subset,
)

__all__ = [
    "AUGMENTS",
    "CIFAR10_CLASSES",
    "DATASETS",
    "ENV_CACHE",
    "ENV_OFFLINE",
    "ENV_ROOT",
    "Batches",
    "DataNotFoundError",
    "DatasetInfo",
    "Split",
    "cache_dir",
    "crop_flip",
    "describe",
    "load_split",
    "offline",
    "resolve_root",
    "subset",
]
