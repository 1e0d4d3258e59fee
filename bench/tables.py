"""Database -> pandas DataFrame -> Markdown/CSV/JSON. Formats live here and only here.

A cell keeps its number apart from its display string: frames hold floats, rendering
turns them into text at the very end.
"""

from __future__ import annotations

import json

import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

import attacks
from bench.db import Checkpoint, Evaluation, Run
from bench.reference import FAMILY, SOURCE, paper_value

TABLE2_ATTACKS = ("clean", "fgsm", "pgd20", "cw20")
DEFENSE_ORDER = ("natural", "standard", "mma", "dynamic", "trades", "mart")


def evaluations_frame(engine: Engine, runs: list[str] | None = None) -> pd.DataFrame:
    """One row per stored evaluation of a run's current best/last checkpoint.

    Evaluations of a checkpoint file that has since been replaced (a resumed run moves
    "last") stay in the database but are not shown; where the same attack was run more
    than once on a checkpoint, the one on the most test points is shown (the newest among
    those), so a quick check on a smaller subset does not replace a fuller evaluation.
    """
    query = (
        select(Evaluation, Run)
        .join(Run, Evaluation.run_id == Run.id)
        .join(
            Checkpoint,
            (Checkpoint.run_id == Evaluation.run_id)
            & (Checkpoint.tag == Evaluation.checkpoint)
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
                "epochs": r.spec["epochs"],
                "train_subset": r.n_train,
                "checkpoint": e.checkpoint,
                "checkpoint_epoch": e.checkpoint_epoch,
                "checkpoint_sha256": e.checkpoint_sha256,
                "attack": e.attack,
                "attack_params": json.dumps(e.attack_params, sort_keys=True),
                "eps": e.attack_params.get("eps"),
                "n": e.n,
                "correct": e.correct,
                "accuracy": 100.0 * e.accuracy,
                "seconds": e.seconds,
            }
            for e, r in rows
        ]
    df = pd.DataFrame.from_records(records)
    if df.empty:
        return df
    # Rows arrive oldest first; a stable sort by n keeps that order within each n.
    df = df.sort_values("n", kind="stable")
    keep = df.drop_duplicates(["run", "checkpoint", "attack"], keep="last")
    return keep.reset_index(drop=True)


def _defense_rank(defense: str) -> int:
    """The paper's row order; defenses it does not have come after, alphabetically."""
    return DEFENSE_ORDER.index(defense) if defense in DEFENSE_ORDER else len(DEFENSE_ORDER)


def _fmt(v: float | None) -> str:
    return "—" if v is None or pd.isna(v) else f"{v:.2f}"


def table2_frames(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per dataset: rows = runs, columns (attack, best|last|paper) as numbers."""
    out: dict[str, pd.DataFrame] = {}
    if df.empty:
        return out
    df = df[df["attack"].isin(TABLE2_ATTACKS)]
    for dataset, sub in df.groupby("dataset", sort=True):
        wide = sub.pivot_table(
            index=["run", "defense"], columns=["attack", "checkpoint"], values="accuracy"
        )
        run_eps = sub.groupby("run")["eps"].max()
        for atk in TABLE2_ATTACKS:
            wide[(atk, "paper")] = [
                paper_value(str(dataset), d, atk, run_eps[r]) for r, d in wide.index
            ]
        rank = [_defense_rank(d) for d in wide.index.get_level_values("defense")]
        wide = wide.iloc[sorted(range(len(wide)), key=lambda i: (rank[i], wide.index[i][0]))]
        out[str(dataset)] = wide
    return out


def render_table2(df: pd.DataFrame) -> str:
    """The paper's Table 2 layout in Markdown, one block per dataset, with its provenance."""
    frames = table2_frames(df)
    if not frames:
        return "No evaluations in the database yet: run `bench run` or `bench eval` first."
    labels = {a: attacks.PRESETS.get(a).label for a in TABLE2_ATTACKS}
    blocks: list[str] = []
    for dataset, wide in frames.items():
        defenses_seen = wide.index.get_level_values("defense")
        dup = defenses_seen.duplicated(keep=False)
        rows = []
        for (run, defense), is_dup in zip(wide.index, dup, strict=True):
            name = defense.upper() if defense in ("mart", "mma", "alp", "clp") else defense.title()
            row = {"Defense": f"{name} ({run})" if is_dup else name}
            for atk in TABLE2_ATTACKS:
                best = wide.get((atk, "best"), pd.Series(dtype=float)).get((run, defense))
                last = wide.get((atk, "last"), pd.Series(dtype=float)).get((run, defense))
                paper = wide[(atk, "paper")].get((run, defense))
                row[labels[atk]] = f"{_fmt(best)} / {_fmt(last)} ({_fmt(paper)})"
            rows.append(row)
        title = f"### {FAMILY.get(dataset, dataset)}: `{dataset}` (white-box, accuracy %)"
        table = pd.DataFrame(rows).to_markdown(index=False)
        blocks.append("\n".join([title, "", table, "", *_notes(df[df["dataset"] == dataset])]))
    blocks.append(
        f"Cells: ours best / last checkpoint (paper's number: {SOURCE}; shown only where "
        "our eps is the paper's: 0.3 MNIST, 8/255 or 0.031 CIFAR-10)."
    )
    return "\n\n".join(blocks)


def points(evs: pd.DataFrame) -> str:
    """How many test points a run's evaluations used, naming the attacks that used fewer."""
    most = int(evs["n"].max())
    fewer = evs[evs["n"] < most].groupby("n")["attack"].unique()
    extra = "; ".join(f"{n} for {', '.join(sorted(a))}" for n, a in fewer.items())
    return f"{most} test points" + (f" ({extra})" if extra else "")


def _notes(sub: pd.DataFrame) -> list[str]:
    notes = []
    for label in sorted(sub["data_label"].unique()):
        notes.append(f"- Data: {label}")
    for run, r in sub.groupby("run", sort=True):
        first = r.iloc[0]
        epochs = ", ".join(
            f"{c} = epoch {e}"
            for c, e in r.groupby("checkpoint")["checkpoint_epoch"].first().items()
        )
        notes.append(
            f"- `{run}`: {first['model']}, eps {first['eps']:.4g}, preset {first['preset']}, "
            f"{first['epochs']} epochs, "
            f"{first['train_subset']} training images, {points(r)} "
            f"(the first of the test set); checkpoints {epochs}"
        )
    for atk, r in sub.groupby("attack", sort=False):
        notes.append(f"- {atk}: {r.iloc[0]['attack_params']}")
    return notes


def render_long(df: pd.DataFrame, fmt: str = "markdown") -> str:
    """Every evaluation, one per line, for export (csv/json keep full precision)."""
    if fmt == "csv":
        return df.to_csv(index=False)
    if fmt == "json":
        return df.to_json(orient="records", indent=2)
    if df.empty:
        return "No evaluations in the database yet."
    cols = ["run", "checkpoint", "checkpoint_epoch", "attack", "n", "accuracy", "seconds"]
    return df[cols].to_markdown(index=False, floatfmt=".2f")
