"""Checkpoint files that cannot execute code when loaded, written atomically.

Model weights go to ``.safetensors`` (plain tensors); the resume state (weights,
optimizer, scheduler, counters) is a ``torch.save`` dict read back with
``weights_only=True``. Every write goes to a temporary file first and is then renamed,
so a run killed mid-write leaves the previous file intact.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn


def _atomic(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(path.name + ".tmp")


def plain_state(model: nn.Module) -> dict[str, torch.Tensor]:
    # Clone so that tied/shared tensors become separate buffers safetensors accepts.
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}


def save_weights(model: nn.Module, path: Path, metadata: dict[str, str] | None = None) -> str:
    tmp = _atomic(path)
    save_file(plain_state(model), str(tmp), metadata=metadata)
    os.replace(tmp, path)
    return sha256(path)


def load_weights(model: nn.Module, path: Path) -> nn.Module:
    model.load_state_dict(load_file(str(path)))
    return model


def save_state(state: dict[str, Any], path: Path) -> None:
    tmp = _atomic(path)
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_state(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
