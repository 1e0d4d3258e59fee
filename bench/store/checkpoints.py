"""Checkpoint files that cannot execute code when loaded, written atomically.

Model weights go to ``.safetensors`` (plain tensors); the resume state (weights,
optimizer, scheduler, counters) is a ``torch.save`` dict read back with
``weights_only=True``. Every write goes to a temporary file first and is then renamed,
so a run killed mid-write leaves the previous file intact.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safetensors import SafetensorError, safe_open

from bench.core.lazy import LazyModule, torch

if TYPE_CHECKING:
    from torch import nn

st_torch = LazyModule("safetensors.torch")  # it imports PyTorch: loaded with the first file


def _atomic(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(path.name + ".tmp")


def plain_state(model: nn.Module) -> dict[str, torch.Tensor]:
    # Clone so that tied/shared tensors become separate buffers safetensors accepts.
    return {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}


META_KEY = "bench"


def save_weights(model: nn.Module, path: Path, metadata: dict[str, str] | None = None) -> str:
    """Write the weights; the same tensors and metadata always give the same bytes.

    safetensors orders metadata keys arbitrarily, so ours go in as one sorted JSON string.
    """
    tmp = _atomic(path)
    meta = {META_KEY: json.dumps(metadata or {}, sort_keys=True)}
    st_torch.save_file(plain_state(model), str(tmp), metadata=meta)
    os.replace(tmp, path)
    return sha256(path)


def read_metadata(path: Path) -> dict[str, str]:
    """The metadata ``save_weights`` wrote (files of older versions: their flat keys)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (OSError, SafetensorError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file ({e})") from None
    return json.loads(meta[META_KEY]) if META_KEY in meta else dict(meta)


class CheckpointError(RuntimeError):
    """A checkpoint or resume-state file is missing, changed or unreadable."""


def load_weights(model: nn.Module, path: Path) -> nn.Module:
    try:
        state = st_torch.load_file(str(path))
    except (OSError, SafetensorError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file ({e})") from None
    model.load_state_dict(state)
    return model


def verified(path: Path, expected_sha256: str, what: str = "checkpoint") -> Path:
    """``path`` if it exists and still has the recorded hash, else a CheckpointError."""
    if not path.is_file():
        raise CheckpointError(f"{what} file {path} is missing")
    if sha256(path) != expected_sha256:
        raise CheckpointError(f"{what} {path} changed since it was recorded")
    return path


def save_state(state: dict[str, Any], path: Path) -> None:
    tmp = _atomic(path)
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_state(path: Path) -> dict[str, Any]:
    """The resume state; a truncated or corrupt file (a kill mid-copy, a full disk) is moved
    aside to ``state.pt.corrupt`` so the run restarts cleanly instead of failing for ever."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        aside = path.with_name(path.name + ".corrupt")
        os.replace(path, aside)
        warnings.warn(
            f"resume state {path} was unreadable ({' '.join(str(e).split())[:120]}); moved it "
            f"to {aside.name} and starting the run from its beginning",
            stacklevel=2,
        )
        return {}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
