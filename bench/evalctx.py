"""Evaluations that are more than "one attack over the test set": the hook ``eval_job`` calls.

Two protocols need it. AutoAttack chains its four attacks over the points still robust and
resumes attack by attack (``bench/autoattack_eval.py``); a transfer attack needs a surrogate
run, trained on demand (``bench/transfer_eval.py``). Both get an ``EvalContext`` (what
``eval_job`` already resolved: run, checkpoint, test points, eps, ...) and store rows with
``store``, so their rows look exactly like every other evaluation (same key scheme, packed
per-point mask, provenance) and ``eval_job`` skips them when asked again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session
from torch import Tensor, nn

import attacks
from bench import provenance
from bench.db import Checkpoint, Evaluation, Run, make_evaluation
from bench.specs import RunSpec


@dataclass
class EvalContext:
    """One checkpoint under evaluation, as ``eval_job`` resolved it."""

    session: Session
    run: Run
    ckpt: Checkpoint
    spec: RunSpec
    x: Tensor  # the test points (uint8 or float), all n of them
    y: Tensor
    eps: float
    load_model: Callable[[], nn.Module]  # the checkpoint's model, on ``device``
    batch_size: int = 256
    seed: int = 0
    device: str = "cpu"
    data_root: str | None = None
    data_label: str = ""
    progress: bool = False
    # Per-protocol options (AutoAttack: n_iter, n_target_classes, n_queries, seed;
    # transfer: surrogate_model, surrogate_overrides, surrogate_checkpoint, ...).
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.y)

    def key(self, name: str, params: dict[str, Any]) -> str:
        from bench.jobs import eval_key  # jobs imports this module

        return eval_key(self.run, self.ckpt, name, params, self.n, self.seed)

    def find(self, name: str, params: dict[str, Any]) -> Evaluation | None:
        """The stored evaluation for exactly these settings, if any."""
        key = self.key(name, params)
        return self.session.scalars(select(Evaluation).where(Evaluation.key == key)).first()

    def store(
        self,
        name: str,
        params: dict[str, Any],
        robust: np.ndarray,
        seconds: float,
        extra: dict[str, Any] | None = None,
    ) -> Evaluation:
        """Add and commit an evaluation row; ``extra`` is recorded but not part of the key."""
        robust = np.asarray(robust, dtype=bool)
        if robust.shape != (self.n,):
            raise ValueError(f"a mask must cover all {self.n} points, got {robust.shape}")
        ev = make_evaluation(
            key=self.key(name, params),
            checkpoint=self.ckpt,
            attack=name,
            attack_params={**params, **(extra or {})},
            dataset=self.spec.dataset,
            data_label=self.data_label,
            robust=robust,
            seconds=seconds,
            seed=self.seed,
            device=provenance.device_name(self.device),
        )
        self.session.add(ev)
        self.session.commit()
        return ev


Evaluator = Callable[[EvalContext, str], Evaluation]


def custom_evaluator(name: str) -> Evaluator | None:
    """The evaluator for preset ``name`` if it is not a plain attack loop, else None."""
    kind = attacks.PRESETS.get(name).attack
    if kind in ("autoattack-part", "autoattack"):
        from bench.autoattack_eval import evaluate_autoattack

        return evaluate_autoattack
    if kind == "transfer":
        from bench.transfer_eval import evaluate_transfer

        return evaluate_transfer
    return None
