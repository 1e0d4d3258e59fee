"""The gradient-masking audit: consistency checks between stored evaluations (docs/audit.md).

A model that masks gradients looks robust to gradient attacks without being robust. It
shows up as evaluations that contradict each other: an attack doing better than a
stronger one, a black-box or gradient-free attack beating white-box PGD, or input
gradients that are exactly zero. Each check compares stored per-point masks of one
checkpoint on the same test points, so the audit never attacks again; only the
zero-gradient check needs the model (one forward/backward pass), and its result is stored.
A trained run also gets the two checks of its training history (bench/eval/health.py):
still at chance, and a collapse of its monitored PGD accuracy.

A check whose attacks were not evaluated is ``not-evaluated``, never ``ok``. Tolerances
are numbers of test points (``tolerance``) so that small subsets do not flag noise.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

import numpy as np
import torch
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from torch import nn

from attacks.base import input_grad
from bench import data as bdata
from bench.core.constants import EVAL_BATCH, LINF, MONITOR_ATTACKS, SWEEP_TOP
from bench.eval.checks import (
    FLAG,
    NOT_EVALUATED,
    OK,
    ZERO_GRAD,
    CheckResult,
    subset_checks,
    tolerance,
)
from bench.eval.health import from_metrics
from bench.eval.loop import to_float
from bench.eval.perpoint import at_judged_eps, checkpoint_evaluations, judged_n, masks_by_n
from bench.store.db import AuditFlag, Checkpoint, Evaluation, Run, find_run, now
from bench.store.loading import checkpoint_model


def input_gradient_norms(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int = EVAL_BATCH,
    device: str = "cpu",
) -> np.ndarray:
    """L1 norm of d CE(f(x_i), y_i) / d x_i per point, in eval mode (mode restored).

    The loss is summed, not averaged, so a point's gradient is not divided by the batch
    size (which would push honest small gradients towards the threshold).
    """
    was_training = model.training
    model.eval()
    out = []
    try:
        for lo in range(0, len(y), batch_size):
            xb = to_float(x[lo : lo + batch_size]).to(device).requires_grad_(True)
            loss = nn.functional.cross_entropy(
                model(xb), y[lo : lo + batch_size].to(device), reduction="sum"
            )
            g = input_grad(loss, xb)  # zero where no gradient reaches the input (e.g. JPEG)
            out.append(g.flatten(1).abs().sum(1).detach().cpu().double().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(out) if out else np.zeros(0)


def zero_gradient_check(norms: np.ndarray) -> CheckResult:
    n = int(norms.size)
    exact = int((norms == 0).sum() + (~np.isfinite(norms)).sum())
    tiny = int((norms <= ZERO_GRAD).sum())
    tol = tolerance(n)
    return CheckResult(
        "zero-gradients",
        FLAG if tiny > tol else OK,
        n,
        tiny / n if n else None,
        f"{tiny} of {n} points ({100 * tiny / max(n, 1):.1f}%) have an input-gradient L1 norm "
        f"<= {ZERO_GRAD:g} ({exact} exactly zero or non-finite); tolerance {tol}",
    )


ModelLoader = Callable[[Run, Checkpoint], nn.Module]


def _stored_gradient_check(s: Session, run: Run, ckpt: Checkpoint, n: int) -> CheckResult | None:
    row = s.scalars(
        select(AuditFlag).where(
            AuditFlag.run_id == run.id,
            AuditFlag.checkpoint == ckpt.tag,
            AuditFlag.check == "zero-gradients",
        )
    ).first()
    if row is None or row.checkpoint_sha256 != ckpt.sha256 or row.n != n:
        return None
    if row.status == NOT_EVALUATED:
        return None  # try again: the data or model may be there now
    return CheckResult(row.check, row.status, row.n, row.value, row.detail)


def audit_checkpoint(
    s: Session,
    run: Run,
    tag: str,
    *,
    data_root: str | None = None,
    device: str = "cpu",
    loader: ModelLoader | None = None,
) -> list[CheckResult]:
    """Run every check on one checkpoint and store the results (replacing older ones)."""
    ckpt, every = checkpoint_evaluations(s, run, tag)  # any eps: the sweep's too
    evs = [e for e in every if at_judged_eps(run, e)]
    if ckpt is None or not evs:
        return []
    by_n = masks_by_n(evs)
    n = judged_n(by_n)
    results = subset_checks(by_n, n)
    results.append(sweep_check(run, every))
    grad = _stored_gradient_check(s, run, ckpt, n)
    if grad is None:
        grad = _compute_gradient_check(run, ckpt, n, data_root, device, loader)
    results.append(grad)
    health = from_metrics(run.epochs, run.dataset)
    if health is not None:  # trained here: its per-epoch monitor is stored
        results.extend(health.checks())
    _store(s, run.id, tag, ckpt.sha256, results)
    return results


def sweep_check(run: Run, evs: list[Evaluation]) -> CheckResult:
    """``sweep-reaches-zero``: at the top of the eps sweep (L-inf eps 1, where an attack can
    reach any image: bench sweep), PGD-20 must leave about no point correct. ``evs``: the
    checkpoint's evaluations at every eps, newest first."""
    check = "sweep-reaches-zero"
    top = [
        e
        for e in evs
        if e.attack == MONITOR_ATTACKS[LINF] and e.attack_params.get("eps") == SWEEP_TOP
    ]
    if not top:
        return CheckResult(check, NOT_EVALUATED, 0, None, f"needs `bench sweep {run.name}`")
    e = top[0]
    tol = tolerance(e.n)
    detail = (
        f"PGD-20 at L-inf eps {SWEEP_TOP:g} leaves {e.correct} of {e.n} points correct; "
        f"tolerance {tol}"
    )
    return CheckResult(check, FLAG if e.correct > tol else OK, e.n, float(e.correct), detail)


