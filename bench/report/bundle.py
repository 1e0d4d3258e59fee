"""A results bundle for committing: every number of a paper table with how it was obtained.

``bundle`` collects, for the runs given (default: all), the cells of Table 2 (white-box)
or Table 3 (black-box transfer): ours with a 95% Wilson interval, the paper's number and
ours - paper, each with its run's seed; per run its spec, provenance, per-epoch curve,
checkpoint hashes and every current evaluation with its attack settings and packed
per-point mask, so a reader can recompute any cell, any worst case over attacks, or check
a re-run point by point; and the paper's claims (MART > TRADES, MART > Standard) judged
over the seeds. ``markdown`` renders the comparison, the ranking and the claims.
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections import Counter
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bench.eval.health import from_metrics
from bench.report.frames import INTERNAL, paper_frame
from bench.store.db import Checkpoint, Evaluation, Run

HEADER = "| defense | seed | epoch | attack | n | ours % | 95% interval | paper % | ours − paper |"
CLAIMS = (("mart", "trades"), ("mart", "standard"))  # the paper's headline comparisons


@dataclass(frozen=True)
class Layout:
    """What a bundle of one paper table ranks and judges the paper's claims on."""

    what: str
    rank: str  # the attack the ranking is on
    judged: tuple[str, ...]  # the attacks the claims are judged on
    autoattack: bool = False  # cells of the AutoAttack column too


LAYOUTS = {
    2: Layout(
        "MART paper Table 2 layout (white-box); accuracy % with 95% Wilson intervals",
        "pgd20",
        ("pgd20", "autoattack"),
        autoattack=True,
    ),
    3: Layout(
        "MART paper Table 3 layout (black-box: examples crafted on a naturally trained "
        "surrogate); accuracy % with 95% Wilson intervals",
        "transfer-pgd20",
        ("transfer-pgd20",),
    ),
}


def bundle(
    engine: Engine, runs: list[str] | None = None, note: str = "", table: int = 2
) -> dict[str, Any]:
    """Cells, runs (spec, provenance, hashes, evaluations with masks), ranking and claims."""
    if table not in LAYOUTS:
        raise ValueError(f"bundles are for paper tables {', '.join(map(str, LAYOUTS))}")
    lay = LAYOUTS[table]
    cells = paper_frame(engine, table, runs, autoattack=lay.autoattack)
    cells = cells.drop(columns=list(INTERNAL), errors="ignore")
    cells = cells.astype(object).where(pd.notna(cells), None)
    records = cells.to_dict(orient="records")
    runs_out = _runs(engine, runs)
    seeds = {r["name"]: r["spec"].get("seed") for r in runs_out}
    for c in records:
        c["seed"] = seeds.get(c["run"])
    tags = ("best", "last")
    return {
        "what": lay.what,
        "table": table,
        "note": note,
        "written": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cells": records,
        "rank_attack": lay.rank,
        "ranking": {tag: ranking(records, tag, lay.rank) for tag in tags},
        "claims": {tag: [c for a in lay.judged for c in claims(records, tag, a)] for tag in tags},
        "runs": runs_out,
    }


def _runs(engine: Engine, runs: list[str] | None) -> list[dict[str, Any]]:
    query = select(Run).order_by(Run.id)
    if runs is not None:
        query = query.where(Run.name.in_(runs))
    out = []
    with Session(engine) as s:
        for r in s.scalars(query):
            ckpts = {
                c.tag: c for c in s.scalars(select(Checkpoint).where(Checkpoint.run_id == r.id))
            }
            out.append(
                {
                    "name": r.name,
                    "defense": r.defense,
                    "data": r.data_label,
                    "n_train": r.n_train,
                    "spec": r.spec,
                    "provenance": r.provenance,
                    "train_seconds": r.train_seconds,
                    "checkpoints": {
                        t: {"epoch": c.epoch, "sha256": c.sha256} for t, c in ckpts.items()
                    },
                    "evaluations": _evaluations(s, r, ckpts),
                    "epochs": _curve(r),
                    "health": (h.summary() if (h := from_metrics(r.epochs, r.dataset)) else ""),
                }
            )
    return out


def _curve(run: Run) -> list[dict[str, Any]]:
    """The per-epoch monitor (fractions; val_* with --val-subset), oldest first."""
    keys = ("epoch", "lr", "train_loss", "clean_acc", "robust_acc", "n_monitor", "seconds")
    keys += ("val_clean_acc", "val_robust_acc", "n_val")
    return [{k: getattr(m, k) for k in keys} for m in sorted(run.epochs, key=lambda m: m.epoch)]


def _evaluations(s: Session, run: Run, ckpts: dict[str, Checkpoint]) -> list[dict[str, Any]]:
    """Every evaluation of the current weights, tagged by checkpoint, newest per attack."""
    out: dict[tuple[str, str, int], dict[str, Any]] = {}
    for tag, c in ckpts.items():
        evs = s.scalars(
            select(Evaluation)
            .where(Evaluation.run_id == run.id, Evaluation.checkpoint_sha256 == c.sha256)
            .order_by(Evaluation.created_at, Evaluation.id)
        )
        for e in evs:
            out[(tag, e.attack, e.n)] = {
                "checkpoint": tag,
                "sha256": c.sha256,
                "attack": e.attack,
                "settings": e.attack_params,
                "n": e.n,
                "correct": e.correct,
                "seconds": round(e.seconds, 1),
                "robust_mask_hex": e.robust_mask.hex(),
            }
    return list(out.values())


