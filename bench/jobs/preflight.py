"""Checks a job makes before its first row, claim or folder: a rejected command writes nothing.

Each check raises a one-line ``ValueError`` (or ``DataNotFoundError``), which the CLI prints
as ``error: ...`` with exit code 2. What needs the data (subset sizes) reads the split once;
the data layer caches decoded arrays, so the job's own read afterwards costs little.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bench import data as bdata
from bench.spec.run import RunSpec
from bench.train import precision


def check_train(spec: RunSpec, runs_dir: Path, device: str, data_root: str | None) -> None:
    """Everything a training job can refuse before it writes: precision on this device,
    subset sizes against the splits, and a runs folder that can be written."""
    precision.check(spec.precision, device)
    x_tr, _ = bdata.load_split(spec.dataset, True, data_root)
    _fits("--train-subset", spec.train_subset, len(x_tr), "training")
    n_train = spec.train_subset or len(x_tr)
    if spec.val_subset is not None and spec.val_subset >= n_train:
        raise ValueError(
            f"--val-subset {spec.val_subset:,} leaves no training image of {n_train:,}"
        )
    x_te, _ = bdata.load_split(spec.dataset, False, data_root)
    _fits("--test-subset", spec.test_subset, len(x_te), "test")
    _fits("--monitor-subset", spec.monitor_subset, len(x_te), "test")
    writable_folder(runs_dir, "--runs-dir")


def _fits(option: str, n: int | None, size: int, split: str) -> None:
    if n is not None and n > size:
        raise ValueError(f"{option} {n:,} is larger than the {split} split ({size:,} images)")


def writable_folder(path: Path, option: str) -> None:
    """``path`` is (or can become) a folder this process can write in; it is created, as the
    command would create it anyway, and a probe file is written and removed there."""
    path = Path(path)
    for parent in (path, *path.parents):
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{option} {path}: {parent} is a file, not a folder")
            break
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        why = e.strerror or str(e)
        raise ValueError(f"{option} {path}: cannot write there ({why})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {path}: cannot write there (permission denied)")
