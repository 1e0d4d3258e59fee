"""AutoAttack (Croce & Hein 2020), standard version, through ``pyautoattack`` 0.2.0.

``AutoAttackPart`` runs one of the four attacks of the standard ensemble (APGD-CE, APGD-T,
FAB-T, Square) with the settings ``AutoAttack(version="standard")`` gives it, so that each
can be stored as its own evaluation and an interrupted AutoAttack evaluation resumes
attack by attack (``bench/eval/autoattack.py`` chains them over the still-robust points).
``AutoAttackStandard`` runs the whole ensemble in one call, for use outside the database.

Chores done here once, because pyautoattack does not:
- it reseeds the global torch RNG (``torch.random.manual_seed(seed)`` in every ``perturb``):
  ``preserve_rng`` saves and restores the torch (CPU and CUDA), numpy and ``random`` states,
  so running AutoAttack does not change what the rest of the process draws;
- FAB calls ``.backward()`` and would leave gradients on the model: parameters are frozen
  (``requires_grad_(False)``) for the attack and restored after;
- its resume state file is not used (``state_path=None``); resuming is done by the DB.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import random
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from attacks.base import L2, LINF, Attack, AttackPreset, add_preset, register
from bench.core.constants import Protocol
from bench.core.lazy import torch

if TYPE_CHECKING:
    from torch import Tensor, nn

STANDARD_ORDER = ("apgd-ce", "apgd-t", "fab-t", "square")

# The standard version's settings (pyautoattack/autoattack.py, ``_set_version("standard")``
# for Linf): APGD 100 iterations, 1 restart, rho 0.75; APGD-T 9 target classes, 1 restart;
# FAB-T 9 target classes, 1 restart, 100 iterations; Square 5000 queries, p_init 0.8.
STANDARD = {"n_iter": 100, "n_target_classes": 9, "n_queries": 5000}


@contextlib.contextmanager
def preserve_rng() -> Iterator[None]:
    """Restore torch (CPU, every initialised CUDA device), numpy and ``random`` RNG states."""
    torch_state = torch.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    np_state = np.random.get_state()
    py_state = random.getstate()
    try:
        yield
    finally:
        torch.set_rng_state(torch_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)
        np.random.set_state(np_state)
        random.setstate(py_state)


@contextlib.contextmanager
def frozen(model: nn.Module) -> Iterator[None]:
    """Parameters need no gradient during an attack; FAB's ``.backward()`` would fill them."""
    flags = [p.requires_grad for p in model.parameters()]
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(flag)


LIBRARY_NORM = {LINF: "Linf", L2: "L2"}  # pyautoattack's names


def standard_autoattack(
    model: nn.Module,
    eps: float,
    seed: int,
    device: torch.device | str,
    norm: str = LINF,
    **settings: int,
) -> Any:
    """``AutoAttack(version="standard")`` in ``norm``, with ``settings`` (see ``STANDARD``)
    overriding the iteration/target/query counts; values equal to the standard ones leave
    it untouched."""
    import pyautoattack  # lazy: it is only needed here

    logging.getLogger("auto-attack").setLevel(logging.WARNING)
    lib_norm = LIBRARY_NORM[norm]
    aa = pyautoattack.AutoAttack(
        model, norm=lib_norm, eps=eps, version="standard", seed=seed, device=device
    )
    s = {**STANDARD, **settings}
    if s["n_iter"] != STANDARD["n_iter"]:
        from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted

        common = {
            "norm": lib_norm,
            "eps": eps,
            "seed": seed,
            "device": device,
            "eot_iter": 1,
            "rho": 0.75,
            "n_restarts": 1,
            "logger": aa.logger,
        }
        aa.apgd = APGDAttack(model, n_iter=s["n_iter"], **common)
        aa.apgd_targeted = APGDAttack_targeted(model, n_iter=s["n_iter"], **common)
        aa.fab.n_iter = s["n_iter"]
    aa.apgd_targeted.n_target_classes = s["n_target_classes"]
    aa.fab.n_target_classes = s["n_target_classes"]
    aa.square.n_queries = s["n_queries"]
    return aa


def run_autoattack(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    parts: tuple[str, ...],
    seed: int,
    norm: str = LINF,
    **settings: int,
) -> Tensor:
    """Run ``parts`` of standard AutoAttack in order, each on the points still robust."""
    with preserve_rng(), frozen(model), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its "dynamic defense" heuristics; see docs
        aa = standard_autoattack(model, eps, seed, x.device, norm, **settings)
        aa.attacks_to_run = list(parts)
        x_adv, _ = aa.run_standard_evaluation(x, y, batch_size=max(1, len(x)))
    return x_adv


@register
@dataclasses.dataclass
class AutoAttackPart(Attack):
    """One attack of the standard AutoAttack ensemble (``part``), standard settings by default.

    On its own it attacks every point it is given; chaining over the points still robust
    after the earlier parts is the caller's job (``bench/eval/autoattack.py``).
    """

    part: str = "apgd-ce"
    n_iter: int = STANDARD["n_iter"]
    n_target_classes: int = STANDARD["n_target_classes"]
    n_queries: int = STANDARD["n_queries"]
    seed: int = 0
    version: str = "standard"
    name: ClassVar[str] = "autoattack-part"

    def __post_init__(self) -> None:
        if self.part not in STANDARD_ORDER:
            raise ValueError(f"unknown AutoAttack part {self.part!r}; valid: {STANDARD_ORDER}")
        if self.version != "standard":
            raise ValueError("only the standard AutoAttack version is wired in")

    def settings(self) -> dict[str, int]:
        return {
            "n_iter": self.n_iter,
            "n_target_classes": self.n_target_classes,
            "n_queries": self.n_queries,
        }

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        parts = (self.part,)
        return run_autoattack(model, x, y, self.eps, parts, self.seed, self.norm, **self.settings())


@register
@dataclasses.dataclass
class AutoAttackStandard(AutoAttackPart):
    """The whole standard ensemble in one call: APGD-CE, APGD-T, FAB-T, Square."""

    part: str = "apgd-ce"  # unused; kept so the settings are shared with the parts
    name: ClassVar[str] = "autoattack"

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        parts = STANDARD_ORDER
        return run_autoattack(model, x, y, self.eps, parts, self.seed, self.norm, **self.settings())

    def params(self) -> dict[str, Any]:
        out = super().params()
        out.pop("part")
        out["parts"] = list(STANDARD_ORDER)
        return out


for _part, _label in zip(STANDARD_ORDER, ("APGD-CE", "APGD-T", "FAB-T", "Square"), strict=True):
    add_preset(
        _part,
        AttackPreset(
            "autoattack-part",
            {"part": _part},
            label=_label,
            source="AutoAttack standard (pyautoattack 0.2.0 settings); on the points still "
            "robust after the earlier parts when evaluated through the database",
            kind="score-based" if _part == "square" else "white-box",
            protocol=Protocol.AUTOATTACK,
        ),
    )
add_preset(
    "autoattack",
    AttackPreset(
        "autoattack",
        label="AutoAttack",
        source="AutoAttack standard (Croce & Hein 2020; RobustBench): worst case over "
        "APGD-CE, APGD-T (9 targets), FAB-T (9 targets), Square (5000 queries)",
        kind="ensemble",
        protocol=Protocol.AUTOATTACK,
    ),
)
