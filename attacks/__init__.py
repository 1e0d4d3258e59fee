"""Attacks and named evaluation protocols.

``attacks.build(name, eps=..., **overrides)`` returns a callable ``(model, x, y) -> x_adv``.
``name`` is an attack class (``fgsm``, ``pgd``, ``cw``) or a preset (``pgd20``, ``cw20``, ...)
that fixes every setting; presets give step sizes as fractions of eps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from attacks.autoattack import STANDARD_ORDER, AutoAttackPart, AutoAttackStandard
from attacks.base import Attack, AttackFn, BoundViolation, check_bounds
from attacks.pgd import FGSM, PGD, CWInf
from attacks.spsa import SPSA
from attacks.transfer import TRANSFER_BASES, Transfer
from bench.registry import Registry

ATTACKS: Registry[type[Attack]] = Registry("attack")
for _cls in (FGSM, PGD, CWInf, SPSA, AutoAttackPart, AutoAttackStandard, Transfer):
    ATTACKS.add(_cls.name, _cls)


@dataclass(frozen=True)
class AttackPreset:
    """A named evaluation protocol: the attack class, its settings, and where they come from."""

    attack: str
    params: dict[str, Any] = field(default_factory=dict)
    step_fraction: float | None = None  # step size as a fraction of eps
    label: str = ""
    source: str = ""
    # white-box | score-based (queries outputs only) | ensemble | transfer (needs a surrogate)
    kind: str = "white-box"

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
PRESETS.add(
    "pgd20-r5",
    AttackPreset(
        "pgd",
        {"steps": 20, "start": "uniform", "restarts": 5, "loss": "ce"},
        step_fraction=0.1,
        label="PGD-20 x5",
        source="PGD-20 of MART §4 with 5 random restarts (a gradient-masking check)",
    ),
)
PRESETS.add(
    "spsa",
    AttackPreset(
        "spsa",
        {"steps": 100, "lr": 0.01, "delta": 0.01, "samples": 128, "sample_chunk": 32},
        label="SPSA",
        source="Uesato et al. 2018 via the MART paper §4.2 (Adam lr 0.01, 128 antithetic "
        "Rademacher samples, delta 0.01, margin loss); 100 iterations assumed: neither the "
        "paper nor the MART repo states it, 100 is the common cleverhans setting (unverified)",
        kind="score-based",
    ),
)
for _part, _label in zip(STANDARD_ORDER, ("APGD-CE", "APGD-T", "FAB-T", "Square"), strict=True):
    PRESETS.add(
        _part,
        AttackPreset(
            "autoattack-part",
            {"part": _part},
            label=_label,
            source="AutoAttack standard (pyautoattack 0.2.0 settings); on the points still "
            "robust after the earlier parts when evaluated through the database",
            kind="score-based" if _part == "square" else "white-box",
        ),
    )
PRESETS.add(
    "autoattack",
    AttackPreset(
        "autoattack",
        label="AutoAttack",
        source="AutoAttack standard (Croce & Hein 2020; RobustBench): worst case over "
        "APGD-CE, APGD-T (9 targets), FAB-T (9 targets), Square (5000 queries)",
        kind="ensemble",
    ),
)
for _base in TRANSFER_BASES:
    _wb = PRESETS.get(_base)
    PRESETS.add(
        f"transfer-{_base}",
        AttackPreset(
            "transfer",
            {"base": _base},
            label=f"{_wb.label} (transfer)",
            source="MART paper §4.2 / Table 3: crafted on a naturally trained surrogate "
            "(ResNet-50 for CIFAR-10, the defense's architecture for MNIST)",
            kind="transfer",
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
    "SPSA",
    "Attack",
    "AttackFn",
    "AttackPreset",
    "AutoAttackPart",
    "AutoAttackStandard",
    "BoundViolation",
    "CWInf",
    "Transfer",
    "build",
    "check_bounds",
]
