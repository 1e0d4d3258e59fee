"""The checklist table (``bench table --masking``): each model's PGD-20 beside the attacks
the lecture's checklist adds, and the audit's verdict.

One row per run (a bare network, or a network behind an input transformation: the
``RUN+NAME`` runs of bench/jobs/transformed.py), on its best checkpoint: clean accuracy,
PGD-20, the adaptive attack the probe picked (BPDA, EOT or CW-inf, bench/eval/masking.py), the
hard-label RayS, PGD-100, and the worst case over every stored attack (per point). The
verdict is the audit's (docs/audit.md): the flagged checks, or how many passed. A model
whose PGD-20 is far above its worst case hides its gradients; the verdict says which
check caught it.
"""

from __future__ import annotations

import json

import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

import defenses
from bench.core.constants import RunKind, Tag
from bench.eval.checks import FLAG, NOT_EVALUATED
from bench.eval.perpoint import (
    current_evaluations,
    judged_n,
    masks_by_n,
    wilson_interval,
    worst_case,
)
from bench.report.cells import AccuracyCell
from bench.report.frames import audit_flags, defense_rank, evaluations_frame
from bench.report.render import check_format, display_name, export
from bench.report.text import attack_label, settings_text
from bench.store.db import Evaluation, Run

# the probe's pick (bench/eval/masking.py), BPDA's convergence rung first where it ran
ADAPTIVE = ("bpda-pgd100-r5", "bpda-pgd20", "eot-pgd20", "cw20")
COLUMNS = ("clean", "pgd20", "adaptive", "ls-pga", "rays", "pgd100", "pgd100-r5", "worst")
# shown only in a block where some model has it: the checklist evaluates PGD-100 x5 only
# where PGD-100 went below PGD-20's 95% interval, and LS-PGA only on a model
# behind a quantiser (bench/jobs/checklist.py)
OPTIONAL = ("ls-pga", "pgd100-r5")
LABELS = {"adaptive": "BPDA / EOT / CW", "worst": "Worst case"}
FIELDS = [
    "run",
    "model",
    "dataset",
    "data_label",
    "preset",
    "eps",
    "column",
    "attack",
    "n",
    "correct",
    "accuracy",
    "ci_low",
    "ci_high",
    "verdict",
    "settings",
]


def model_label(run: Run) -> str:
    """How the table names a model: the defense, the parameters it is named by (e.g.
    thermometer-at's inner attack), and its input transformation if any."""
    spec = run.spec
    name = display_name(run.defense)
    named = defenses.shown(run.defense, spec.get("defense_params") or {})
    name += f" ({named})" if named else ""
    if spec.get("kind") != RunKind.TRANSFORMED:
        return name
    params = ", ".join(f"{k}={v}" for k, v in sorted(spec["transform_params"].items()))
    return f"{name} + {spec['transform']}" + (f" ({params})" if params else "")


def verdict(rows: list[dict]) -> str:
    """The audit's verdict on one checkpoint, compact."""
    if not rows:
        return "not audited"
    flagged = [r["check"] for r in rows if r["status"] == FLAG]
    if flagged:
        return "flag: " + ", ".join(flagged)
    ran = sum(r["status"] != NOT_EVALUATED for r in rows)
    return f"ok ({ran} checks)"


def _cell(base: dict, column: str, attack: str, correct: int, n: int, settings: str) -> dict:
    lo, hi = wilson_interval(correct, n)
    return {
        **base,
        "column": column,
        "attack": attack,
        "settings": settings,
        "n": n,
        "correct": correct,
        "accuracy": 100.0 * correct / n,
        "ci_low": 100.0 * lo,
        "ci_high": 100.0 * hi,
    }


def masking_frame(engine: Engine, runs: list[str] | None = None) -> pd.DataFrame:
    """A row per (run, column) for every run with a PGD-20 evaluation of its best checkpoint.

    Every cell of a row is on the same test points: the subset that covers the most of the
    run's attacks (then the largest), as the audit and the worst case choose it, so a
    checklist run on the first 1,000 points of a run evaluated on 10,000 compares like with
    like."""
    df = evaluations_frame(engine, runs)
    if df.empty:
        return pd.DataFrame(columns=FIELDS)
    df = df[df["checkpoint"] == Tag.BEST.value]
    flags = audit_flags(engine, runs)
    records: list[dict] = []
    with Session(engine) as s:
        info = {r.name: r for r in s.scalars(select(Run).where(Run.name.in_(df["run"].unique())))}
        for run, sub in df.groupby("run", sort=False):
            first = sub.iloc[0]
            checks = flags.get((str(run), Tag.BEST.value), [])
            base = {
                "run": run,
                "model": model_label(info[str(run)]),
                "dataset": first["dataset"],
                "data_label": first["data_label"],
                "preset": first["preset"],
                "eps": first["eps"],
                "verdict": verdict(checks),
                "_rank": defense_rank(info[str(run)].defense),
            }
            records += _run_cells(s, str(run), base, checks)
    out = pd.DataFrame.from_records(records)
    if out.empty:
        return pd.DataFrame(columns=FIELDS)
    out = out.sort_values(["dataset", "eps", "_rank", "run"], kind="stable")
    return out.drop(columns="_rank")[FIELDS].reset_index(drop=True)


