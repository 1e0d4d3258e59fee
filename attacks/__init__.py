"""Attacks and named evaluation protocols.

``attacks.build(name, eps=..., **overrides)`` returns a callable ``(model, x, y) -> x_adv``.
``name`` is an attack class (``fgsm``, ``pgd``, ``cw``) or a preset (``pgd20``, ``cw20``, ...)
that fixes every setting; presets give step sizes as fractions of eps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from attacks.base import Attack, AttackFn, BoundViolation, check_bounds
from attacks.pgd import FGSM, PGD, CWInf
from bench.registry import Registry

ATTACKS: Registry[type[Attack]] = Registry("attack")
for _cls in (FGSM, PGD, CWInf):
    ATTACKS.add(_cls.name, _cls)


@dataclass(frozen=True)
class AttackPreset:
    """A named evaluation protocol: the attack class, its settings, and where they come from."""

    attack: str
    params: dict[str, Any] = field(default_factory=dict)
    step_fraction: float | None = None  # step size as a fraction of eps
    label: str = ""
    source: str = ""

    def resolve(self, eps: float, **overrides: Any) -> dict[str, Any]:
        params: dict[str, Any] = {"eps": eps, **self.params}
        if self.step_fraction is not None:
            params["step_size"] = eps * self.step_fraction
        params.update(overrides)
        return params


PRESETS: Registry[AttackPreset] = Registry("attack preset")
PRESETS.add("clean", AttackPreset("none", label="Natural", source="no attack"))
PRESETS.add("fgsm", AttackPreset("fgsm", label="FGSM", source="MART paper §4.2"))
for _k in (10, 20, 100):
    PRESETS.add(
        f"pgd{_k}",
        AttackPreset(
            "pgd",
            {"steps": _k, "start": "uniform", "restarts": 1, "loss": "ce"},
            step_fraction=0.1,
            label=f"PGD-{_k}",
            source="MART paper §4: random start, step eps/10",
        ),
    )
PRESETS.add(
    "cw20",
    AttackPreset(
        "cw",
        {"steps": 20, "start": "uniform", "restarts": 1},
        step_fraction=0.1,
        label="CW-inf",
        source="MART paper §4.2: CW-inf optimised by PGD (steps as PGD-20; unverified)",
    ),
)


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
    "FGSM",
    "PGD",
    "PRESETS",
    "Attack",
    "AttackFn",
    "AttackPreset",
    "BoundViolation",
    "CWInf",
    "build",
    "check_bounds",
]
