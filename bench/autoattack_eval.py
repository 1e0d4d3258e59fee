"""AutoAttack (standard) through the database, one row per attack, resumable.

AutoAttack runs APGD-CE, APGD-T, FAB-T and Square in that order, each only on the points
still robust after the ones before (and correctly classified to begin with). Here each of
the four is its own ``Evaluation`` row, so the database holds per-attack counts and an
interrupted evaluation resumes where it stopped:

- a part's row stores the *cumulative* mask: robust after that part and every earlier one
  (points it did not attack were already broken, so they are False); its count is
  AutoAttack's "robust accuracy after <attack>". Its parameters name the parts it ran
  after (``after``), so its key changes if the earlier parts' settings do;
- evaluating a part evaluates the missing earlier parts first;
- ``autoattack`` evaluates whichever parts are missing and stores the worst case, the AND
  of the clean mask and the four part masks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

import attacks
from attacks.autoattack import STANDARD_ORDER
from bench.db import Evaluation
from bench.evalctx import EvalContext
from bench.evaluate import robust_points

OPTION_KEYS = ("n_iter", "n_target_classes", "n_queries", "seed")


class _LazyModel:
    """Loads the checkpoint only if some part actually has to run."""

    def __init__(self, ctx: EvalContext) -> None:
        self.ctx, self.model = ctx, None

    def __call__(self) -> nn.Module:
        if self.model is None:
            self.model = self.ctx.load_model()
        return self.model


def part_params(ctx: EvalContext, name: str, **settings: Any) -> dict[str, Any]:
    """What identifies a stored evaluation of ``name`` (a part or ``autoattack``)."""
    params = attacks.build(name, eps=ctx.eps, **settings).params()
    if name in STANDARD_ORDER:
        params["after"] = list(STANDARD_ORDER[: STANDARD_ORDER.index(name)])
    params["batch_size"] = ctx.batch_size
    return params


def clean_mask(ctx: EvalContext, model: nn.Module) -> tuple[np.ndarray, float]:
    res = robust_points(model, ctx.x, ctx.y, None, batch_size=ctx.batch_size, device=ctx.device)
    return res.robust, res.seconds


def evaluate_autoattack(ctx: EvalContext, name: str) -> Evaluation:
    """Evaluate a part (and the missing parts before it) or the whole ``autoattack``."""
    settings = {k: ctx.options[k] for k in OPTION_KEYS if k in ctx.options}
    last = len(STANDARD_ORDER) if name == "autoattack" else STANDARD_ORDER.index(name) + 1
    if name == "autoattack":
        done = ctx.find(name, part_params(ctx, name, **settings))
        if done is not None:
            return done
    model = _LazyModel(ctx)
    clean: np.ndarray | None = None
    clean_seconds = 0.0
    rows: list[Evaluation] = []
    for part in STANDARD_ORDER[:last]:
        params = part_params(ctx, part, **settings)
        row = ctx.find(part, params)
        if row is None:
            if rows:
                before = rows[-1].robust()
            else:
                clean, clean_seconds = clean_mask(ctx, model())
                before = clean
            idx = torch.as_tensor(np.flatnonzero(before), dtype=torch.long)
            atk = attacks.build(part, eps=ctx.eps, **settings)
            res = robust_points(
                model(),
                ctx.x[idx],
                ctx.y[idx],
                atk,
                batch_size=ctx.batch_size,
                device=ctx.device,
                seed=ctx.seed,
                desc=f"{ctx.run.defense}/{ctx.ckpt.tag}/{part}",
                progress=ctx.progress,
            )
            mask = np.zeros(ctx.n, dtype=bool)
            mask[idx.numpy()] = res.robust
            row = ctx.store(part, params, mask, res.seconds, {"n_attacked": len(idx)})
        rows.append(row)
    if name != "autoattack":
        return rows[-1]
    if clean is None:
        clean, clean_seconds = clean_mask(ctx, model())
    worst = clean.copy()
    for row in rows:
        worst &= row.robust()
    extra = {
        "clean_correct": int(clean.sum()),
        "part_correct": {row.attack: row.correct for row in rows},
        "part_evaluation_ids": {row.attack: row.id for row in rows},
    }
    seconds = clean_seconds + sum(row.seconds for row in rows)
    return ctx.store(name, part_params(ctx, name, **settings), worst, seconds, extra)
