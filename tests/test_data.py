"""Data loading: real MNIST from the offline copy, the cifar10-jpeg order, the batch iterator."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
import torch
from conftest import requires_mnist
from PIL import Image

from bench import data as bdata
from bench.core.registry import UnknownNameError
from bench.data import datasets as bdatasets

SHARED = bdata.resolve_root(None)
has_cifar_jpeg = (SHARED / "cifar10-jpeg" / "test.tar.gz").is_file()


@requires_mnist
def test_mnist_shapes_dtypes_and_honest_sizes() -> None:
    x_te, y_te = bdata.load_split("mnist", False)
    x_tr, y_tr = bdata.load_split("mnist", True)
    assert x_te.shape == (10_000, 1, 28, 28) and x_te.dtype == torch.uint8
    assert y_te.dtype == torch.int64 and set(y_te.unique().tolist()) == set(range(10))
    assert x_tr.shape[1:] == (1, 28, 28) and len(x_tr) == len(y_tr)
    assert int(x_te.max()) == 255 and int(x_te.min()) == 0
    text = bdata.describe("mnist")
    assert f"{len(y_tr):,} train" in text and "10,000 test" in text
    if len(y_tr) < 60_000:  # the offline copy must never read as the full data set
        assert "partial" in text


@requires_mnist
def test_subset_is_the_first_n_points() -> None:
    x, y = bdata.load_split("mnist", False)
    xs, ys = bdata.subset(x, y, 7)
    assert torch.equal(xs, x[:7]) and torch.equal(ys, y[:7])
    assert bdata.subset(x, y, None)[0] is x
    with pytest.raises(ValueError, match="only 10,000"):
        bdata.subset(x, y, 10_001)


def _toy(n: int = 50, c: int = 3, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, c, size, size), dtype=torch.uint8, generator=g)
    return x, torch.arange(n) % 10


def _collect(b: bdata.Batches) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    return list(b)


def test_batches_deterministic_per_seed_and_epoch() -> None:
    x, y = _toy(50)
    b1 = bdata.Batches(x, y, 16, shuffle=True, seed=3)
    b2 = bdata.Batches(x, y, 16, shuffle=True, seed=3)
    assert len(b1) == 4
    b1.set_epoch(2)
    b2.set_epoch(2)
    a, b = _collect(b1), _collect(b2)
    assert all(
        torch.equal(p[0], q[0]) and torch.equal(p[2], q[2]) for p, q in zip(a, b, strict=True)
    )
    idx = torch.cat([t[2] for t in a])
    assert sorted(idx.tolist()) == list(range(50))  # every point exactly once
    xb, yb, ib = a[0]
    assert xb.dtype == torch.float32 and yb.dtype == torch.int64 and ib.dtype == torch.int64
    assert torch.allclose(xb, x[ib].float() / 255) and torch.equal(yb, y[ib])
    b1.set_epoch(3)
    assert not torch.equal(torch.cat([t[2] for t in b1]), idx)
    other_seed = bdata.Batches(x, y, 16, shuffle=True, seed=4)
    other_seed.set_epoch(1)  # seed + epoch collisions must not replay another run's order
    assert not torch.equal(torch.cat([t[2] for t in other_seed]), idx)


def test_batches_unshuffled_keeps_order_and_device() -> None:
    x, y = _toy(10)
    batches = list(bdata.Batches(x, y, 4, device="cpu"))
    assert [len(t[1]) for t in batches] == [4, 4, 2]
    assert torch.equal(torch.cat([t[2] for t in batches]), torch.arange(10))


def test_crop_flip_keeps_shape_and_range_and_changes_images() -> None:
    x, y = _toy(64)
    plain = next(iter(bdata.Batches(x, y, 64)))[0]
    b = bdata.Batches(x, y, 64, augment="crop-flip", seed=1)
    aug = next(iter(b))[0]
    assert aug.shape == plain.shape and aug.dtype == torch.float32
    assert float(aug.min()) >= 0.0 and float(aug.max()) <= 1.0
    changed = (aug != plain).flatten(1).any(1)
    assert changed.float().mean() > 0.8  # only the identity crop without flip is unchanged
    assert torch.equal(aug, next(iter(b))[0])  # same seed and epoch: same augmentation
    # Every augmented image is one of the 81 shifted crops of the zero-padded image, or its
    # mirror image; both flipped and unflipped ones occur.
    padded = torch.nn.functional.pad(plain[0], (4, 4, 4, 4))
    crops = [padded[:, i : i + 32, j : j + 32] for i in range(9) for j in range(9)]
    out = bdata.crop_flip(plain[:1].expand(40, -1, -1, -1), torch.Generator().manual_seed(0))
    kinds = set()
    for o in out:
        hits = {f for f in (0, 1) for c in crops if torch.equal(o, c.flip(-1) if f else c)}
        assert hits, "not a padded crop (or its mirror) of the input"
        kinds |= hits
    assert kinds == {0, 1}


def test_batches_rejects_unknown_augment() -> None:
    x, y = _toy(4)
    with pytest.raises(ValueError, match="crop-flip"):
        bdata.Batches(x, y, 2, augment="mixup")


def test_unknown_dataset_lists_choices() -> None:
    with pytest.raises(UnknownNameError) as e:
        bdata.load_split("mnsit", False)
    assert "mnist" in str(e.value) and "cifar10-jpeg" in str(e.value)


@pytest.mark.parametrize("name", ["mnist", "cifar10", "cifar10-jpeg"])
def test_missing_data_names_the_path(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(bdata.ENV_ROOT, str(tmp_path))
    monkeypatch.setenv(bdata.ENV_OFFLINE, "1")  # never wait on a download in tests
    with pytest.raises(bdata.DataNotFoundError) as e:
        bdata.load_split(name, False)
    msg = str(e.value)
    assert str(tmp_path) in msg and bdata.ENV_ROOT in msg and "\n" not in msg


def test_resolve_root_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(bdata.ENV_ROOT, str(tmp_path / "env"))
    assert bdata.resolve_root(tmp_path / "arg") == tmp_path / "arg"
    assert bdata.resolve_root(None) == tmp_path / "env"
    monkeypatch.delenv(bdata.ENV_ROOT)
    monkeypatch.chdir(tmp_path)
    assert bdata.resolve_root(None) != tmp_path / "env"


def _write_jpeg_archive(root: Path, split: str, counts: list[int]) -> None:
    """A miniature cifar10-jpeg split: class c's k-th image has the constant value 20k + c."""
    (root / "cifar10-jpeg").mkdir(parents=True, exist_ok=True)
    with tarfile.open(root / "cifar10-jpeg" / f"{split}.tar.gz", "w:gz") as tf:
        for c, (cls, n) in enumerate(zip(bdata.CIFAR10_CLASSES, counts, strict=True)):
            for k in reversed(range(n)):  # archive order must not matter
                buf = io.BytesIO()
                Image.new("RGB", (32, 32), (20 * k + c,) * 3).save(buf, "JPEG", quality=95)
                blob = buf.getvalue()
                info = tarfile.TarInfo(f"{split}/{cls}/{k:04d}.jpg")
                info.size = len(blob)
                tf.addfile(info, io.BytesIO(blob))


