"""Defense registry. Adding a defense is one file with a ``@dataclass`` subclass of
``Defense`` and a line here; see docs/adding-a-defense.md."""

from __future__ import annotations

from typing import Any

from bench.registry import Registry
from defenses.alp import ALP
from defenses.base import Defense, PGDDefense, StepContext
from defenses.clp import CLP
from defenses.dynamic import Dynamic
from defenses.mart import Mart
from defenses.mart_ablations import VARIANTS as MART_ABLATIONS
from defenses.mma import MMA
from defenses.natural import Natural
from defenses.semi import SEMI_DEFENSES
from defenses.standard import Standard
from defenses.trades import Trades

DEFENSES: Registry[type[Defense]] = Registry("defense")
for _cls in (Natural, Standard, Trades, Mart, MMA, Dynamic, ALP, CLP, *MART_ABLATIONS):
    DEFENSES.add(_cls.name, _cls)
for _cls in SEMI_DEFENSES:  # mart-semi, rst, uat++: trained with an unlabelled source
    DEFENSES.add(_cls.name, _cls)


def build(name: str, **params: Any) -> Defense:
    cls = DEFENSES.get(name)
    return cls(**params)


__all__ = ["DEFENSES", "Defense", "PGDDefense", "StepContext", "build"]
