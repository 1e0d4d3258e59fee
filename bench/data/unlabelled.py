"""Unlabelled data for semi-supervised runs: sources, pseudo-labels and their provenance.

A semi-supervised run (``mart-semi``, ``rst``, ``uat++``; MART paper §3.3) adds extra
images whose labels are predicted by a naturally trained model of the same harness,
as RST and UAT++ do. Three things are recorded so that every number can say which
images were labelled by which model:

- in the spec (its identity): the source string, the number of images, and the name of
  the ``natural`` run that labels them (same model, data set, preset, subset and
  training settings as the semi-supervised run, see ``bench.spec.auxiliary``);
- in the run directory: ``pseudo_labels.pt`` (the label array) and
  ``pseudo_labels.json`` (source, labeller run, its checkpoint and sha256, the labels'
  sha256, class counts, and agreement with the true labels when they are known);
- in the run's provenance in the database (``provenance["pseudo_labels"]``): the same
  record, shown by ``bench ls runs`` and in the table notes.

Source strings:

- ``heldout:DATASET:START:STOP``: training images ``START..STOP-1`` of a registered
  data set with their labels dropped (tests and offline demos; e.g. MNIST images
  10000..16999 while the labelled set is the first N < 10000). Overlap with the
  labelled subset is refused.
- ``PATH.npy`` / ``PATH.pt``: a uint8 array ``N x C x H x W`` (``N x H x W x C`` is
  accepted too; a ``.pt`` may hold a tensor or a dict with ``"x"`` or ``"data"``).
- ``PATH/`` (a folder): image files (png, jpg, jpeg, bmp), in sorted file-name order.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.files import load_array, load_tensors
from bench.core.lazy import torch
from bench.data.datasets import DATASETS, load_split

PSEUDO_FILE = "pseudo_labels.pt"
PSEUDO_JSON = "pseudo_labels.json"
LABELLER_CHECKPOINT = "last"  # "best" is picked by PGD-20, meaningless for a natural model
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")


@dataclass(frozen=True)
class UnlabelledSource:
    text: str  # canonical source string, as stored in the spec
    kind: str  # heldout | array | folder
    path: str = ""
    dataset: str = ""
    start: int = 0
    stop: int = 0

    def describe(self) -> str:
        if self.kind == "heldout":
            return (
                f"{self.dataset} training images {self.start}..{self.stop - 1} "
                f"({self.stop - self.start:,}), true labels dropped"
            )
        return f"{self.kind} {self.path}"

    def count(self, data_root: str | None = None) -> int:
        if self.kind == "heldout":
            return self.stop - self.start
        if self.kind == "folder":
            return len(_image_files(Path(self.path)))
        return int(self._array_shape()[0])

    def _array_shape(self) -> tuple[int, ...]:
        if self.path.endswith(".npy"):
            return tuple(load_array(Path(self.path), "unlabelled file", mmap=True).shape)
        return tuple(_load_pt(Path(self.path)).shape)

    def load(self, shape: tuple[int, int, int], data_root: str | None = None) -> torch.Tensor:
        """The images as uint8 ``N x C x H x W``, checked against the data set's shape."""
        if self.kind == "heldout":
            x, _ = load_split(self.dataset, True, data_root)
            return x[self.start : self.stop]
        if self.kind == "folder":
            x = _load_folder(Path(self.path), channels=shape[0])
        elif self.path.endswith(".npy"):
            x = torch.from_numpy(load_array(Path(self.path), "unlabelled file"))
        else:
            x = _load_pt(Path(self.path))
        if x.ndim == 4 and x.shape[1] != shape[0] and x.shape[-1] == shape[0]:
            x = x.permute(0, 3, 1, 2)  # N x H x W x C (e.g. RST's 500K pickle layout)
        if x.dtype != torch.uint8 or tuple(x.shape[1:]) != shape:
            raise ValueError(
                f"unlabelled source {self.text}: expected uint8 N x {shape}, "
                f"got {x.dtype} {tuple(x.shape)}"
            )
        return x.contiguous()

    def true_labels(self, data_root: str | None = None) -> torch.Tensor | None:
        """The dropped labels of a held-out source (only to report pseudo-label accuracy)."""
        if self.kind != "heldout":
            return None
        return load_split(self.dataset, True, data_root)[1][self.start : self.stop]


