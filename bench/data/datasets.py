"""Datasets as in-memory uint8 tensors: the registry, the loaders and the data root.

Everything is held in memory (MNIST and CIFAR-10 are small) so that training needs no
DataLoader workers (batches: ``bench.data.batches``).

Data sets:

* ``mnist``: torchvision's layout ``<root>/mnist/MNIST/raw/*-ubyte``. A partial copy (e.g.
  an offline one with only the first 17,000 of the 60,000 training images) is fine: sizes
  are always reported from what was actually loaded (see :func:`describe`).
* ``cifar10``: the official release through torchvision (``<root>/cifar10``), downloaded
  when missing (and the machine is online).
* ``cifar10-jpeg``: an offline stand-in (JPEG q75 re-encoded CIFAR-10) read straight from
  ``<root>/cifar10-jpeg/{train,test}.tar.gz``. Numbers obtained on it are not official
  CIFAR-10 numbers and must say so.

Environment: ``BENCH_DATA_ROOT`` (data folder), ``BENCH_CACHE`` (decoded-array cache,
default ``~/.cache/bench``), ``BENCH_OFFLINE=1`` (never try a download).
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench.core.constants import EPS_CIFAR, EPS_MNIST
from bench.core.lazy import torch
from bench.core.registry import Registry

if TYPE_CHECKING:
    from torch import Tensor

ENV_ROOT = "BENCH_DATA_ROOT"
ENV_CACHE = "BENCH_CACHE"
ENV_OFFLINE = "BENCH_OFFLINE"
CIFAR10_CLASSES = tuple(
    ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
)  # standard order
# Official split sizes, used only to word describe() honestly.
_OFFICIAL_SIZES = {"mnist": (60_000, 10_000), "cifar10": (50_000, 10_000)}
_CACHE_VERSION = 1  # bump when a loader's output (e.g. the cifar10-jpeg order) changes

Split = tuple["Tensor", "Tensor"]  # images (uint8), labels (int64)


class DataNotFoundError(RuntimeError):
    """The data set's files are missing (and could not be downloaded)."""


@dataclass(frozen=True)
class DatasetInfo:
    """What the rest of the harness needs to know about a data set without loading it."""

    name: str
    num_classes: int
    shape: tuple[int, int, int]
    eps: float  # default L-inf budget (docs/reference.md §1.3): 0.3 on MNIST, 8/255 on CIFAR-10
    label: str  # human label for tables
    offline_standin: bool  # True when the pixels differ from the official release
    augment: str  # "none" or "crop-flip"


DATASETS: Registry[DatasetInfo] = Registry("dataset")
_MNIST_LABEL = "MNIST (offline copy: first 17,000 train images; describe() gives real sizes)"
for _info in (  # fields: name, classes, shape, eps, label, offline_standin, augment
    DatasetInfo("mnist", 10, (1, 28, 28), EPS_MNIST, _MNIST_LABEL, False, "none"),
    DatasetInfo("cifar10", 10, (3, 32, 32), EPS_CIFAR, "CIFAR-10 (official)", False, "crop-flip"),
    DatasetInfo(
        "cifar10-jpeg",
        10,
        (3, 32, 32),
        EPS_CIFAR,
        "CIFAR-10 re-encoded as JPEG q75: offline stand-in, not official",
        True,
        "crop-flip",
    ),
):
    DATASETS.add(_info.name, _info)


def resolve_root(root: str | Path | None = None) -> Path:
    """The data folder: ``root`` (``--data-root``) > ``$BENCH_DATA_ROOT`` > ``./data``.

    No machine's path is built in: tests and CI point ``BENCH_DATA_ROOT`` at their copy.
    """
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(ENV_ROOT)
    return Path(env).expanduser() if env else Path("data")


def cache_dir() -> Path:
    """Where decoded arrays are cached (``$BENCH_CACHE`` or ``~/.cache/bench``)."""
    env = os.environ.get(ENV_CACHE)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "bench"


def _missing(what: str, where: Path, extra: str = "") -> DataNotFoundError:
    return DataNotFoundError(
        f"{what} not found: expected {where} (pass --data-root or set {ENV_ROOT}){extra}"
    )