def _store(s: Session, run_id: int, tag: str, sha: str, results: list[CheckResult]) -> None:
    """Replace the stored results of these checks. Two workers auditing the same run at
    once: the second's insert meets the first's rows (IntegrityError) and updates them."""
    for attempt in range(3):
        try:
            with s.no_autoflush:  # the inserts happen at the commit, inside this try
                for r in results:
                    row = s.scalars(
                        select(AuditFlag).where(
                            AuditFlag.run_id == run_id,
                            AuditFlag.checkpoint == tag,
                            AuditFlag.check == r.check,
                        )
                    ).first() or AuditFlag(run_id=run_id, checkpoint=tag, check=r.check)
                    row.checkpoint_sha256, row.status, row.n = sha, r.status, r.n
                    row.value, row.detail, row.created_at = r.value, r.detail[:2000], now()
                    s.add(row)
            s.commit()
            return
        except IntegrityError:
            s.rollback()
            if attempt == 2:
                raise


def _compute_gradient_check(
    run: Run,
    ckpt: Checkpoint,
    n: int,
    data_root: str | None,
    device: str,
    loader: ModelLoader | None,
) -> CheckResult:
    try:
        x, y = bdata.subset(*bdata.load_split(run.dataset, False, data_root), n)
    except bdata.DataNotFoundError as e:
        return CheckResult("zero-gradients", NOT_EVALUATED, n, None, f"no test data: {e}")
    model = (loader or checkpoint_model)(run, ckpt).to(device)
    return zero_gradient_check(input_gradient_norms(model, x, y, device=device))


def audit_runs(
    engine: Engine,
    runs: Iterable[str] | None = None,
    *,
    data_root: str | None = None,
    device: str = "cpu",
    loader: ModelLoader | None = None,
) -> dict[tuple[str, str], list[CheckResult]]:
    """Audit the named runs (default: every run), best and last; (run, tag) -> results."""
    out: dict[tuple[str, str], list[CheckResult]] = {}
    with Session(engine) as s:
        if runs is None:
            rows = list(s.scalars(select(Run).order_by(Run.id)))
        else:
            rows = []
            for name in runs:
                row = find_run(s, name)
                if row is None:
                    raise LookupError(f"no run named {name!r} in the database (bench ls runs)")
                rows.append(row)
        for run in rows:
            for ckpt in sorted(run.checkpoints, key=lambda c: c.tag):
                res = audit_checkpoint(
                    s, run, ckpt.tag, data_root=data_root, device=device, loader=loader
                )
                if res:
                    out[(run.name, ckpt.tag)] = res
    return out


def summary_json(results: dict[tuple[str, str], list[CheckResult]]) -> str:
    return json.dumps(
        [{"run": r, "checkpoint": t, **vars(c)} for (r, t), cs in results.items() for c in cs],
        indent=2,
    )