def _image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise ValueError(f"unlabelled folder {folder} does not exist")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _load_folder(folder: Path, channels: int) -> torch.Tensor:
    from PIL import Image

    mode = "L" if channels == 1 else "RGB"
    arrays = [np.asarray(Image.open(p).convert(mode)) for p in _image_files(folder)]
    if not arrays:
        raise ValueError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    x = torch.from_numpy(np.stack(arrays))
    return x[:, None] if channels == 1 else x.permute(0, 3, 1, 2)


def _load_pt(path: Path) -> torch.Tensor:
    obj = load_tensors(path, "unlabelled file")
    if isinstance(obj, dict):
        obj = obj.get("x", obj.get("data"))
    if not isinstance(obj, torch.Tensor):
        raise ValueError(f"{path}: expected a tensor or a dict with 'x' or 'data'")
    return obj


def parse_source(text: str) -> UnlabelledSource:
    """Parse (and canonicalise) an unlabelled source string; see the module docstring."""
    if text.startswith("heldout:"):
        parts = text.split(":")
        if len(parts) != 4:
            raise ValueError(f"expected heldout:DATASET:START:STOP, got {text!r}")
        _, dataset, start, stop = parts
        DATASETS.get(dataset)
        lo, hi = int(start), int(stop)
        if not 0 <= lo < hi:
            raise ValueError(f"heldout range must satisfy 0 <= START < STOP, got {lo}:{hi}")
        return UnlabelledSource(f"heldout:{dataset}:{lo}:{hi}", "heldout", "", dataset, lo, hi)
    path = Path(text).expanduser()
    if path.is_dir():
        return UnlabelledSource(str(path.resolve()), "folder", str(path.resolve()))
    if path.suffix in (".npy", ".pt") and path.is_file():
        return UnlabelledSource(str(path.resolve()), "array", str(path.resolve()))
    raise ValueError(
        f"unlabelled source {text!r} is neither heldout:DATASET:START:STOP, "
        "an existing .npy/.pt file, nor a folder of images"
    )


def labels_sha256(t: torch.Tensor) -> str:
    return hashlib.sha256(t.numpy().astype(np.int64).tobytes()).hexdigest()


def read_record(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / PSEUDO_JSON
    return json.loads(path.read_text()) if path.exists() else None


def with_pseudo_labelled(
    source: str,
    n_expected: int | None,
    dataset: str,
    run_dir: Path,
    x: torch.Tensor,
    y: torch.Tensor,
    data_root: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Labelled images followed by the unlabelled ones with their stored pseudo-labels."""
    path = Path(run_dir) / PSEUDO_FILE
    if not path.exists():
        raise LookupError(
            f"{path} is missing: semi-supervised runs are trained through "
            "bench.jobs.train_job, which trains the pseudo-labeller and writes it"
        )
    labels = load_tensors(path, "pseudo-label file")["labels"]
    record = read_record(run_dir) or {}
    if record.get("labels_sha256") not in (None, labels_sha256(labels)):
        raise RuntimeError(f"{path} changed since it was recorded")
    src = parse_source(source)
    x_u = src.load(DATASETS.get(dataset).shape, data_root)
    if len(x_u) != len(labels) or len(labels) != n_expected:
        raise RuntimeError(
            f"{len(x_u)} unlabelled images, {len(labels)} pseudo-labels, spec says "
            f"{n_expected}: the source changed since the run was specified"
        )
    return torch.cat([x, x_u]), torch.cat([y, labels.to(y.dtype)])
