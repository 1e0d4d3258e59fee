"""Table 5 (robustness with unlabelled data): database -> DataFrame -> Markdown.

Rows are semi-supervised runs (a spec with an unlabelled source); cells are Natural and
PGD-20 accuracy of the best / last checkpoint, with the paper's number where our model,
data set and eps are the paper's (WRN-34-8 + 100K or WRN-28-10 + 500K on CIFAR-10).
The notes say, for every run, which images were pseudo-labelled and by which model.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

import attacks
from bench import semi
from bench.db import Run
from bench.reference import FAMILY, TABLE5_SETTING, TABLE5_SOURCE, table5_value
from bench.tables import evaluations_frame

TABLE5_ATTACKS = ("clean", "pgd20")
ROW_ORDER = ("uat++", "rst", "mart-semi")  # the paper's order
NAMES = {"uat++": "UAT++", "rst": "RST", "mart-semi": "MART"}


def semi_runs(engine: Engine) -> dict[str, Run]:
    """Runs trained with unlabelled data, by name."""
    with Session(engine) as s:
        return {r.name: r for r in s.scalars(select(Run)) if r.spec.get("unlabelled")}


def table5_frame(engine: Engine, runs: list[str] | None = None) -> pd.DataFrame:
    """One row per (run, checkpoint, attack) of the semi-supervised runs, as numbers."""
    names = list(semi_runs(engine))
    if runs is not None:
        names = [n for n in names if n in runs]
    df = evaluations_frame(engine, runs=names)
    if df.empty:
        return df
    return df[df["attack"].isin(TABLE5_ATTACKS)].reset_index(drop=True)


def _fmt(v: float | None) -> str:
    return "—" if v is None or pd.isna(v) else f"{v:.2f}"


def render_table5(engine: Engine, runs: list[str] | None = None) -> str:
    df = table5_frame(engine, runs)
    if df.empty:
        return "No semi-supervised evaluations yet: run `bench experiment table5-semi`."
    info = semi_runs(engine)
    labels = {a: attacks.PRESETS.get(a).label for a in TABLE5_ATTACKS}
    blocks = []
    for dataset, sub in df.groupby("dataset", sort=True):
        rows = []
        order = sorted(
            sub["run"].unique(),
            key=lambda r: (
                ROW_ORDER.index(info[r].defense) if info[r].defense in ROW_ORDER else 9,
                r,
            ),
        )
        for run in order:
            r = sub[sub["run"] == run]
            first = r.iloc[0]
            row = {
                "Defense": NAMES.get(first["defense"], first["defense"]),
                "Model": first["model"],
                "Unlabelled": f"{info[run].spec.get('n_unlabelled'):,}",
            }
            for atk in TABLE5_ATTACKS:
                cell = r[r["attack"] == atk].set_index("checkpoint")["accuracy"]
                paper = table5_value(
                    str(dataset), first["model"], first["defense"], atk, first["eps"]
                )
                row[labels[atk]] = (
                    f"{_fmt(cell.get('best'))} / {_fmt(cell.get('last'))} ({_fmt(paper)})"
                )
            rows.append(row)
        title = (
            f"### Table 5 (with unlabelled data): {FAMILY.get(str(dataset), dataset)}, "
            f"`{dataset}` (white-box, accuracy %)"
        )
        table = pd.DataFrame(rows).to_markdown(index=False)
        blocks.append("\n".join([title, "", table, "", *_notes(sub, info)]))
    settings = "; ".join(f"{m}: {s}" for m, s in TABLE5_SETTING.items())
    blocks.append(
        f"Cells: ours best / last checkpoint (paper's number: {TABLE5_SOURCE}; {settings}; "
        "shown only for those models on CIFAR-10 at eps 8/255 or 0.031)."
    )
    return "\n\n".join(blocks)


def _notes(sub: pd.DataFrame, info: dict[str, Run]) -> list[str]:
    notes = [f"- Data: {label}" for label in sorted(sub["data_label"].unique())]
    for run, r in sub.groupby("run", sort=True):
        first = r.iloc[0]
        notes.append(
            f"- `{run}`: {first['model']}, eps {first['eps']:.4g}, preset {first['preset']}, "
            f"{first['epochs']} epochs, {first['train_subset']} labelled training images + "
            f"{semi.describe_run(info[run].spec, info[run].provenance)}; "
            f"{int(r['n'].max())} test points (the first of the test set)"
        )
    for atk, r in sub.groupby("attack", sort=False):
        notes.append(f"- {atk}: {r.iloc[0]['attack_params']}")
    return notes