def ranking(cells: list[dict[str, Any]], tag: str, attack: str = "pgd20") -> list[dict[str, Any]]:
    """Runs by accuracy under ``attack``, with their intervals."""
    rows = [
        c
        for c in cells
        if c["attack"] == attack and c["checkpoint"] == tag and c["accuracy"] is not None
    ]
    rows.sort(key=lambda c: -c["accuracy"])
    keys = ("defense", "run", "seed", "accuracy", "ci_low", "ci_high", "n", "paper", "diff")
    return [{k: c.get(k) for k in keys} for c in rows]


def claims(cells: list[dict[str, Any]], tag: str, attack: str = "pgd20") -> list[dict[str, Any]]:
    """Whether "A > B" under ``attack`` holds outside the Wilson intervals of every seed
    (every run of A above every run of B), is reversed so, or is not resolved. With several
    seeds the difference is of the means, and each seed's number is listed."""
    by: dict[str, list[dict[str, Any]]] = {}
    for c in ranking(cells, tag, attack):
        by.setdefault(c["defense"], []).append(c)
    out = []
    for a, b in CLAIMS:
        if a not in by or b not in by:
            continue
        ca, cb = by[a], by[b]
        seeds = len(ca) > 1 or len(cb) > 1
        every = " of every seed" if seeds else ""
        if min(c["ci_low"] for c in ca) > max(c["ci_high"] for c in cb):
            verdict = f"holds outside the intervals{every}"
        elif max(c["ci_high"] for c in ca) < min(c["ci_low"] for c in cb):
            verdict = f"reversed, outside the intervals{every}"
        else:
            verdict = "not resolved: the " + ("seeds' " if seeds else "") + "intervals overlap"
        mean = [statistics.fmean(c["accuracy"] for c in cs) for cs in (ca, cb)]
        out.append(
            {
                "claim": f"{a} > {b}",
                "attack": attack,
                "difference": mean[0] - mean[1],
                "seeds": {a: [c["accuracy"] for c in ca], b: [c["accuracy"] for c in cb]},
                "verdict": verdict,
            }
        )
    return out


def _num(v: Any, fmt: str = ".2f") -> str:
    return "–" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def markdown(b: dict[str, Any]) -> str:
    """The comparison with the paper, per checkpoint, then the ranking and the claims."""
    lines = [f"# {b['what']}", ""]
    if b["note"]:
        lines += [b["note"], ""]
    cells = b["cells"]
    for tag in ("best", "last"):
        sub = [c for c in cells if c["checkpoint"] == tag]
        if not sub:
            continue
        lines += [f"## {tag} checkpoint", "", HEADER, "|---|---|---|---|---|---|---|---|---|"]
        for c in sub:
            ci = f"[{_num(c['ci_low'])}, {_num(c['ci_high'])}]" if c["n"] else "–"
            n = _num(c["n"], ".0f")
            lines.append(
                f"| {c['defense']} | {_num(c.get('seed'), 'd')} | {c['checkpoint_epoch']} "
                f"| {c['attack']} | {n} "
                f"| {_num(c['accuracy'])} | {ci} | {_num(c['paper'])} | {_num(c['diff'], '+.2f')} |"
            )
        lines += ["", f"Ranking on {b['rank_attack']} ({tag}):", ""]
        lines += _ranking_lines(b["ranking"][tag])
        lines.append("")
        for c in b["claims"][tag]:
            seeds = "; ".join(
                f"{d} " + ", ".join(_num(v) for v in vs) for d, vs in c["seeds"].items()
            )
            lines.append(
                f"- {c['claim']} on {c['attack']}: {c['difference']:+.2f} points ({seeds}), "
                f"{c['verdict']}"
            )
        lines.append("")
    return "\n".join(lines + _run_lines(b["runs"]))


def _ranking_lines(rows: list[dict[str, Any]]) -> list[str]:
    """One line a run; a defense with several runs says each one's seed."""
    count = Counter(r["defense"] for r in rows)
    lines = []
    for i, r in enumerate(rows, 1):
        name = r["defense"] + (f" (seed {r.get('seed')})" if count[r["defense"]] > 1 else "")
        ci = f"[{_num(r['ci_low'])}, {_num(r['ci_high'])}]"
        lines.append(f"{i}. {name}: {_num(r['accuracy'])} {ci}")
    return lines


def _run_lines(runs: list[dict[str, Any]]) -> list[str]:
    """How each row was obtained: data, epochs, preset, monitor, threads, time."""
    lines = [
        "## Runs",
        "",
        "| run | data | epochs | preset | eps | monitor points | threads | training time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        spec, prov = r["spec"], r["provenance"] or {}
        threads = (prov.get("runtime") or {}).get("torch_threads", "?")
        mins = f"{r['train_seconds'] / 60:.1f} min" if r["train_seconds"] else "–"
        monitor = spec.get("monitor_subset") or spec.get("test_subset") or "all"
        lines.append(
            f"| {r['name']} | {r['data'] or spec.get('dataset')} | {spec.get('epochs')} "
            f"| {spec.get('preset', '–')} | {spec.get('eps')} | {monitor} | {threads} | {mins} |"
        )
    return [*lines, ""]