def _oneline(e: BaseException, limit: int = 160) -> str:
    """The error on one line, cut at a word (never mid-word) when longer than ``limit``."""
    text = " ".join(str(e).split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + " ..."


def offline() -> bool:
    return os.environ.get(ENV_OFFLINE, "") not in ("", "0", "false", "no")


def _download(what: str, where: Path, make: Callable[[], object], hint: str = "") -> None:
    """Try a torchvision download; any failure becomes a one-line DataNotFoundError."""
    if offline():
        raise _missing(what, where, f"; {ENV_OFFLINE} is set, so no download{hint}")
    try:
        make()
    except Exception as e:  # no network surfaces as RuntimeError, URLError, OSError...
        raise _missing(what, where, f"; download failed: {_oneline(e, 2000)}{hint}") from e


def _load_mnist(root: Path, train: bool) -> Split:
    from torchvision.datasets import MNIST

    folder = root / "mnist"
    prefix = "train" if train else "t10k"
    files = [
        folder / "MNIST" / "raw" / f"{prefix}-{k}-ubyte" for k in ("images-idx3", "labels-idx1")
    ]
    if not all(f.exists() for f in files):  # only then: never replace a local copy
        where = folder / "MNIST" / "raw" / f"{prefix}-*-ubyte"
        _download("MNIST", where, lambda: MNIST(str(folder), train=train, download=True))
    ds = MNIST(str(folder), train=train)
    return ds.data.unsqueeze(1).contiguous(), torch.as_tensor(ds.targets, dtype=torch.int64)


def _load_cifar10(root: Path, train: bool) -> Split:
    from torchvision.datasets import CIFAR10

    folder = root / "cifar10"
    if not (folder / "cifar-10-batches-py").is_dir():
        hint = "; offline? use --dataset cifar10-jpeg (a JPEG stand-in, not official)"
        make = lambda: CIFAR10(str(folder), train=train, download=True)  # noqa: E731
        _download("CIFAR-10", folder / "cifar-10-batches-py", make, hint)
    ds = CIFAR10(str(folder), train=train)
    x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
    return x, torch.as_tensor(ds.targets, dtype=torch.int64)


def _natural_key(name: str) -> tuple[int, str]:
    stem = Path(name).stem
    return (int(stem), name) if stem.isdigit() else (1 << 62, name)


def _jpeg_archive(root: Path, train: bool) -> Path:
    return root / "cifar10-jpeg" / f"{'train' if train else 'test'}.tar.gz"


def _load_cifar10_jpeg(root: Path, train: bool) -> Split:
    """Decode ``<split>/<class>/<NNNN>.jpg`` members in a class-interleaved order.

    The archive has no official order (files are numbered per class), so the order is
    defined here: round-robin over classes in CIFAR-10 order, taking each class's images
    sorted by file number; position ``i*10 + c`` holds the i-th image of class ``c`` (a
    class that runs out is skipped, so leftovers of larger classes follow, still
    round-robin). Consequence: "the first N test points" here are class-balanced, unlike
    the official CIFAR-10 order, so first-N numbers are comparable but not identical.
    """
    import numpy as np
    from PIL import Image  # torchvision.io's decoder is deprecated since torchvision 0.29

    archive = _jpeg_archive(root, train)
    if not archive.is_file():
        raise _missing("cifar10-jpeg", archive)
    per_class: dict[int, list[tuple[tuple[int, str], bytes]]] = {c: [] for c in range(10)}
    index = {n: i for i, n in enumerate(CIFAR10_CLASSES)}
    with tarfile.open(archive) as tf:
        for m in tf:
            parts = Path(m.name).parts
            ok = m.isfile() and len(parts) >= 2 and m.name.lower().endswith(".jpg")
            f = tf.extractfile(m) if ok and parts[-2] in index else None
            if f is not None:
                per_class[index[parts[-2]]].append((_natural_key(parts[-1]), f.read()))
    if not any(per_class.values()):
        raise DataNotFoundError(f"no <split>/<class>/*.jpg members in {archive}")
    for items in per_class.values():
        items.sort(key=lambda t: t[0])
    blobs: list[bytes] = []
    labels: list[int] = []
    for i in range(max(len(v) for v in per_class.values())):
        for c, items in per_class.items():
            if i < len(items):
                blobs.append(items[i][1])
                labels.append(c)
    x = torch.from_numpy(
        np.stack([np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in blobs])
    ).permute(0, 3, 1, 2)
    if x.shape[1:] != (3, 32, 32):
        raise ValueError(f"{archive}: expected 3x32x32 images, got {tuple(x.shape[1:])}")
    return x.contiguous(), torch.tensor(labels, dtype=torch.int64)


_LOADERS: dict[str, Callable[[Path, bool], Split]] = {
    "mnist": _load_mnist,
    "cifar10": _load_cifar10,
    "cifar10-jpeg": _load_cifar10_jpeg,
}
_MEMO: dict[tuple[str, bool, str], Split] = {}


def _cache_file(name: str, train: bool, source: Path) -> Path:
    st = source.stat()
    key = f"{_CACHE_VERSION}|{source.resolve()}|{st.st_size}|{st.st_mtime_ns}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir() / f"{name}-{'train' if train else 'test'}-{digest}.pt"


def _read_cache(path: Path) -> Split | None:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
        return obj["x"], obj["y"]
    except FileNotFoundError:
        return None
    except Exception as e:  # corrupt or foreign file: decode again and overwrite it
        warnings.warn(f"ignoring unreadable data cache {path}: {e}", stacklevel=3)
        return None


def _write_cache(path: Path, split: Split) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        torch.save({"x": split[0], "y": split[1]}, tmp)
        os.replace(tmp, path)  # atomic: concurrent readers never see a partial file
    except (OSError, RuntimeError) as e:  # a read-only home must not stop training
        warnings.warn(f"could not write data cache {path}: {e}", stacklevel=3)


def load_split(name: str, train: bool, root: str | Path | None = None) -> Split:
    """Images ``uint8 [N, C, H, W]`` and labels ``int64 [N]`` of one split, in a fixed order.

    The order is the data set's own (official order for ``mnist``/``cifar10``; the
    class-interleaved order documented in :func:`_load_cifar10_jpeg` for ``cifar10-jpeg``).
    Results are memoized in-process and, for slow decoders, cached on disk under
    :func:`cache_dir`; callers must not modify the returned tensors in place.
    """
    DATASETS.get(name)  # unknown names fail here, listing the choices
    base = resolve_root(root)
    memo_key = (name, train, str(base.resolve()))
    if memo_key in _MEMO:
        return _MEMO[memo_key]
    cache = None
    source = _jpeg_archive(base, train) if name == "cifar10-jpeg" else None  # the slow decoder
    if source is not None and source.is_file():
        cache = _cache_file(name, train, source)
        hit = _read_cache(cache)
        if hit is not None:
            _MEMO[memo_key] = hit
            return hit
    split = _LOADERS[name](base, train)
    if cache is not None:
        _write_cache(cache, split)
    _MEMO[memo_key] = split
    return split


def describe(name: str, root: str | Path | None = None) -> str:
    """An honest one-line description from the sizes actually loaded, for result tables.

    E.g. ``"mnist: 17,000 train / 10,000 test images (partial copy: official has 60,000
    train / 10,000 test)"``: a number from a partial or stand-in copy must not pass as official.
    """
    info = DATASETS.get(name)
    n_tr = len(load_split(name, True, root)[1])
    n_te = len(load_split(name, False, root)[1])
    text = f"{name}: {n_tr:,} train / {n_te:,} test images"
    if info.offline_standin:
        return f"{text} ({info.label})"
    official = _OFFICIAL_SIZES.get(name)
    if official is not None and (n_tr, n_te) != official:
        return f"{text} (partial copy: official has {official[0]:,} train / {official[1]:,} test)"
    return text


def subset(x: torch.Tensor, y: torch.Tensor, n: int | None) -> Split:
    """The first ``n`` points (RobustBench's convention for evaluation subsets); None: all."""
    if n is None:
        return x, y
    if n < 0:
        raise ValueError(f"subset size must be >= 0, got {n}")
    if n > len(y):
        raise ValueError(f"asked for the first {n:,} points but the split has only {len(y):,}")
    return x[:n], y[:n]