def _run_cells(s: Session, run: str, base: dict, checks: list[dict]) -> list[dict]:
    """One run's cells, on the test points that cover the most of its attacks."""
    _, evs = current_evaluations(s, run, Tag.BEST.value)  # newest first
    by: dict[str, Evaluation] = {}
    if evs:
        n = judged_n(masks_by_n(evs))
        for e in (e for e in evs if e.n == n):
            by.setdefault(e.attack, e)
    if "pgd20" not in by:
        return []
    zero = any(c["check"] == "zero-gradients" and c["status"] == FLAG for c in checks)
    # the probe's pick (bench/eval/masking.py): CW-inf only where the gradient is zero
    picks = [a for a in ADAPTIVE if a != "cw20" or zero]
    adaptive = next((a for a in picks if a in by), None)
    out = []
    for column in COLUMNS[:-1]:
        attack = adaptive if column == "adaptive" else column
        if attack in by:
            e = by[attack]
            how = settings_text(json.dumps(e.attack_params, sort_keys=True))
            out.append(_cell(base, column, attack, e.correct, e.n, how))
    attacked = sorted((a for a in by if a != "clean"), key=lambda a: (by[a].created_at, by[a].id))
    mask, n, missing = worst_case(s, run, Tag.BEST.value, attacked)
    if mask is not None and not missing:
        how = "per point, over " + ", ".join(attacked)
        out.append(_cell(base, "worst", "worst", int(mask.sum()), n, how))
    return out


def render_masking(df: pd.DataFrame, fmt: str = "markdown", *, ci: bool = False) -> str:
    """The checklist table as Markdown (a block per data set and eps, with how it was
    made), or its cells as CSV/JSON."""
    if check_format(fmt) != "markdown":
        return export(df, fmt)
    if df.empty:
        return "No PGD-20 evaluations yet: see scripts/masking.sh for the checklist table's runs."
    groups = df.groupby(["dataset", "eps"], sort=False)
    return "\n\n".join(_block(str(d), float(e), sub, ci) for (d, e), sub in groups) + "\n"


def _row(run: str, r: pd.DataFrame, columns: list[str], ci: bool) -> dict[str, str]:
    adaptive = r[r["column"] == "adaptive"]["attack"]
    row = {"Model": str(r["model"].iloc[0])}
    row.update({_label(c): _text(r[r["column"] == c], ci) for c in columns})
    row["Adaptive attack"] = attack_label(adaptive.iloc[0]) if len(adaptive) else "-"
    row.update({"Verdict": str(r["verdict"].iloc[0]), "Run": run})
    return row


def _block(dataset: str, eps: float, sub: pd.DataFrame, ci: bool) -> str:
    """One data set and eps: how the numbers were made, the table, every attack's settings."""
    present = set(sub["column"])
    columns = [c for c in COLUMNS if c not in OPTIONAL or c in present]
    rows = [_row(str(run), r, columns, ci) for run, r in sub.groupby("run", sort=False)]
    n = ", ".join(str(v) for v in sorted(sub["n"].unique()))
    head = (
        f"### {dataset}, L-inf eps {eps:g}: best checkpoints, {n} test points\n\n"
        f"Data: {sub['data_label'].iloc[0]}; training presets: "
        f"{', '.join(sorted(sub['preset'].unique()))}. Accuracy in %"
        + ("; [95% Wilson interval]" if ci else "")
        + ". Worst case: a point counts as robust only if every stored attack failed on it."
    )
    used = sub[sub["column"] != "worst"].drop_duplicates("attack")
    notes = [
        f"- {attack_label(a)}: {how}"
        for a, how in zip(used["attack"], used["settings"], strict=True)
    ]
    table = pd.DataFrame(rows).to_markdown(index=False)
    return head + "\n\n" + table + "\n\nAttack settings:\n\n" + "\n".join(notes)


def _label(column: str) -> str:
    return LABELS.get(column) or attack_label(column)


def _text(cell: pd.DataFrame, ci: bool) -> str:
    return AccuracyCell.of(None if cell.empty else cell.iloc[0]).short(ci)
