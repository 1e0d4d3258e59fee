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


__all__ = ["DEFENSES", "Defense", "PGDDefense", "StepContext", "build", "register"]
