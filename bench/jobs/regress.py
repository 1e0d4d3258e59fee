"""Attack regression: committed small checkpoints and their per-point masks, re-attacked.

``results/reference/regress/attacks.json`` lists checkpoints (safetensors files beside it,
with their sha256), the data set, eps and test points, and for each attack preset the
packed per-point robust mask the harness produced when the baseline was written. ``check``
attacks again and reports, per (checkpoint, attack), the points that flipped; more flips
than the tolerance is a regression. ``update`` rewrites the masks and says what changed.

AutoAttack's parts (``apgd-ce``, ``apgd-t``) are chained as AutoAttack chains them: each
attacks only the points still robust after clean and the parts listed before it, and its
stored mask is cumulative (robust after it and every earlier part), so the last part's mask
is AutoAttack's (APGD-CE + APGD-T) verdict.

Exact where it can be: on the machine that wrote the baseline the masks are identical; on
another CPU the last bits of float arithmetic may differ, which the tolerance (a few
points) absorbs. Every flipped point is listed either way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

import attacks
from attacks.autoattack import STANDARD_ORDER
from bench import data as bdata
from bench.core.constants import REGRESS_BASELINE
from bench.eval.loop import robust_points
from bench.models import build_model
from bench.store.checkpoints import load_weights, verified
from bench.store.db import pack_mask, unpack_mask

TOLERANCE = 2  # points per (checkpoint, attack) that may flip across machines


@dataclass(frozen=True)
class Delta:
    checkpoint: str
    attack: str
    n: int
    before: int
    after: int
    flipped: list[int]

    @property
    def ok(self) -> bool:
        return len(self.flipped) <= TOLERANCE


def _masks(entry: dict, folder: Path, data_root: str | None) -> dict[str, np.ndarray]:
    info = bdata.DATASETS.get(entry["dataset"])
    file = verified(folder / entry["file"], entry["sha256"], "regression checkpoint")
    model = build_model(entry["model"], info.num_classes, info.shape[0])
    load_weights(model, file).eval()
    x, y = bdata.subset(*bdata.load_split(entry["dataset"], False, data_root), entry["n"])
    out: dict[str, np.ndarray] = {}
    chained: np.ndarray | None = None  # robust after clean and the AutoAttack parts so far
    for name in entry["attacks"]:
        if name in STANDARD_ORDER:
            if chained is None:  # the first part starts from the clean mask (computed once)
                chained = out.get("clean")
                if chained is None:
                    chained = _attack(model, x, y, None, entry["eps"])
            chained = out[name] = _chain_part(model, x, y, name, entry["eps"], chained)
        else:
            out[name] = _attack(model, x, y, name, entry["eps"])
    return out


def _attack(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, name: str | None, eps: float
) -> np.ndarray:
    atk = None if name is None or name == "clean" else attacks.build(name, eps=eps)
    return robust_points(model, x, y, atk, batch_size=len(x), seed=0).robust


def _chain_part(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, part: str, eps: float, before: np.ndarray
) -> np.ndarray:
    """An AutoAttack part on the points robust ``before``; the mask covers every point."""
    idx = np.flatnonzero(before)
    mask = np.zeros(len(before), dtype=bool)
    if len(idx):
        pick = torch.as_tensor(idx, dtype=torch.long)
        mask[idx] = _attack(model, x[pick], y[pick], part, eps)
    return mask


def check(path: Path = REGRESS_BASELINE, data_root: str | None = None) -> list[Delta]:
    """Attack every baseline checkpoint again; one Delta per (checkpoint, attack)."""
    spec = json.loads(path.read_text())
    deltas = []
    for entry in spec["checkpoints"]:
        now = _masks(entry, path.parent, data_root)
        for name, mask in now.items():
            if name not in entry.get("masks", {}):
                raise LookupError(f"{path} has no {name} mask for {entry['file']}: --update")
            old = unpack_mask(bytes.fromhex(entry["masks"][name]), entry["n"])
            flipped = np.flatnonzero(old != mask).tolist()
            deltas.append(
                Delta(entry["file"], name, entry["n"], int(old.sum()), int(mask.sum()), flipped)
            )
    return deltas


def update(path: Path = REGRESS_BASELINE, data_root: str | None = None) -> list[Delta]:
    """Recompute and store every mask; returns what changed (as ``check`` would have)."""
    spec = json.loads(path.read_text())
    complete = all(set(e["attacks"]) <= set(e.get("masks", {})) for e in spec["checkpoints"])
    deltas = check(path, data_root) if complete else []
    for entry in spec["checkpoints"]:
        now = _masks(entry, path.parent, data_root)
        entry["masks"] = {k: pack_mask(v).hex() for k, v in now.items()}
    path.write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n")
    return deltas
