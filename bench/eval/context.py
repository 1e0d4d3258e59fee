"""One checkpoint under evaluation: what a protocol needs, and the one place rows are written.

``bench.jobs.eval_job`` resolves the run, the checkpoint, the test points and the
``EvalSpec``; a protocol (bench/eval/protocols.py) attacks and calls ``store``, so every
evaluation row of every protocol has the same key scheme, per-point mask and provenance.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session
from torch import Tensor, nn

from bench.spec.evaluation import EvalSpec
from bench.spec.run import RunSpec
from bench.store.db import Checkpoint, Evaluation, Run, add_once, make_evaluation

# Trains (or finds) an auxiliary run, e.g. a transfer surrogate; given by bench.jobs so
# that evaluation never imports the job layer above it.
EnsureRun = Callable[[RunSpec], Run]


@dataclass
class EvalContext:
    session: Session
    run: Run
    ckpt: Checkpoint
    spec: RunSpec | None  # None for an external (model-zoo) run
    evspec: EvalSpec
    x: Tensor  # the test points (uint8 or float), all n of them
    y: Tensor
    load_model: Callable[[], nn.Module]  # the checkpoint's model on ``device``, loaded once
    device: str = "cpu"
    data_root: str | None = None
    data_label: str = ""
    dataset: str = ""
    progress: bool = False
    provenance: dict[str, Any] | None = None
    ensure_run: EnsureRun | None = None

    @property
    def n(self) -> int:
        return len(self.y)

    @property
    def eps(self) -> float:
        return self.evspec.eps

    def desc(self, name: str) -> str:
        return f"{self.run.name}/{self.ckpt.tag}/{name}"

    def key(self, name: str, params: dict[str, Any]) -> str:
        spec = self.evspec if name == self.evspec.attack else _named(self.evspec, name)
        return spec.key(self.run.key, self.ckpt.sha256, self.n, params)

    def find(self, name: str, params: dict[str, Any]) -> Evaluation | None:
        """The stored evaluation of exactly these settings on these weights, if any."""
        keys = [self.key(name, params), legacy_key(self, name, params)]
        return self.session.scalars(
            select(Evaluation).where(Evaluation.key.in_(keys)).order_by(Evaluation.id)
        ).first()

    def store(
        self,
        name: str,
        params: dict[str, Any],
        robust: np.ndarray,
        seconds: float,
        extra: dict[str, Any] | None = None,
    ) -> Evaluation:
        """Add and commit an evaluation row; ``extra`` is recorded but not part of the key.

        Stored once: if another worker stored the same key first, theirs is returned."""
        robust = np.asarray(robust, dtype=bool)
        if robust.shape != (self.n,):
            raise ValueError(f"a mask must cover all {self.n} points, got {robust.shape}")
        ev = make_evaluation(
            key=self.key(name, params),
            checkpoint=self.ckpt,
            attack=name,
            attack_params={**params, **(extra or {})},
            dataset=self.dataset,
            data_label=self.data_label,
            robust=robust,
            seconds=seconds,
            seed=self.evspec.seed,
            provenance=self.provenance or {},
        )
        return add_once(self.session, ev, lambda: self.find(name, params))


def _named(spec: EvalSpec, name: str) -> EvalSpec:
    """The spec of a part evaluated on the way (an AutoAttack part before ``autoattack``)."""
    return replace(spec, attack=name)


def legacy_key(ctx: EvalContext, name: str, params: dict[str, Any]) -> str:
    """The key evaluations had before EvalSpec (tag in it), so older databases are reused."""
    blob = json.dumps(
        [ctx.run.key, ctx.ckpt.tag, ctx.ckpt.sha256, name, params, ctx.n, ctx.evspec.seed],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()
