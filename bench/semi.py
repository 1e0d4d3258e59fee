"""Unlabelled data for semi-supervised runs: sources, pseudo-labels and their provenance.

A semi-supervised run (``mart-semi``, ``rst``, ``uat++``; MART paper §3.3) adds extra
images whose labels are predicted by a naturally trained model of the same harness,
as RST and UAT++ do. Three things are recorded so that every number can say which
images were labelled by which model:

- in the spec (its identity): the source string, the number of images, and the name of
  the ``natural`` run that labels them (same model, data set, preset, subset and
  training settings as the semi-supervised run, see :func:`labeller_spec`);
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

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from torch import nn

from bench import data as bdata
from bench.specs import RunSpec, resolve

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
            return tuple(np.load(self.path, mmap_mode="r").shape)
        return tuple(_load_pt(Path(self.path)).shape)

    def load(self, shape: tuple[int, int, int], data_root: str | None = None) -> torch.Tensor:
        """The images as uint8 ``N x C x H x W``, checked against the data set's shape."""
        if self.kind == "heldout":
            x, _ = bdata.load_split(self.dataset, True, data_root)
            return x[self.start : self.stop]
        if self.kind == "folder":
            x = _load_folder(Path(self.path), channels=shape[0])
        elif self.path.endswith(".npy"):
            x = torch.from_numpy(np.load(self.path))
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
        return bdata.load_split(self.dataset, True, data_root)[1][self.start : self.stop]


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
    obj = torch.load(path, map_location="cpu", weights_only=True)
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
        bdata.DATASETS.get(dataset)
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


def labeller_spec(spec: RunSpec) -> RunSpec:
    """The natural run whose predictions label the unlabelled images of ``spec``."""
    return resolve(
        "natural",
        spec.model,
        spec.dataset,
        spec.preset,
        seed=spec.seed,
        train_subset=spec.train_subset,
        test_subset=spec.test_subset,
        overrides={
            "epochs": spec.epochs,
            "batch_size": spec.batch_size,
            "lr": spec.lr,
            "momentum": spec.momentum,
            "weight_decay": spec.weight_decay,
            "milestones": spec.milestones,
            "lr_gamma": spec.lr_gamma,
            "eps": spec.eps,
        },
    )


def attach_unlabelled(spec: RunSpec, source: str, data_root: str | None = None) -> RunSpec:
    """``spec`` with an unlabelled source, its size and its pseudo-labeller recorded."""
    src = parse_source(source)
    if src.kind == "heldout":
        if src.dataset != spec.dataset:
            raise ValueError(f"held-out images of {src.dataset} for a {spec.dataset} run")
        n_total = len(bdata.load_split(src.dataset, True, data_root)[1])
        n_lab = spec.train_subset if spec.train_subset is not None else n_total
        if src.start < n_lab:
            raise ValueError(
                f"held-out images {src.start}..{src.stop - 1} overlap the labelled "
                f"first {n_lab:,}: use --train-subset <= {src.start}"
            )
        if src.stop > n_total:
            raise ValueError(f"{src.dataset} has only {n_total:,} training images (< {src.stop})")
    n = src.count(data_root)
    return dataclasses.replace(
        spec, unlabelled=src.text, n_unlabelled=n, pseudo_labeller=labeller_spec(spec).name
    )


@torch.no_grad()
def pseudo_label(
    model: nn.Module, x: torch.Tensor, *, batch_size: int = 512, device: str = "cpu"
) -> torch.Tensor:
    """The model's predicted class for each uint8 image (eval mode, no augmentation)."""
    model.eval()
    out = [
        model(x[i : i + batch_size].to(device).float() / 255).argmax(1).cpu()
        for i in range(0, len(x), batch_size)
    ]
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.int64)


def _sha(t: torch.Tensor) -> str:
    return hashlib.sha256(t.numpy().astype(np.int64).tobytes()).hexdigest()


