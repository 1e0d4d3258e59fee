"""Evaluation specs: what one evaluation is, frozen and hashable, as ``RunSpec`` is for a run.

An ``EvalSpec`` names the attack preset, its options, the test points, the checkpoint, the
batch size and the seed. Its identity (``identity()``, every field but the checkpoint tag)
plus the weights it is run on give the evaluation's key: the same attack on the same
weights is computed once, whether the weights are reached as "best" or "last".
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, replace
from typing import Any

import attacks
from bench.core.constants import ALL_CHECKPOINTS, EVAL_BATCH, MAX_L2_EPS, Protocol

# Options are the attack class's own settings (e.g. ``pgd20.steps=50``, ``autoattack.n_iter=10``)
# plus what a protocol adds: which AutoAttack parts to chain, and the transfer surrogate.
PROTOCOL_OPTIONS: dict[Protocol, tuple[str, ...]] = {
    Protocol.AUTOATTACK: ("parts",),
    Protocol.TRANSFER: ("surrogate_model", "surrogate_epochs", "surrogate_checkpoint"),
}
FIXED = ("eps", "part", "base")  # set by the preset itself, never an option


@dataclass(frozen=True)
class EvalSpec:
    attack: str  # preset name (bench ls attacks)
    eps: float
    options: tuple[tuple[str, Any], ...] = ()  # sorted (key, value) pairs
    test_subset: int | None = None  # the first N test points; None: the run's own
    checkpoint: str = "best"
    batch_size: int = EVAL_BATCH
    seed: int = 0
    # Points wrong on clean inputs count as not robust without being attacked (AutoAttack's
    # convention). Off, such a point counts as robust if the attack leaves it correct.
    skip_wrong: bool = True

    def __post_init__(self) -> None:
        preset = attacks.PRESETS.get(self.attack)  # unknown names fail with the choices
        linf = attacks.norm_of(self.attack) == attacks.LINF and preset.protocol != Protocol.CLEAN
        top = 1.0 if linf else MAX_L2_EPS
        if not math.isfinite(self.eps) or not 0.0 <= self.eps <= top:
            norm = attacks.NORM_LABELS[attacks.norm_of(self.attack)]
            raise ValueError(f"{norm} eps must be a finite number in [0, {top:g}], got {self.eps}")
        if self.checkpoint not in ALL_CHECKPOINTS:
            raise ValueError(
                f"unknown checkpoint {self.checkpoint!r}; valid: {', '.join(ALL_CHECKPOINTS)}"
            )
        if self.batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {self.batch_size}")
        if self.test_subset is not None and self.test_subset < 1:
            raise ValueError(f"test subset must be >= 1, got {self.test_subset}")
        check_options(self.attack, preset, dict(self.options))

    def opts(self) -> dict[str, Any]:
        return dict(self.options)

    def at(self, checkpoint: str) -> EvalSpec:
        return replace(self, checkpoint=checkpoint)

    def identity(self) -> dict[str, Any]:
        """What makes two evaluations of the same weights the same (the tag is not in it)."""
        return {
            "attack": self.attack,
            "eps": self.eps,
            "options": dict(self.options),
            "batch_size": self.batch_size,
            "seed": self.seed,
            "skip_wrong": self.skip_wrong,
        }

    def key(self, run_key: str, weights_sha256: str, n: int, params: dict[str, Any]) -> str:
        """The evaluation's key: this spec on these weights and ``n`` points, with the
        attack's resolved ``params`` (which name e.g. a transfer surrogate's hash)."""
        blob = json.dumps(
            [run_key, weights_sha256, self.identity(), n, params], sort_keys=True, default=str
        )
        return hashlib.sha256(blob.encode()).hexdigest()


def check_options(name: str, preset: attacks.AttackPreset, options: dict[str, Any]) -> None:
    """An option the preset cannot use is an error naming the ones it takes."""
    if not options:
        return
    valid = set(PROTOCOL_OPTIONS.get(preset.protocol, ()))
    if preset.protocol in (Protocol.SINGLE, Protocol.AUTOATTACK):
        cls = attacks.ATTACKS.get(preset.attack)
        valid |= set(cls.__dataclass_fields__) - set(FIXED)
    bad = sorted(set(options) - valid)
    if bad:
        takes = ", ".join(sorted(valid)) or "no options"
        raise ValueError(f"attack {name!r} has no option {', '.join(bad)}; it takes: {takes}")
    if preset.protocol in (Protocol.SINGLE, Protocol.AUTOATTACK):
        fields = attacks.ATTACKS.get(preset.attack).__dataclass_fields__
        for key, value in options.items():
            if key in fields:
                _check_type(f"{name}.{key}", str(fields[key].type), value)


_KINDS = {"int": "a whole number", "float": "a number", "bool": "true or false", "str": "text"}


def _check_type(where: str, declared: str, value: Any) -> None:
    """``value`` fits the option's declared type (an int where a float is declared is fine)."""
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, int | float) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "str": isinstance(value, str),
    }.get(declared, True)
    if not ok:
        raise ValueError(f"--attack-param {where}={value!r}: expected {_KINDS[declared]}")


def parse_attack_params(items: list[str], names: list[str]) -> dict[str, dict[str, Any]]:
    """``["autoattack.n_iter=10", "pgd20.steps=50"]`` -> ``{"autoattack": {"n_iter": 10}, ...}``.

    Each ``NAME`` must be one of the attacks being evaluated (``names``).
    """
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        head, sep, value = item.partition("=")
        name, dot, key = head.strip().rpartition(".")
        if not sep or not dot or not name or not key:
            raise ValueError(f"--attack-param expects ATTACK.KEY=VALUE, got {item!r}")
        if name not in names:
            raise ValueError(f"--attack-param {item!r}: {name!r} is not among the attacks run")
        out.setdefault(name, {})[key] = parse_value(value)
    for name, opts in out.items():  # checked now, before any training or attack
        check_options(name, attacks.PRESETS.get(name), opts)
    return out


def parse_value(text: str) -> Any:
    """A command-line value: an int, a finite float, true/false, or else the text itself."""
    v = text.strip()
    if v.lower() in ("true", "false"):
        return v.lower() == "true"
    try:
        return int(v)
    except ValueError:
        pass
    try:
        f = float(v)
    except ValueError:
        return v
    if not math.isfinite(f):
        raise ValueError(f"{text!r} is not a finite number")
    return f