def test_cifar10_jpeg_interleaves_and_caches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counts = [3, 2, 3, 3, 3, 3, 3, 3, 3, 4]  # unequal: leftovers follow round-robin
    _write_jpeg_archive(tmp_path / "data", "test", counts)
    _write_jpeg_archive(tmp_path / "data", "train", [1] * 10)
    monkeypatch.setenv(bdata.ENV_CACHE, str(tmp_path / "cache"))
    x, y = bdata.load_split("cifar10-jpeg", False, tmp_path / "data")
    assert x.shape == (sum(counts), 3, 32, 32) and x.dtype == torch.uint8
    assert y[:20].tolist() == list(range(10)) * 2
    assert y[20:].tolist() == [0, 2, 3, 4, 5, 6, 7, 8, 9, 9]
    k = (x.float().mean((1, 2, 3)) - y) / 20  # recover the per-class file number
    assert k.round().tolist()[:10] == [0.0] * 10 and k.round().tolist()[10] == 1.0
    text = bdata.describe("cifar10-jpeg", tmp_path / "data")
    assert text.startswith("cifar10-jpeg: 10 train / 30 test images") and "not official" in text
    assert len(list((tmp_path / "cache").glob("cifar10-jpeg-test-*.pt"))) == 1
    monkeypatch.setattr(bdatasets, "_MEMO", {})
    monkeypatch.setitem(bdatasets._LOADERS, "cifar10-jpeg", None)  # must come from the cache now
    x2, y2 = bdata.load_split("cifar10-jpeg", False, tmp_path / "data")
    assert torch.equal(x, x2) and torch.equal(y, y2)


@pytest.mark.slow
@pytest.mark.skipif(not has_cifar_jpeg, reason=f"no cifar10-jpeg archive under {SHARED}")
def test_shared_cifar10_jpeg_test_split_is_class_interleaved() -> None:
    x, y = bdata.load_split("cifar10-jpeg", False)
    assert x.shape == (10_000, 3, 32, 32) and x.dtype == torch.uint8
    assert y[:50].tolist() == list(range(10)) * 5
    assert torch.bincount(y).tolist() == [1000] * 10
    assert bdata.subset(x, y, 100)[1].bincount().tolist() == [10] * 10
