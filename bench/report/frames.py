"""Database -> pandas DataFrames of numbers: the frames every report uses (the static
site's own, built on these, are in boards.py).

A cell keeps its number apart from its display string: frames hold floats and counts, and
the renderers (bench/report/render.py) turn them into text at the very end.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

import attacks
from bench.core.constants import LINF, is_external, run_norm, trained_spec
from bench.core.paper import FAMILY, ROBUSTBENCH, paper_number, paper_table, table5_value
from bench.eval.checks import FLAG
from bench.eval.perpoint import at_judged_eps, wilson_interval, worst_case
from bench.report.runframes import runtimes, seed_groups, semi_runs
from bench.spec.presets import schedule_note
from bench.store.db import Checkpoint, Evaluation, Run, audit_records

# The paper's row order; defenses it does not have come after, alphabetically.
DEFENSE_ORDER = ("natural", "standard", "mma", "dynamic", "trades", "mart")
COLUMNS = [
    "table",
    "dataset",
    "data_label",
    "run",
    "defense",
    "model",
    "checkpoint",
    "checkpoint_epoch",
    "attack",
    "eps",
    "n",
    "correct",
    "accuracy",
    "ci_low",
    "ci_high",
    "paper",
    "diff",
    "audit_flags",
    "preset",
    "external",  # INTERNAL: not exported
]
# A paper table never mixes what is not comparable: one block per data set, threat model
# (eps; every attack here is L-inf), model and training preset.
GROUP = ["dataset", "eps", "model", "preset"]
# Columns the frames keep for the renderers, left out of CSV/JSON exports: whether a row's
# model is external (RobustBench; not trained here), and the threat model of its numbers.
INTERNAL = ("external", "norm", "judged")


TABLE5_ATTACKS = ("clean", "pgd20")
TABLE5_ORDER = ("uat++", "rst", "mart-semi")  # the paper's order


def evaluations_frame(
    engine: Engine, runs: list[str] | None = None, all_budgets: bool = False
) -> pd.DataFrame:
    """One row per stored evaluation of a run's current best/last checkpoint, at the
    budget the run is judged at (``judged_eps``; every budget with ``all_budgets``, one row
    per eps).

    An evaluation belongs to the weights it ran on (their sha256), not to a tag: when
    "best" and "last" are the same weights, one evaluation fills both. Evaluations of a
    file that has since been replaced (a resumed run moves "last") stay in the database but
    are not shown; where the same attack ran more than once on a checkpoint, the one on the
    most test points is shown (the newest among those), so a quick check on a smaller
    subset does not replace a fuller evaluation.
    """
    query = (
        select(Evaluation, Run, Checkpoint)
        .join(Run, Evaluation.run_id == Run.id)
        .join(
            Checkpoint,
            (Checkpoint.run_id == Evaluation.run_id)
            & (Checkpoint.sha256 == Evaluation.checkpoint_sha256),
        )
        .order_by(Evaluation.created_at, Evaluation.id)
    )
    if runs is not None:
        query = query.where(Run.name.in_(runs))
    with Session(engine) as s:
        rows = s.execute(query).all()
        records = [
            {
                "run": r.name,
                "defense": r.defense,
                "model": r.model,
                "dataset": r.dataset,
                "data_label": e.data_label or r.data_label,
                "preset": r.preset,
                "epochs": trained_spec(r.spec)["epochs"],
                "train_subset": r.n_train,
                "checkpoint": c.tag,
                "checkpoint_epoch": c.epoch,
                "checkpoint_sha256": e.checkpoint_sha256,
                "attack": e.attack,
                "attack_params": json.dumps(e.attack_params, sort_keys=True),
                "eps": e.attack_params.get("eps"),
                "n": e.n,
                "correct": e.correct,
                "accuracy": 100.0 * e.accuracy,
                "seconds": e.seconds,
                "schedule": schedule_note(trained_spec(r.spec)),
                "external": is_external(r.spec),
                "norm": _norm(e.attack, r.spec),
                "judged": at_judged_eps(r, e),
            }
            for e, r, c in rows
        ]
    df = pd.DataFrame.from_records(records)
    if df.empty:
        return df
    # Rows arrive oldest first; a stable sort by n keeps that order within each n.
    df = df.sort_values("n", kind="stable")
    if not all_budgets:
        df = df[df["judged"]]
    keys = ["run", "checkpoint", "attack"] + (["eps"] if all_budgets else [])
    return df.drop_duplicates(keys, keep="last").reset_index(drop=True)


def _norm(attack: str, spec: dict) -> str:
    """The threat model of an evaluation: its attack's; a clean one's is its run's."""
    if attack == "clean":
        return run_norm(spec)
    return attacks.norm_of(attack)


def defense_rank(defense: str) -> int:
    return DEFENSE_ORDER.index(defense) if defense in DEFENSE_ORDER else len(DEFENSE_ORDER)


def with_autoattack(engine: Engine, df: pd.DataFrame) -> pd.DataFrame:
    """Add an ``autoattack`` row per checkpoint where only its four parts are stored."""
    return with_worst_case(
        engine, df, "autoattack", lambda sub: ["autoattack"], "worst case of the 4 parts"
    )


def with_worst_case(
    engine: Engine,
    df: pd.DataFrame,
    name: str,
    members: Callable[[pd.DataFrame], list[str]],
    how: str,
) -> pd.DataFrame:
    """Add a ``name`` row per checkpoint that has none: the per-point worst case (stored
    masks ANDed, bench/eval/perpoint.py) of ``members(its evaluations)``, all present."""
    extra = []
    for (run, tag), sub in df.groupby(["run", "checkpoint"], sort=False):
        if (sub["attack"] == name).any() or not members(sub):
            continue
        mask, n, missing = worst_case(engine, str(run), str(tag), members(sub))
        if mask is None or missing:
            continue
        row = sub.iloc[0].to_dict()
        row.update(
            attack=name,
            n=n,
            correct=int(mask.sum()),
            accuracy=100.0 * mask.mean(),
            attack_params=how,
        )
        extra.append(row)
    return pd.concat([df, pd.DataFrame(extra)], ignore_index=True) if extra else df


