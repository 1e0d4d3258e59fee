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
from typing import Any

from attacks.base import (
    ATTACKS,
    PRESETS,
    Attack,
    AttackFn,
    AttackPreset,
    BoundViolation,
    add_preset,
    check_bounds,
    register,
)

for _mod in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_mod.name}")


def build(name: str, **params: Any) -> Attack:
    """Build an attack by class or preset name; ``eps`` is required."""
    if "eps" not in params:
        raise TypeError("attacks.build needs eps=")
    if name in PRESETS:
        preset = PRESETS.get(name)
        if preset.attack == "none":
            raise ValueError("'clean' is not an attack; evaluate without one")
        params = preset.resolve(**params)
        return ATTACKS.get(preset.attack)(**params)
    if name not in ATTACKS:
        choices = sorted(set(ATTACKS.names()) | set(PRESETS.names()) - {"clean"})
        raise ValueError(f"unknown attack {name!r}; valid: {', '.join(choices)}")
    return ATTACKS.get(name)(**params)


__all__ = [
    "ATTACKS",
    "PRESETS",
    "Attack",
    "AttackFn",
    "AttackPreset",
    "BoundViolation",
    "add_preset",
    "build",
    "check_bounds",
    "register",
]
