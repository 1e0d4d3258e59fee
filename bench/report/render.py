"""Frames -> text: Markdown tables with their provenance notes, and CSV/JSON exports.

One layout per paper table. ``--ci`` adds intervals inside the cells and ``--autoattack``
adds a column; neither changes the layout. Row names come from each defense's
``display_name``. Every number shown was computed in bench/report/frames.py.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy.engine import Engine

import attacks
import defenses
from bench.core.constants import Tag, external_source
from bench.core.paper import (
    FAMILY,
    ROBUSTBENCH_SOURCE,
    TABLE5_SETTING,
    TABLE5_SOURCE,
    not_the_papers,
    paper_table,
)
from bench.report.cells import AccuracyCell, fmt_num
from bench.report.frames import (
    GROUP,
    INTERNAL,
    TABLE5_ATTACKS,
    TABLE5_ORDER,
    PaperReport,
    paper_frame,
    paper_report,
    table5_frame,
)
from bench.report.notes import audit_notes, audit_text, eval_notes
from bench.report.runframes import semi_runs
from bench.report.seeds import aggregate_seeds
from bench.report.text import attack_label, count, describe_semi_run, settings_text
from bench.store.db import Run

FORMATS = ("markdown", "csv", "json")


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; valid: {', '.join(FORMATS)}")
    return fmt


def export(frame: pd.DataFrame, fmt: str) -> str:
    """A frame as CSV or JSON records, full precision (the frames' own bookkeeping
    columns left out)."""
    frame = frame.drop(columns=list(INTERNAL), errors="ignore")
    return frame.to_csv(index=False) if fmt == "csv" else frame.to_json(orient="records", indent=2)


def display_name(defense: str, model: str = "", external: bool = False) -> str:
    """How a table names a row: the defense's own ``display_name``; an external model by
    its name."""
    if external:
        return f"{model} ({external_source(defense)[0]})"
    return defenses.DEFENSES.get(defense).title() if defense in defenses.DEFENSES else defense


def _row_name(first: pd.Series, run: str, dup: bool) -> str:
    name = display_name(first["defense"], first["model"], first["external"])
    return f"{name} ({run})" if dup and not first["external"] else name


def _markdown(report: PaperReport, ci: bool = False) -> str:
    frame, table, flags = report.frame, report.table, report.flags
    t = paper_table(table)
    if frame.empty:
        return f"No evaluations for Table {table} in the database yet." + t.fill
    attack_order = list(dict.fromkeys(frame["attack"]))
    blocks = []
    frame = frame.assign(eps=frame["eps"].round(6), preset=frame["preset"].fillna("-"))
    for (dataset, eps, model, preset), sub in frame.groupby(GROUP, sort=False, dropna=False):
        runs = list(dict.fromkeys(sub["run"]))
        grouped = aggregate_seeds(sub, report.groups)
        rows = _table_rows(grouped, table, ci, flags, attack_order)
        family = FAMILY.get(str(dataset), str(dataset))
        title = (
            f"### Table {table}, {family}: `{dataset}`, L-inf eps {eps:.4g}, {model}, preset "
            f"{preset} ({t.title}, accuracy %)"
        )
        evs = report.evaluations
        evs = evs[evs["run"].isin(runs) & evs["attack"].isin(attack_order)]
        why = not_the_papers(table, str(dataset), str(model), str(preset))
        if why and not sub.iloc[0]["external"]:  # zoo entries: RobustBench's numbers
            title += f" — no paper numbers: {why}"
        lines = [title, "", pd.DataFrame(rows).to_markdown(index=False), "", *eval_notes(evs)]
        times = {r: report.runtimes[r] for r in runs if r in report.runtimes}
        lines += [f"- `{r}` trained in {how}" for r, how in sorted(times.items())]
        blocks.append("\n".join(lines + audit_notes(flags, runs)))
    cells = "best / last checkpoint"
    if t.split:  # e.g. PGD-20, PGD-100, CW-inf: "PGD and CW"
        kinds = list(dict.fromkeys(attack_label(a).split("-")[0] for a in t.split))
        cells = f"best / last (Table {table} splits {' and '.join(kinds)})"
    blocks.append(
        f"Cells: ours, {cells} (best: the epoch with the highest PGD-20 accuracy on the first "
        "test points, the papers' convention, which flatters it; where a run held training "
        "images out with --val-subset, 'val' is the epoch chosen on those instead)"
        f"; over several seeds (column Seeds) the mean ± sample sd, "
        "(n=k) where fewer seeds have the value, per-seed numbers in --format csv/json"
        + (", with 95% Wilson intervals [low, high] for single seeds" if ci else "")
        + f"; in parentheses the paper's number ({t.source}, for the best checkpoint"
        " unless the column says last) and ours - paper. The paper's numbers are shown only"
        " where our eps is the paper's (0.3 MNIST, 8/255 or 0.031 CIFAR-10)"
        + (f" and the model is {t.model.upper()}" if t.model else "")
        + f"; RobustBench entries are compared with {ROBUSTBENCH_SOURCE}. '—': not evaluated."
    )
    return "\n\n".join(blocks)


def _table_rows(
    sub: pd.DataFrame, table: int, ci: bool, flags: dict, attack_order: list[str]
) -> list[dict[str, str]]:
    """One Markdown row per run: best / last per attack, the paper's number, the audit."""
    groups = list(dict.fromkeys(sub["group"]))
    dups = sub.drop_duplicates("group")["defense"].duplicated(keep=False).tolist()
    rows = []
    for group, dup in zip(groups, dups, strict=True):
        r = sub[sub["group"] == group]
        first = r.iloc[0]
        seeds, label = first["seeds"], group.split("|")[0]
        row = {"Defense": _row_name(first, label, dup)}
        row["Seeds"] = f"n={len(seeds)} ({','.join(map(str, seeds))})"
        for atk in attack_order:
            by_tag = r[r["attack"] == atk].groupby("checkpoint")
            cells = {t: AccuracyCell.of(g.iloc[0]) for t, g in by_tag}
            best, last = (cells.get(t, AccuracyCell(None)) for t in ("best", "last"))
            k = len(seeds)
            if atk in paper_table(table).split:
                row[f"{attack_label(atk)} best"] = best.markdown(ci, k) + best.paper_note()
                row[f"{attack_label(atk)} last"] = last.markdown(ci, k) + last.paper_note()
            else:
                cell = f"{best.markdown(ci, k)} / {last.markdown(ci, k)}"
                if Tag.BEST_VAL.value in cells:  # --val-subset: chosen off the test set
                    cell += f" / val {cells[Tag.BEST_VAL.value].markdown(ci, k)}"
                row[attack_label(atk)] = cell + (best.paper_note() or last.paper_note())
        row["Audit"] = audit_text(r, flags, first["members"])
        rows.append(row)
    return rows


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
    if check_format(fmt) != "markdown":
        return export(paper_frame(engine, table, runs, autoattack), fmt)
    return _markdown(paper_report(engine, table, runs, autoattack), ci)


