"""The paper's Tables 2, 3 and 4 (and an AutoAttack column), with Wilson intervals, the
paper's numbers and our difference to them, the audit's flags, and CSV/JSON export.

Computing and rendering are separate: ``paper_frame`` returns one row per (run,
checkpoint, attack) with numbers only (accuracy, n, interval, paper, ours - paper, audit);
``render_paper`` turns it into Markdown or exports it as CSV/JSON. A cell whose attack was
not evaluated is "—" (NaN in exports), never a number. Table 3 is black-box transfer;
Table 4 is CIFAR-10 WRN-34-10 with best and last checkpoints (docs/reference.md §6.3).
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy.engine import Engine

import attacks
from bench import tables
from bench.audit import FLAG, NOT_EVALUATED, audit_records
from bench.perpoint import wilson_interval, worst_case
from bench.reference import (
    FAMILY,
    ROBUSTBENCH,
    ROBUSTBENCH_SOURCE,
    SOURCE,
    TABLE3_SOURCE,
    TABLE4_SOURCE,
    paper_number,
)

LAYOUTS: dict[int, tuple[str, ...]] = {
    2: ("clean", "fgsm", "pgd20", "cw20"),
    3: ("transfer-fgsm", "transfer-pgd10", "transfer-pgd20", "transfer-cw20"),
    4: ("clean", "fgsm", "pgd20", "pgd100", "cw20"),
}
TITLES = {2: "white-box", 3: "black-box transfer", 4: "white-box, best and last checkpoints"}
SOURCES = {2: SOURCE, 3: TABLE3_SOURCE, 4: TABLE4_SOURCE}
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
]


def _label(attack: str) -> str:
    return attacks.PRESETS.get(attack).label if attack in attacks.PRESETS else attack


def _with_autoattack(engine: Engine, df: pd.DataFrame) -> pd.DataFrame:
    """Add an ``autoattack`` row per checkpoint where only its four parts are stored."""
    extra = []
    for (run, tag), sub in df.groupby(["run", "checkpoint"], sort=False):
        if (sub["attack"] == "autoattack").any():
            continue
        mask, n, missing = worst_case(engine, str(run), str(tag), ["autoattack"])
        if mask is None or missing:
            continue
        row = sub.iloc[0].to_dict()
        row.update(
            attack="autoattack",
            n=n,
            correct=int(mask.sum()),
            accuracy=100.0 * mask.mean(),
            attack_params="worst case of the 4 parts",
        )
        extra.append(row)
    return pd.concat([df, pd.DataFrame(extra)], ignore_index=True) if extra else df


def _flags(engine: Engine, runs: list[str] | None) -> dict[tuple[str, str], list[dict]]:
    out: dict[tuple[str, str], list[dict]] = {}
    for r in audit_records(engine, runs):
        out.setdefault((str(r["run"]), str(r["checkpoint"])), []).append(r)
    return out


def paper_frame(
    engine: Engine, table: int = 2, runs: list[str] | None = None, autoattack: bool = False
) -> pd.DataFrame:
    """Numbers of one paper table: a row per (run, checkpoint, attack in the layout).

    Every run with at least one evaluation in the layout gets every layout cell; missing
    ones have NaN accuracy. Table 4 keeps only CIFAR-10 runs.
    """
    if table not in LAYOUTS:
        raise ValueError(f"unknown paper table {table}; valid: 2, 3, 4")
    layout = LAYOUTS[table] + (("autoattack",) if autoattack else ())
    df = tables.evaluations_frame(engine, runs)
    if df.empty:
        return pd.DataFrame(columns=COLUMNS)
    if autoattack:
        df = _with_autoattack(engine, df)
    if table == 4:
        df = df[df["dataset"].map(lambda d: FAMILY.get(d) == "CIFAR-10")]
    have = df[df["attack"].isin(layout)]
    flags = _flags(engine, runs)
    records = []
    for (run, tag), sub in have.groupby(["run", "checkpoint"], sort=False):
        first = sub.iloc[0]
        eps = sub["eps"].dropna().max()
        by_attack = sub.set_index("attack")
        flagged = [f["check"] for f in flags.get((str(run), str(tag)), []) if f["status"] == FLAG]
        for atk in layout:
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
                "audit_flags": ",".join(flagged),
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
            paper = paper_number(
                table,
                str(first["dataset"]),
                str(first["defense"]),
                atk,
                str(tag),
                eps,
                str(first["model"]),
            )
            if paper is None and first["defense"] == "zoo" and tag == "best":
                paper = ROBUSTBENCH.get(str(first["model"]), {}).get(atk)
            rec["paper"] = float("nan") if paper is None else paper
            rec["diff"] = rec["accuracy"] - rec["paper"]
            records.append(rec)
    out = pd.DataFrame.from_records(records, columns=COLUMNS)
    rank = out["defense"].map(tables._defense_rank)
    return (
        out.assign(_r=rank)
        .sort_values(["dataset", "_r", "run"], kind="stable")
        .drop(columns="_r")
        .reset_index(drop=True)
    )


def _num(v: float, nd: int = 2) -> str:
    return "—" if v is None or pd.isna(v) else f"{v:.{nd}f}"


def _cell(r: pd.Series | None, ci: bool) -> str:
    if r is None or pd.isna(r["accuracy"]):
        return "—"
    text = _num(r["accuracy"])
    return text + (f" [{_num(r['ci_low'], 1)}, {_num(r['ci_high'], 1)}]" if ci else "")


def _paper(r: pd.Series | None) -> str:
    if r is None or pd.isna(r["paper"]):
        return ""
    diff = "" if pd.isna(r["diff"]) else f", {r['diff']:+.2f}"
    return f" ({_num(r['paper'])}{diff})"


def _row_name(defense: str, model: str, run: str, dup: bool) -> str:
    if defense == "zoo":
        return f"{model} (RobustBench)"
    name = defense.upper() if defense in ("mart", "mma", "alp", "clp") else defense.title()
    return f"{name} ({run})" if dup else name


def _audit_text(sub: pd.DataFrame, flags: dict[tuple[str, str], list[dict]], run: str) -> str:
    parts = []
    for tag in sorted(sub["checkpoint"].unique()):
        rows = flags.get((run, str(tag)), [])
        bad = [r["check"] for r in rows if r["status"] == FLAG]
        unk = sum(r["status"] == NOT_EVALUATED for r in rows)
        if not rows:
            text = "not audited"
        elif bad:
            text = ", ".join(bad)
        else:
            text = f"no flag in {len(rows) - unk} checks"
        parts.append(f"{tag}: {text}" + (f" ({unk} not evaluated)" if unk else ""))
    return "; ".join(parts)


def render_markdown(frame: pd.DataFrame, engine: Engine, table: int, ci: bool = False) -> str:
    if frame.empty:
        return f"No evaluations for Table {table} in the database yet."
    flags = _flags(engine, None)
    attack_order = list(dict.fromkeys(frame["attack"]))
    blocks = []
    for dataset, sub in frame.groupby("dataset", sort=False):
        runs = list(dict.fromkeys(sub["run"]))
        dups = sub.drop_duplicates("run")["defense"].duplicated(keep=False).tolist()
        rows = []
        for run, dup in zip(runs, dups, strict=True):
            r = sub[sub["run"] == run]
            first = r.iloc[0]
            row = {"Defense": _row_name(first["defense"], first["model"], run, dup)}
            for atk in attack_order:
                cells = {t: g.iloc[0] for t, g in r[r["attack"] == atk].groupby("checkpoint")}
                best, last = cells.get("best"), cells.get("last")
                paper = _paper(best) or _paper(last)
                if table == 4 and atk in ("pgd20", "pgd100", "cw20"):
                    paper = ""
                    row[f"{_label(atk)} best"] = _cell(best, ci) + _paper(best)
                    row[f"{_label(atk)} last"] = _cell(last, ci) + _paper(last)
                else:
                    row[_label(atk)] = f"{_cell(best, ci)} / {_cell(last, ci)}{paper}"
            row["Audit"] = _audit_text(r, flags, run)
            rows.append(row)
        family = FAMILY.get(str(dataset), str(dataset))
        title = f"### Table {table}, {family}: `{dataset}` ({TITLES[table]}, accuracy %)"
        evs = tables.evaluations_frame(engine, runs)
        evs = evs[evs["attack"].isin(attack_order)]
        blocks.append(
            "\n".join(
                [
                    title,
                    "",
                    pd.DataFrame(rows).to_markdown(index=False),
                    "",
                    *_notes(evs),
                    *_audit_notes(flags, runs),
                ]
            )
        )
    cells = "best / last checkpoint" if table != 4 else "best / last (Table 4 splits PGD and CW)"
    blocks.append(
        f"Cells: ours, {cells}"
        + (", with 95% Wilson intervals [low, high]" if ci else "")
        + f"; in brackets the paper's number ({SOURCES[table]}, for the best checkpoint"
        " unless the column says last) and ours - paper. The paper's numbers are shown only"
        " where our eps is the paper's (0.3 MNIST, 8/255 or 0.031 CIFAR-10)"
        + (" and the model is WRN-34-10" if table == 4 else "")
        + f"; RobustBench entries are compared with {ROBUSTBENCH_SOURCE}. '—': not evaluated."
    )
    return "\n\n".join(blocks)


def _notes(evs: pd.DataFrame) -> list[str]:
    """Provenance under the table: data, runs (or zoo sources), attack settings."""
    if evs.empty:
        return []
    external = evs[evs["defense"] == "zoo"]
    notes = tables._notes(evs[evs["defense"] != "zoo"]) if len(external) < len(evs) else []
    for run, r in external.groupby("run", sort=True):
        first = r.iloc[0]
        notes.append(
            f"- `{run}`: RobustBench model-zoo entry {first['model']} (published checkpoint, "
            f"sha256 {str(first['checkpoint_sha256'])[:12]}), eps {first['eps']:.4g}, "
            f"{tables.points(r)} (the first of the test set); "
            f"data {first['data_label']}"
        )
    return notes


def _audit_notes(flags: dict[tuple[str, str], list[dict]], runs: list[str]) -> list[str]:
    out = []
    for run in runs:
        for (r, tag), rows in sorted(flags.items()):
            if r != run:
                continue
            for f in rows:
                if f["status"] == FLAG:
                    out.append(
                        f"- Audit flag `{f['check']}` on `{run}` ({tag}): {f['detail']} "
                        "(see docs/audit.md)"
                    )
    return out


def render_paper(
    engine: Engine,
    table: int = 2,
    fmt: str = "markdown",
    *,
    ci: bool = False,
    autoattack: bool = False,
    runs: list[str] | None = None,
) -> str:
    """Table 2, 3 or 4 as Markdown (with provenance and audit notes), CSV or JSON (numbers)."""
    if fmt not in ("markdown", "csv", "json"):
        raise ValueError(f"unknown format {fmt!r}; valid: markdown, csv, json")
    frame = paper_frame(engine, table, runs, autoattack)
    if fmt == "csv":
        return frame.to_csv(index=False)
    if fmt == "json":
        return frame.to_json(orient="records", indent=2)
    if table == 2 and not ci and not autoattack:
        df = tables.evaluations_frame(engine, runs)
        flags = _flags(engine, runs)
        runs_seen = list(dict.fromkeys(frame["run"]))
        lines = ["Gradient-masking audit (docs/audit.md):"]
        for run in runs_seen:
            lines.append(f"- `{run}`: {_audit_text(frame[frame['run'] == run], flags, run)}")
        return tables.render_table2(df) + "\n\n" + "\n".join(lines + _audit_notes(flags, runs_seen))
    return render_markdown(frame, engine, table, ci)