def audit_flags(engine: Engine, runs: list[str] | None) -> dict[tuple[str, str], list[dict]]:
    out: dict[tuple[str, str], list[dict]] = {}
    for r in audit_records(engine, runs):
        out.setdefault((str(r["run"]), str(r["checkpoint"])), []).append(r)
    return out


def paper_frame(
    engine: Engine, table: int = 2, runs: list[str] | None = None, autoattack: bool = False
) -> pd.DataFrame:
    """Numbers of one paper table: a row per (run, checkpoint, attack in the layout).

    Every run with at least one evaluation in the layout gets every layout cell; missing
    ones have NaN accuracy. A table of one data-set family (Table 4: CIFAR-10) keeps only
    its runs.
    """
    t = paper_table(table)
    layout = t.attacks + (("autoattack",) if autoattack else ())
    df = evaluations_frame(engine, runs)
    if df.empty:
        return pd.DataFrame(columns=COLUMNS)
    df = df[df["norm"] == LINF]  # the paper's tables are L-inf
    if df.empty:
        return pd.DataFrame(columns=COLUMNS)
    if autoattack:
        df = with_autoattack(engine, df)
    if t.family is not None:
        df = df[df["dataset"].map(lambda d: FAMILY.get(d) == t.family)]
    have = df[df["attack"].isin(layout)]
    flags = audit_flags(engine, runs)
    records = []
    for (run, tag), sub in have.groupby(["run", "checkpoint"], sort=False):
        flagged = [f["check"] for f in flags.get((str(run), str(tag)), []) if f["status"] == FLAG]
        records += [paper_cell(table, sub, atk, ",".join(flagged)) for atk in layout]
    out = pd.DataFrame.from_records(records, columns=COLUMNS)
    rank = out["defense"].map(defense_rank)
    return (
        out.assign(_r=rank)
        .sort_values(["dataset", "_r", "run"], kind="stable")
        .drop(columns="_r")
        .reset_index(drop=True)
    )


@dataclass(frozen=True)
class PaperReport:
    """Everything a paper table shows, read from the database once: its cells, the audit
    flags, which runs are seeds of one setting, the evaluations behind the cells (for the
    notes) and how each run was computed. The renderers take this, never the engine."""

    table: int
    frame: pd.DataFrame
    flags: dict[tuple[str, str], list[dict]]
    groups: dict[str, tuple[str, int]]
    evaluations: pd.DataFrame
    runtimes: dict[str, str]


def paper_report(
    engine: Engine, table: int = 2, runs: list[str] | None = None, autoattack: bool = False
) -> PaperReport:
    frame = paper_frame(engine, table, runs, autoattack)
    names = list(dict.fromkeys(frame["run"]))
    evs = evaluations_frame(engine, names) if names else pd.DataFrame(columns=["run", "attack"])
    return PaperReport(
        table,
        frame,
        audit_flags(engine, None),
        seed_groups(engine, names),
        evs,
        runtimes(engine, names),
    )


def paper_cell(table: int, sub: pd.DataFrame, atk: str, flagged: str) -> dict:
    """One cell's numbers: ours (with its Wilson interval), the paper's, and the difference."""
    first = sub.iloc[0]
    run, tag = first["run"], first["checkpoint"]
    eps = sub["eps"].dropna().max()
    by_attack = sub.set_index("attack")
    rec = {
        "table": table,
        "dataset": first["dataset"],
        "data_label": first["data_label"],
        "run": run,
        "defense": first["defense"],
        "model": first["model"],
        "checkpoint": tag,
        "checkpoint_epoch": int(first["checkpoint_epoch"]),
        "attack": atk,
        "eps": eps,
        "n": None,
        "correct": None,
        "accuracy": float("nan"),
        "ci_low": float("nan"),
        "ci_high": float("nan"),
        "audit_flags": flagged,
        "preset": first["preset"],
        "external": bool(first["external"]),
    }
    if atk in by_attack.index:
        e = by_attack.loc[atk]
        lo, hi = wilson_interval(int(e["correct"]), int(e["n"]))
        rec.update(
            n=int(e["n"]),
            correct=int(e["correct"]),
            accuracy=float(e["accuracy"]),
            ci_low=100 * lo,
            ci_high=100 * hi,
        )
    model, dataset, defense = str(first["model"]), str(first["dataset"]), str(first["defense"])
    preset = str(first["preset"])
    paper = paper_number(table, dataset, defense, atk, str(tag), eps, model, preset)
    if paper is None and first["external"] and tag == "best":
        paper = ROBUSTBENCH.get(model, {}).get(atk)
    rec["paper"] = float("nan") if paper is None else paper
    rec["diff"] = rec["accuracy"] - rec["paper"]
    return rec


def table5_frame(engine: Engine, runs: list[str] | None = None) -> pd.DataFrame:
    """One row per (run, checkpoint, attack) of the semi-supervised runs, as numbers."""
    names = list(semi_runs(engine))
    if runs is not None:
        names = [n for n in names if n in runs]
    df = evaluations_frame(engine, runs=names)
    if df.empty:
        return df
    df = df[df["attack"].isin(TABLE5_ATTACKS)].reset_index(drop=True)
    df["paper"] = [
        table5_value(str(r.dataset), str(r.model), str(r.defense), str(r.attack), r.eps)
        for r in df.itertuples()
    ]
    return df