def read_record(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / PSEUDO_JSON
    return json.loads(path.read_text()) if path.exists() else None


def prepare_pseudo_labels(
    engine: Engine,
    spec: RunSpec,
    run_id: int,
    *,
    runs_dir: Path,
    device: str = "cpu",
    data_root: str | None = None,
) -> dict[str, Any]:
    """Train the labeller if missing, label the images once, and record who labelled what."""
    from bench import jobs  # jobs imports this module lazily; keep the cycle lazy too
    from bench.checkpoints import load_weights
    from bench.db import Run
    from bench.train import build_for_spec

    assert spec.unlabelled is not None
    labeller = labeller_spec(spec)
    if labeller.name != spec.pseudo_labeller:
        raise ValueError(
            f"spec names pseudo-labeller {spec.pseudo_labeller}, but its settings give "
            f"{labeller.name}: build semi-supervised specs with attach_unlabelled()"
        )
    with Session(engine) as s:
        run_dir = Path(s.get_one(Run, run_id).run_dir)
    record = read_record(run_dir)
    if record is None or not (run_dir / PSEUDO_FILE).exists():
        lab_run, _ = jobs.train_job(
            engine, labeller, runs_dir=runs_dir, device=device, data_root=data_root, progress=False
        )
        with Session(engine) as s:
            ckpt = next(
                c for c in s.get_one(Run, lab_run.id).checkpoints if c.tag == LABELLER_CHECKPOINT
            )
            ckpt_path, ckpt_sha, ckpt_epoch = Path(ckpt.path), ckpt.sha256, ckpt.epoch
        model = load_weights(build_for_spec(labeller), ckpt_path).to(device)
        src = parse_source(spec.unlabelled)
        info = bdata.DATASETS.get(spec.dataset)
        labels = pseudo_label(model, src.load(info.shape, data_root), device=device)
        truth = src.true_labels(data_root)
        record = {
            "source": src.text,
            "description": src.describe(),
            "n": len(labels),
            "labeller_run": labeller.name,
            "labeller_checkpoint": LABELLER_CHECKPOINT,
            "labeller_epoch": ckpt_epoch,
            "labeller_sha256": ckpt_sha,
            "labels_file": str(run_dir / PSEUDO_FILE),
            "labels_sha256": _sha(labels),
            "class_counts": torch.bincount(labels, minlength=info.num_classes).tolist(),
            "agreement_with_true_labels": (
                None if truth is None else float((labels == truth).float().mean())
            ),
        }
        run_dir.mkdir(parents=True, exist_ok=True)
        torch.save({"labels": labels}, run_dir / PSEUDO_FILE)
        (run_dir / PSEUDO_JSON).write_text(json.dumps(record, indent=2) + "\n")
    with Session(engine) as s:
        run = s.get_one(Run, run_id)
        run.provenance = {**(run.provenance or {}), "pseudo_labels": record}
        s.commit()
    return record


def with_pseudo_labelled(
    spec: RunSpec,
    run_dir: Path,
    x: torch.Tensor,
    y: torch.Tensor,
    data_root: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Labelled images followed by the unlabelled ones with their stored pseudo-labels."""
    assert spec.unlabelled is not None
    path = Path(run_dir) / PSEUDO_FILE
    if not path.exists():
        raise LookupError(
            f"{path} is missing: semi-supervised runs are trained through jobs.train_job, "
            "which trains the pseudo-labeller and writes it"
        )
    labels = torch.load(path, map_location="cpu", weights_only=True)["labels"]
    record = read_record(run_dir) or {}
    if record.get("labels_sha256") not in (None, _sha(labels)):
        raise RuntimeError(f"{path} changed since it was recorded")
    src = parse_source(spec.unlabelled)
    x_u = src.load(bdata.DATASETS.get(spec.dataset).shape, data_root)
    if len(x_u) != len(labels) or len(labels) != spec.n_unlabelled:
        raise RuntimeError(
            f"{len(x_u)} unlabelled images, {len(labels)} pseudo-labels, spec says "
            f"{spec.n_unlabelled}: the source changed since the run was specified"
        )
    return torch.cat([x, x_u]), torch.cat([y, labels.to(y.dtype)])


def describe_run(spec: dict[str, Any], provenance: dict[str, Any] | None) -> str | None:
    """One line for listings and table notes, or None for a supervised run."""
    if not spec.get("unlabelled"):
        return None
    rec = (provenance or {}).get("pseudo_labels") or {}
    text = (
        f"{spec.get('n_unlabelled')} unlabelled images ({spec['unlabelled']}) "
        f"pseudo-labelled by {spec.get('pseudo_labeller')}"
    )
    if rec:
        text += f" ({rec['labeller_checkpoint']} checkpoint, sha256 {rec['labeller_sha256'][:12]}"
        if rec.get("agreement_with_true_labels") is not None:
            text += f", {100 * rec['agreement_with_true_labels']:.1f}% agree with true labels"
        text += ")"
    return text
