"""Defenses: one file each, registered by the ``@register`` decorator of ``defenses.base``.

Every module of this package is imported here, so a new file is found with no edit
elsewhere (docs/adding-a-defense.md).
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from defenses.base import DEFENSES, Defense, PGDDefense, StepContext, register

for _mod in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_mod.name}")


def build(name: str, **params: Any) -> Defense:
    cls = DEFENSES.get(name)
    return cls(**params)


def shown(name: str, params: dict[str, Any]) -> str:
    """The parameters a table names a run of defense ``name`` by (its ``shown_params``, as
    its stored ``params`` have them, else as they were before they existed), e.g.
    "inner=bpda"; "" for most defenses."""
    if name not in DEFENSES:
        return ""
    cls = DEFENSES.get(name)
    values = {k: params.get(k, cls.before_params.get(k)) for k in cls.shown_params}
    return ", ".join(f"{k}={v}" for k, v in values.items() if v is not None)


__all__ = ["DEFENSES", "Defense", "PGDDefense", "StepContext", "build", "register", "shown"]