def render_long(df: pd.DataFrame, fmt: str = "markdown") -> str:
    """Every evaluation, one per line, for export (csv/json keep full precision)."""
    if fmt in ("csv", "json"):
        return export(df, fmt)
    if df.empty:
        return "No evaluations in the database yet."
    cols = ["run", "checkpoint", "checkpoint_epoch", "attack", "eps", "n", "accuracy", "seconds"]
    return df[cols].to_markdown(index=False, floatfmt=".2f")


def render_table5(engine: Engine, runs: list[str] | None = None, fmt: str = "markdown") -> str:
    """Table 5 as Markdown with its notes, or its numbers as CSV/JSON."""
    df = table5_frame(engine, runs)
    if check_format(fmt) != "markdown":
        return export(df, fmt)
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
                TABLE5_ORDER.index(info[r].defense) if info[r].defense in TABLE5_ORDER else 9,
                r,
            ),
        )
        for run in order:
            r = sub[sub["run"] == run]
            first = r.iloc[0]
            row = {
                "Defense": display_name(first["defense"]),
                "Model": first["model"],
                "Unlabelled": f"{info[run].spec.get('n_unlabelled'):,}",
            }
            for atk in TABLE5_ATTACKS:
                cells = r[r["attack"] == atk].set_index("checkpoint")
                cell = cells["accuracy"]
                paper = cells["paper"].dropna().iloc[0] if cells["paper"].notna().any() else None
                row[labels[atk]] = (
                    f"{fmt_num(cell.get('best'))} / {fmt_num(cell.get('last'))} ({fmt_num(paper)})"
                )
            rows.append(row)
        title = (
            f"### Table 5 (with unlabelled data): {FAMILY.get(str(dataset), dataset)}, "
            f"`{dataset}` (white-box, accuracy %)"
        )
        table = pd.DataFrame(rows).to_markdown(index=False)
        blocks.append("\n".join([title, "", table, "", *_t5_notes(sub, info)]))
    settings = "; ".join(f"{m}: {s}" for m, s in TABLE5_SETTING.items())
    blocks.append(
        f"Cells: ours best / last checkpoint (paper's number: {TABLE5_SOURCE}; {settings}; "
        "shown only for those models on CIFAR-10 at eps 8/255 or 0.031)."
    )
    return "\n\n".join(blocks)


def _t5_notes(sub: pd.DataFrame, info: dict[str, Run]) -> list[str]:
    notes = [f"- Data: {label}" for label in sorted(sub["data_label"].unique())]
    for run, r in sub.groupby("run", sort=True):
        first = r.iloc[0]
        notes.append(
            f"- `{run}`: {first['model']}, eps {first['eps']:.4g}, preset {first['preset']}, "
            f"{count(first['epochs'], 'epoch')}, "
            f"{count(first['train_subset'], 'labelled training image')} + "
            f"{describe_semi_run(info[run].spec, info[run].provenance)}; "
            f"{int(r['n'].max())} test points (the first of the test set)"
        )
    for atk, r in sub.groupby("attack", sort=False):
        notes.append(f"- {atk}: {settings_text(r.iloc[0]['attack_params'])}")
    return notes
