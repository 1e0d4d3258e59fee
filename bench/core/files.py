"""Reading files users hand to bench: tensors only, refused in one line otherwise.

Every path that reads a user's ``.pt`` file (unlabelled images, zoo or external
checkpoints, pseudo-labels) goes through :func:`load_tensors`, so a pickle, a folder or a
corrupt file gets the same one-line ``ValueError`` whichever command read it, and no code
in it runs (``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from bench.core.lazy import torch


def check_file(path: Path, what: str) -> Path:
    """``path`` is an existing file (not a folder), else a one-line ``ValueError``."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{what} {path} is a folder, not a file")
    if not path.is_file():
        raise ValueError(f"{what} {path} does not exist")
    return path


def load_tensors(path: Path, what: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU: tensors, dicts and lists of them.
    Anything else (a pickle of objects, a corrupt or truncated file) is refused in one line."""
    check_file(path, what)
    try:
        with warnings.catch_warnings():  # its pickle-protocol notes: the refusal says enough
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError, RuntimeError, EOFError ...: one line each
        why = " ".join(str(e).split(".")[0].split())[:120] or type(e).__name__
        raise ValueError(
            f"{what} {path} is not a plain tensor file ({why}); nothing in it was run"
        ) from None


def load_array(path: Path, what: str, *, mmap: bool = False) -> Any:
    """``numpy.load`` of a ``.npy`` array without pickles, refused in one line otherwise."""
    import numpy as np

    check_file(path, what)
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        why = " ".join(str(e).split())[:120]
        raise ValueError(
            f"{what} {path} is not a plain array file ({why}); nothing in it was run"
        ) from None
