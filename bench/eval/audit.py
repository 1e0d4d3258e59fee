"""The gradient-masking audit: consistency checks between stored evaluations (docs/audit.md).

A model that masks gradients looks robust to gradient attacks without being robust. It
shows up as evaluations that contradict each other: an attack doing better than a
stronger one, a black-box or gradient-free attack beating white-box PGD, or input
gradients that are exactly zero. Each check compares stored per-point masks of one
checkpoint on the same test points, so the audit never attacks again; only the
zero-gradient check needs the model (one forward/backward pass), and its result is stored.

A check whose attacks were not evaluated is ``not-evaluated``, never ``ok``. Tolerances
are numbers of test points (``tolerance``) so that small subsets do not flag noise.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from torch import nn

from bench import data as bdata
from bench.eval.loop import to_float
from bench.eval.perpoint import current_evaluations, masks_by_n
from bench.store.db import AuditFlag, Checkpoint, Run, find_run, now
from bench.store.loading import checkpoint_model

OK, FLAG, NOT_EVALUATED = "ok", "flag", "not-evaluated"
TOL_MIN_POINTS = 2
TOL_FRACTION = 0.005  # 0.5% of the points: 2 of 200, 50 of 10,000
ZERO_GRAD = 1e-12  # L1 norm of the input gradient at or below this counts as vanished
TRANSFER_PAIRS = (
    ("fgsm", "transfer-fgsm"),
    ("pgd10", "transfer-pgd10"),
    ("pgd20", "transfer-pgd20"),
    ("cw20", "transfer-cw20"),
)
CHECKS = (
    "robust-le-clean",
    "fgsm-ge-pgd",
    "pgd-finds-fgsm",
    "whitebox-le-blackbox",
    "spsa-not-below-pgd",
    "autoattack-le-pgd20",
    "zero-gradients",
)


def tolerance(n: int) -> int:
    """Points by which two attacks may disagree before it counts: max(2, ceil(0.5% of n))."""
    return max(TOL_MIN_POINTS, math.ceil(TOL_FRACTION * n))


@dataclass(frozen=True)
class CheckResult:
    check: str
    status: str  # ok | flag | not-evaluated
    n: int
    value: float | None  # the check's key number (points, or a fraction for zero-gradients)
    detail: str


def _missing(check: str, n: int, needs: Iterable[str]) -> CheckResult:
    return CheckResult(check, NOT_EVALUATED, n, None, "needs " + ", ".join(needs))


def _only(a: np.ndarray, b: np.ndarray) -> int:
    """Points robust under ``a`` but broken by ``b``."""
    return int((a & ~b).sum())


def consistency_checks(masks: dict[str, np.ndarray], n: int) -> list[CheckResult]:
    """Every check that needs only stored masks (attack -> robust per point, same n points)."""
    tol, c = tolerance(n), {a: int(m.sum()) for a, m in masks.items()}
    out: list[CheckResult] = []

    attacked = [a for a in masks if a != "clean"]
    if "clean" not in masks or not attacked:
        out.append(_missing("robust-le-clean", n, ["clean", "an attack"]))
    else:
        worst = {a: _only(masks[a], masks["clean"]) for a in attacked}
        top = max(worst, key=lambda a: worst[a])
        out.append(
            CheckResult(
                "robust-le-clean",
                FLAG if worst[top] > tol else OK,
                n,
                float(worst[top]),
                f"most points robust under an attack yet misclassified clean: {worst[top]} "
                f"({top}); tolerance {tol}",
            )
        )

    if "fgsm" not in masks or "pgd20" not in masks:
        out.append(_missing("fgsm-ge-pgd", n, ["fgsm", "pgd20"]))
        out.append(_missing("pgd-finds-fgsm", n, ["fgsm", "pgd20"]))
    else:
        excess = c["pgd20"] - c["fgsm"]
        text = f"correct: FGSM {c['fgsm']}, PGD-20 {c['pgd20']}"
        if "pgd100" in masks:
            excess = max(excess, c["pgd100"] - c["pgd20"])
            text += f", PGD-100 {c['pgd100']}"
        else:
            text += ", PGD-100 not evaluated"
        out.append(
            CheckResult(
                "fgsm-ge-pgd",
                FLAG if excess > tol else OK,
                n,
                float(excess),
                f"{text}; largest excess of a stronger attack {excess}, tolerance {tol}",
            )
        )
        only = _only(masks["pgd20"], masks["fgsm"])
        out.append(
            CheckResult(
                "pgd-finds-fgsm",
                FLAG if only > tol else OK,
                n,
                float(only),
                f"{only} points broken by FGSM but robust to PGD-20; tolerance {tol}",
            )
        )

    pairs = [(w, b) for w, b in TRANSFER_PAIRS if w in masks and b in masks]
    if not pairs:
        out.append(_missing("whitebox-le-blackbox", n, ["a white-box attack and its transfer-*"]))
    else:
        gaps = {w: c[w] - c[b] for w, b in pairs}
        top = max(gaps, key=lambda w: gaps[w])
        parts = [
            f"{w} {c[w]} vs {b} {c[b]} ({_only(masks[w], masks[b])} points broken only by transfer)"
            for w, b in pairs
        ]
        out.append(
            CheckResult(
                "whitebox-le-blackbox",
                FLAG if gaps[top] > tol else OK,
                n,
                float(gaps[top]),
                "correct: " + "; ".join(parts) + f"; tolerance {tol}",
            )
        )

    if "spsa" not in masks or "pgd20" not in masks:
        out.append(_missing("spsa-not-below-pgd", n, ["spsa", "pgd20"]))
    else:
        gap = c["pgd20"] - c["spsa"]
        out.append(
            CheckResult(
                "spsa-not-below-pgd",
                FLAG if gap > tol else OK,
                n,
                float(gap),
                f"correct: PGD-20 {c['pgd20']}, SPSA {c['spsa']} "
                f"({_only(masks['pgd20'], masks['spsa'])} points broken only by "
                f"SPSA); tolerance {tol}",
            )
        )

    if "autoattack" not in masks or "pgd20" not in masks:
        out.append(_missing("autoattack-le-pgd20", n, ["autoattack (or its 4 parts)", "pgd20"]))
    else:
        gap = c["autoattack"] - c["pgd20"]
        out.append(
            CheckResult(
                "autoattack-le-pgd20",
                FLAG if gap > tol else OK,
                n,
                float(gap),
                f"correct: AutoAttack {c['autoattack']}, PGD-20 {c['pgd20']}; tolerance {tol}",
            )
        )
    return out


def input_gradient_norms(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256, device: str = "cpu"
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
            (g,) = torch.autograd.grad(loss, [xb])
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
    ckpt, evs = current_evaluations(s, run, tag)
    if ckpt is None or not evs:
        return []
    by_n = masks_by_n(evs)
    n = max(by_n, key=lambda k: (len(by_n[k]), k))
    results = consistency_checks(by_n[n], n)
    grad = _stored_gradient_check(s, run, ckpt, n)
    if grad is None:
        grad = _compute_gradient_check(run, ckpt, n, data_root, device, loader)
    results.append(grad)
    for r in results:
        row = s.scalars(
            select(AuditFlag).where(
                AuditFlag.run_id == run.id, AuditFlag.checkpoint == tag, AuditFlag.check == r.check
            )
        ).first() or AuditFlag(run_id=run.id, checkpoint=tag, check=r.check)
        row.checkpoint_sha256, row.status, row.n = ckpt.sha256, r.status, r.n
        row.value, row.detail, row.created_at = r.value, r.detail[:2000], now()
        s.add(row)
    s.commit()
    return results


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


def audit_records(engine: Engine, runs: list[str] | None = None) -> list[dict[str, object]]:
    """Stored audit results of the runs' current checkpoints, as plain records for tables."""
    query = (
        select(AuditFlag, Run)
        .join(Run, AuditFlag.run_id == Run.id)
        .join(
            Checkpoint,
            (Checkpoint.run_id == AuditFlag.run_id)
            & (Checkpoint.tag == AuditFlag.checkpoint)
            & (Checkpoint.sha256 == AuditFlag.checkpoint_sha256),
        )
        .order_by(Run.id, AuditFlag.checkpoint, AuditFlag.id)
    )
    if runs is not None:
        query = query.where(Run.name.in_(runs))
    with Session(engine) as s:
        return [
            {
                "run": r.name,
                "checkpoint": a.checkpoint,
                "check": a.check,
                "status": a.status,
                "n": a.n,
                "value": a.value,
                "detail": a.detail,
            }
            for a, r in s.execute(query).all()
        ]


def summary_json(results: dict[tuple[str, str], list[CheckResult]]) -> str:
    return json.dumps(
        [{"run": r, "checkpoint": t, **vars(c)} for (r, t), cs in results.items() for c in cs],
        indent=2,
    )
