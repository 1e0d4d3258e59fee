"""bench: train and evaluate adversarially robust classifiers (see README.md)."""

from __future__ import annotations

from typing import Any


def load_model(run_name_or_path: Any, checkpoint: str = "best", db: Any = None) -> Any:
    """A stored checkpoint as a plain ``nn.Module``; see :func:`bench.store.loading.load_model`.

    Imported lazily so that ``import bench`` stays cheap (no torch until it is needed).
    """
    from bench.store.loading import load_model as _load

    return _load(run_name_or_path, checkpoint, db)
