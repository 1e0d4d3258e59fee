"""Pseudo-labels for semi-supervised runs: train the labeller, label once, record it.

The sources and the stored files are described in bench/data/unlabelled.py; the
labeller's spec comes from bench/spec/auxiliary.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from torch import nn

from bench import data as bdata
from bench.data.unlabelled import (
    LABELLER_CHECKPOINT,
    PSEUDO_FILE,
    PSEUDO_JSON,
    labels_sha256,
    parse_source,
    read_record,
)
from bench.spec.auxiliary import labeller_spec
from bench.spec.run import RunSpec
from bench.store.db import Run
from bench.store.loading import checkpoint_model

TrainFn = Callable[..., tuple[Run, bool]]  # (spec, progress=...) -> (run, trained)


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


def prepare_pseudo_labels(
    engine: Engine,
    spec: RunSpec,
    run_id: int,
    *,
    train: TrainFn,
    device: str = "cpu",
    data_root: str | None = None,
) -> dict[str, Any]:
    """Train the labeller if missing (``train``: the caller's training job), label the images
    once, and record who labelled what."""
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
        lab_run, _ = train(labeller, progress=False)
        with Session(engine) as s:
            lab = s.get_one(Run, lab_run.id)
            ckpt = next(c for c in lab.checkpoints if c.tag == LABELLER_CHECKPOINT)
            ckpt_sha, ckpt_epoch = ckpt.sha256, ckpt.epoch
            model = checkpoint_model(lab, ckpt).to(device)
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
            "labels_sha256": labels_sha256(labels),
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
