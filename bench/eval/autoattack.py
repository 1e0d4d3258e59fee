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
from bench.eval.context import EvalContext
from bench.eval.loop import robust_points
from bench.store.db import Evaluation


def chain(ctx: EvalContext) -> tuple[str, ...]:
    """The parts, in AutoAttack's order: all four, or those named by the ``parts`` option."""
    wanted = ctx.evspec.opts().get("parts")
    if wanted is None:
        return STANDARD_ORDER
    names = [p.strip() for p in str(wanted).replace(",", "+").split("+") if p.strip()]
    bad = sorted(set(names) - set(STANDARD_ORDER))
    if bad or not names:
        raise ValueError(
            f"autoattack parts {wanted!r}: choose from {', '.join(STANDARD_ORDER)} (joined by +)"
        )
    return tuple(p for p in STANDARD_ORDER if p in names)


def _settings(ctx: EvalContext) -> dict[str, Any]:
    """The attack's own options: every option but the protocol's ``parts``."""
    return {k: v for k, v in ctx.evspec.opts().items() if k != "parts"}


def part_params(ctx: EvalContext, name: str, parts: tuple[str, ...]) -> dict[str, Any]:
    """What identifies a stored evaluation of ``name`` (a part or ``autoattack``)."""
    params = attacks.build(name, eps=ctx.eps, **_settings(ctx)).params()
    if name in STANDARD_ORDER:
        params["after"] = list(parts[: parts.index(name)])
    elif parts != STANDARD_ORDER:
        params["parts"] = list(parts)
    params["batch_size"] = ctx.evspec.batch_size
    return params


def clean_mask(ctx: EvalContext, model: nn.Module) -> tuple[np.ndarray, float]:
    res = robust_points(
        model, ctx.x, ctx.y, None, batch_size=ctx.evspec.batch_size, device=ctx.device
    )
    return res.robust, res.seconds


def evaluate_autoattack(ctx: EvalContext) -> Evaluation:
    """Evaluate a part (and the missing parts before it) or the whole ``autoattack``."""
    name = ctx.evspec.attack
    parts = chain(ctx)
    if name == "autoattack":
        done = ctx.find(name, part_params(ctx, name, parts))
        if done is not None:
            return done
        todo = parts
    else:
        if name not in parts:
            parts = (*parts, name)
        todo = parts[: parts.index(name) + 1]
    clean: np.ndarray | None = None
    clean_seconds = 0.0
    rows: list[Evaluation] = []
    for part in todo:
        params = part_params(ctx, part, parts)
        row = ctx.find(part, params)
        if row is None:
            if rows:
                before = rows[-1].robust()
            else:
                clean, clean_seconds = clean_mask(ctx, ctx.load_model())
                before = clean
            row = _attack_part(ctx, part, params, before)
        rows.append(row)
    if name != "autoattack":
        return rows[-1]
    if clean is None:
        clean, clean_seconds = clean_mask(ctx, ctx.load_model())
    worst = clean.copy()
    for row in rows:
        worst &= row.robust()
    extra = {
        "clean_correct": int(clean.sum()),
        "part_correct": {row.attack: row.correct for row in rows},
        "part_evaluation_ids": {row.attack: row.id for row in rows},
    }
    seconds = clean_seconds + sum(row.seconds for row in rows)
    return ctx.store(name, part_params(ctx, name, parts), worst, seconds, extra)


def _attack_part(
    ctx: EvalContext, part: str, params: dict[str, Any], before: np.ndarray
) -> Evaluation:
    """Attack the points still robust ``before``; the stored mask covers all n points."""
    idx = torch.as_tensor(np.flatnonzero(before), dtype=torch.long)
    atk = attacks.build(part, eps=ctx.eps, **_settings(ctx))
    res = robust_points(
        ctx.load_model(),  # loaded once, the first time a part has to run
        ctx.x[idx],
        ctx.y[idx],
        atk,
        batch_size=ctx.evspec.batch_size,
        device=ctx.device,
        seed=ctx.evspec.seed,
        desc=ctx.desc(part),
        progress=ctx.progress,
    )
    mask = np.zeros(ctx.n, dtype=bool)
    mask[idx.numpy()] = res.robust
    return ctx.store(part, params, mask, res.seconds, {"n_attacked": len(idx)})
