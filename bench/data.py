"""Dataset registry, loading into memory, deterministic subsets and batching.

Splits are held as uint8 tensors (MNIST and CIFAR-10 fit easily); batches are made and
augmented on tensors, seeded per epoch, so a resumed run sees exactly the same data.
Test subsets are the first N test points (RobustBench's convention).
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from bench.registry import Registry

REPO = Path(__file__).resolve().parent.parent
CIFAR_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


class DataNotFoundError(RuntimeError):
    """The data is not where we look; the message says where to put it."""


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    shape: tuple[int, int, int]
    eps: float
    label: str
    offline_standin: bool
    augment: str  # "none" | "crop-flip"


DATASETS: Registry[DatasetInfo] = Registry("dataset")
DATASETS.add(
    "mnist", DatasetInfo("mnist", 10, (1, 28, 28), 0.3, "MNIST (torchvision layout)", False, "none")
)
DATASETS.add(
    "cifar10",
    DatasetInfo("cifar10", 10, (3, 32, 32), 8 / 255, "CIFAR-10 (official)", False, "crop-flip"),
)
DATASETS.add(
    "cifar10-jpeg",
    DatasetInfo(
        "cifar10-jpeg",
        10,
        (3, 32, 32),
        8 / 255,
        "CIFAR-10 re-encoded as JPEG q75: an offline stand-in, not official CIFAR-10",
        True,
        "crop-flip",
    ),
)


def resolve_root(root: str | os.PathLike[str] | None = None) -> Path:
    """Data root: argument > $BENCH_DATA_ROOT > ../shared/datasets (from the cwd or the
    repository) > ./data."""
    if root:
        return Path(root)
    env = os.environ.get("BENCH_DATA_ROOT")
    if env:
        return Path(env)
    for cand in (Path.cwd() / "../shared/datasets", REPO / "../shared/datasets"):
        if cand.is_dir():
            return cand.resolve()
    return Path("data")


def _cache_dir() -> Path:
    return Path(os.environ.get("BENCH_CACHE", Path.home() / ".cache" / "bench"))


def _missing(name: str, where: Path, layout: str) -> DataNotFoundError:
    return DataNotFoundError(
        f"{name} not found under {where} and could not be downloaded: put it at {layout} "
        f"(set the root with --data-root or BENCH_DATA_ROOT)"
    )


def _load_mnist(root: Path, train: bool) -> tuple[Tensor, Tensor]:
    from torchvision.datasets import MNIST

    folder = root / "mnist"
    try:
        ds = MNIST(str(folder), train=train, download=False)
    except RuntimeError:
        try:
            ds = MNIST(str(folder), train=train, download=True)
        except Exception as e:  # no network, or a mirror refused
            raise _missing("MNIST", folder, f"{folder}/MNIST/raw/*-ubyte") from e
    return ds.data.unsqueeze(1).contiguous(), ds.targets.long()


def _load_cifar10(root: Path, train: bool) -> tuple[Tensor, Tensor]:
    from torchvision.datasets import CIFAR10

    folder = root / "cifar10"
    try:
        ds = CIFAR10(str(folder), train=train, download=False)
    except RuntimeError:
        try:
            ds = CIFAR10(str(folder), train=train, download=True)
        except Exception as e:
            raise DataNotFoundError(
                f"CIFAR-10 not found under {folder} and could not be downloaded: put "
                f"cifar-10-batches-py/ there (or set --data-root / BENCH_DATA_ROOT); offline, "
                f"use --dataset cifar10-jpeg"
            ) from e
    x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
    return x, torch.tensor(ds.targets, dtype=torch.long)


def _load_cifar10_jpeg(root: Path, train: bool) -> tuple[Tensor, Tensor]:
    """Decode ``<split>/<class>/<NNNN>.jpg`` from the archive, in a class-interleaved order.

    The archive numbers images per class, so the official order is lost. We put the i-th
    image (by file name) of class c at position 10 * i + c; leftovers of larger classes go
    at the end in class order. The "first N test points" are then class-balanced.
    """
    from PIL import Image

    split = "train" if train else "test"
    archive = root / "cifar10-jpeg" / f"{split}.tar.gz"
    if not archive.exists():
        raise _missing("cifar10-jpeg", archive.parent, f"{archive} (members {split}/<class>/*.jpg)")
    per_class: dict[int, list[tuple[str, np.ndarray]]] = {c: [] for c in range(10)}
    with tarfile.open(archive) as tar:
        for m in tar:
            parts = m.name.split("/")
            if not m.isfile() or len(parts) != 3 or parts[1] not in CIFAR_CLASSES:
                continue
            f = tar.extractfile(m)
            assert f is not None
            img = np.asarray(Image.open(io.BytesIO(f.read())).convert("RGB"))
            per_class[CIFAR_CLASSES.index(parts[1])].append((parts[2], img))
    for items in per_class.values():
        items.sort(key=lambda t: t[0])
    depth = min(len(v) for v in per_class.values())
    order = [(c, i) for i in range(depth) for c in range(10)]
    order += [(c, i) for c in range(10) for i in range(depth, len(per_class[c]))]
    x = np.stack([per_class[c][i][1] for c, i in order]).transpose(0, 3, 1, 2)
    y = np.array([c for c, _ in order])
    return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y).long()


_LOADERS = {"mnist": _load_mnist, "cifar10": _load_cifar10, "cifar10-jpeg": _load_cifar10_jpeg}


@cache
def _load_cached(name: str, train: bool, root: Path) -> tuple[Tensor, Tensor]:
    if name != "cifar10-jpeg":
        return _LOADERS[name](root, train)
    archive = root / "cifar10-jpeg" / f"{'train' if train else 'test'}.tar.gz"
    if archive.exists():
        stat = archive.stat()
        key = f"cifar10-jpeg-{'train' if train else 'test'}-{stat.st_size}-{int(stat.st_mtime)}.pt"
        path = _cache_dir() / key
        if path.exists():
            d = torch.load(path, weights_only=True)
            return d["x"], d["y"]
    x, y = _LOADERS[name](root, train)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"x": x, "y": y}, tmp)
    os.replace(tmp, path)
    return x, y


def load_split(
    name: str, train: bool, root: str | os.PathLike[str] | None = None
) -> tuple[Tensor, Tensor]:
    """Images (uint8, N x C x H x W) and labels (int64) of a whole split."""
    DATASETS.get(name)
    return _load_cached(name, train, resolve_root(root).resolve())


def describe(name: str, root: str | os.PathLike[str] | None = None) -> str:
    """An honest one-line label of the data actually loaded (sizes counted, not assumed)."""
    info = DATASETS.get(name)
    n_tr = len(load_split(name, True, root)[1])
    n_te = len(load_split(name, False, root)[1])
    label = f"{name}: {n_tr:,} train / {n_te:,} test images"
    if name == "mnist" and n_tr < 60_000:
        label += f" (offline copy: only the first {n_tr:,} official training images)"
    elif info.offline_standin:
        label += f" ({info.label})"
    return label


def subset(x: Tensor, y: Tensor, n: int | None) -> tuple[Tensor, Tensor]:
    """The first ``n`` points (all when ``n`` is None)."""
    if n is None:
        return x, y
    if n < 1 or n > len(y):
        raise ValueError(f"subset of {n} requested, but the split has {len(y)} images")
    return x[:n], y[:n]


class Batches:
    """Mini-batches of (x float in [0, 1], y, indices), shuffled with a per-epoch seed."""

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        augment: str = "none",
        device: str | torch.device = "cpu",
    ) -> None:
        if augment not in ("none", "crop-flip"):
            raise ValueError(f"unknown augmentation {augment!r}; valid: none, crop-flip")
        self.x, self.y = x, y
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.augment, self.device = augment, device
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return (len(self.y) + self.batch_size - 1) // self.batch_size

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        n = len(self.y)
        order = torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)
        for lo in range(0, n, self.batch_size):
            idx = order[lo : lo + self.batch_size]
            xb = self.x[idx].float().div_(255.0)
            if self.augment == "crop-flip":
                xb = crop_flip(xb, g)
            yield xb.to(self.device), self.y[idx].to(self.device), idx


def crop_flip(x: Tensor, g: torch.Generator, pad: int = 4) -> Tensor:
    """Zero-pad by ``pad``, random crop back to size, random horizontal flip (per image)."""
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, None, :]
    batch = torch.arange(n)[:, None, None, None]
    chan = torch.arange(x.shape[1])[None, :, None, None]
    out = padded[batch, chan, rows, cols]
    flip = torch.rand(n, generator=g) < 0.5
    out[flip] = out[flip].flip(-1)
    return out
