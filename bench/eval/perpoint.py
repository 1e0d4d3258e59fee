"""Per-point results from the database: worst cases over attacks, and confidence intervals.

Every evaluation stores which test points stayed robust, so the accuracy under "any of
these attacks" is an AND of stored masks: no attack is run again. Masks are combined only
when they describe the same points of the same checkpoint file (same sha256, same n: the
first n test points), otherwise the worst case would mix different models or data.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

import attacks
from attacks.autoattack import STANDARD_ORDER
from bench.spec.run import judged_eps
from bench.store.db import Checkpoint, Evaluation, Run, find_run

# AutoAttack may be stored as one evaluation or as its four parts (each on the points still
# robust after the earlier ones): the AND of the parts is the ensemble's worst case.
COMPOSITE = {"autoattack": STANDARD_ORDER}

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion, as fractions in [0, 1].

    Chosen over the normal (Wald) interval because robust accuracies sit near 0 or 1 on
    small subsets, where Wald collapses to zero width or leaves [0, 1].
    """
    if n <= 0:
        return (float("nan"), float("nan"))
    if not 0 <= correct <= n:
        raise ValueError(f"correct={correct} must lie in [0, n={n}]")
    p = correct / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (max(0.0, centre - half), min(1.0, centre + half))


def _run_row(session: Session, run: Run | str | int) -> Run:
    if isinstance(run, Run):
        return run
    row = session.get(Run, run) if isinstance(run, int) else find_run(session, run)
    if row is None:
        raise LookupError(f"no run {run!r} in the database (see `bench ls runs`)")
    return row


def current_evaluations(
    session: Session, run: Run | str | int, checkpoint: str
) -> tuple[Checkpoint | None, list[Evaluation]]:
    """The checkpoint row and its evaluations on the current file (newest first), at the
    budgets the run is judged at (``judged_eps``): an evaluation at another eps (``bench
    eval --eps``, a sweep) is a number of its own, never mixed into the audit's or a worst
    case's per-point comparisons."""
    row = _run_row(session, run)
    ckpt, evs = checkpoint_evaluations(session, row, checkpoint)
    return ckpt, [e for e in evs if at_judged_eps(row, e)]


def checkpoint_evaluations(
    session: Session, run: Run | str | int, checkpoint: str
) -> tuple[Checkpoint | None, list[Evaluation]]:
    """The checkpoint row and every evaluation of its current file, at any eps (newest
    first)."""
    row = _run_row(session, run)
    ckpt = session.scalars(
        select(Checkpoint).where(Checkpoint.run_id == row.id, Checkpoint.tag == checkpoint)
    ).first()
    if ckpt is None:
        return None, []
    evs = session.scalars(
        select(Evaluation)
        .where(
            Evaluation.run_id == row.id,
            Evaluation.checkpoint_sha256 == ckpt.sha256,
        )
        .order_by(Evaluation.created_at.desc(), Evaluation.id.desc())
    ).all()
    return ckpt, list(evs)


def at_judged_eps(run: Run, e: Evaluation) -> bool:
    """Whether ``e`` ran at the budget ``run`` is judged at in its attack's norm."""
    eps = e.attack_params.get("eps")
    if e.attack == "clean" or eps is None or "eps" not in run.spec:  # no budget to compare
        return True
    judged = judged_eps(run.spec, run.dataset, attacks.norm_of(e.attack))
    return math.isclose(float(eps), judged, rel_tol=1e-9, abs_tol=1e-12)


def masks_by_n(evs: Sequence[Evaluation]) -> dict[int, dict[str, np.ndarray]]:
    """n -> attack -> newest mask (``evs`` is newest first)."""
    out: dict[int, dict[str, np.ndarray]] = {}
    for e in evs:
        out.setdefault(e.n, {}).setdefault(e.attack, e.robust())
    for masks in out.values():
        for name, parts in COMPOSITE.items():
            if name not in masks and all(p in masks for p in parts):
                masks[name] = np.logical_and.reduce([masks[p] for p in parts])
    return out


def judged_n(by_n: Mapping[int, Mapping[str, Any]]) -> int:
    """The test points a checkpoint is judged on (``by_n`` from :func:`masks_by_n`): the
    subset with the most attacks stored, then the largest. The audit, the agreement
    between attacks and the checklist table all compare on it."""
    return max(by_n, key=lambda k: (len(by_n[k]), k))


def worst_case(
    session: Session | Engine,
    run: Run | str | int,
    checkpoint: str,
    attack_names: Iterable[str],
) -> tuple[np.ndarray | None, int, list[str]]:
    """Per-point robustness under every attack in ``attack_names`` at once, from the DB.

    Returns ``(mask, n, missing)``: ``mask`` is True where the point survived all the
    attacks found, ``n`` the number of points, ``missing`` the attacks with no evaluation on
    those points. Where attacks were run on different subsets, the subset covering the most
    of them (then the largest) is used. ``mask`` is None when none was found.
    """
    if isinstance(session, Engine):
        with Session(session) as s:
            return worst_case(s, run, checkpoint, attack_names)
    names = list(dict.fromkeys(attack_names))
    _, evs = current_evaluations(session, run, checkpoint)
    by_n = masks_by_n(evs)
    if not by_n or not names:
        return None, 0, names
    n = max(by_n, key=lambda k: (sum(a in by_n[k] for a in names), k))
    found = [by_n[n][a] for a in names if a in by_n[n]]
    missing = [a for a in names if a not in by_n[n]]
    if not found:
        return None, 0, names
    return np.logical_and.reduce(found), n, missing
