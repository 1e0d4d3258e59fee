"""Attacks and named evaluation protocols, one file per attack family.

``attacks.build(name, eps=..., **overrides)`` returns a callable ``(model, x, y) -> x_adv``.
``name`` is an attack class (``fgsm``, ``pgd``, ``cw``) or a preset (``pgd20``, ``cw20``, ...)
that fixes every setting; presets give step sizes as fractions of eps. Each module of this
package registers its classes (``@register``) and presets (``add_preset``) itself, and is
imported here, so a new attack is one new file (docs/adding-an-attack.md).
"""

from __future__ import annotations

import importlib
import pkgutil

from attacks.base import (
    ATTACKS,
    L2,
    LINF,
    NORM_LABELS,
    PRESETS,
    Attack,
    AttackFn,
    AttackPreset,
    BoundViolation,
    add_preset,
    build,
    check_bounds,
    distances,
    is_transfer,
    norm_of,
    register,
)

for _mod in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_mod.name}")


__all__ = [
    "ATTACKS",
    "L2",
    "LINF",
    "NORM_LABELS",
    "PRESETS",
    "Attack",
    "AttackFn",
    "AttackPreset",
    "BoundViolation",
    "add_preset",
    "build",
    "check_bounds",
    "distances",
    "is_transfer",
    "norm_of",
    "register",
]
