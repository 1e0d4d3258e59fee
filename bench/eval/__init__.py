"""Evaluation: the attack loop, the protocols (single attack, chained AutoAttack, transfer),
per-point masks and Wilson intervals, and the gradient-masking audit.

Importing the package registers every protocol.
"""

from __future__ import annotations

from bench.eval import autoattack, transfer
from bench.eval.protocols import PROTOCOLS, evaluate

__all__ = ["PROTOCOLS", "autoattack", "evaluate", "transfer"]
