"""One page per run: what it is, its training curves, the attack ladder of both
checkpoints, the per-point agreement between attacks, its eps sweep (if run), the
checkpoints and their hashes,
the audit, and the spec and provenance it was made with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine

from bench.core.constants import CHECKPOINTS, is_external
from bench.data import DATASETS
from bench.eval.checks import FLAG
from bench.eval.health import EpochAcc, assess
from bench.report.boards import agreement_frames
from bench.report.cells import AccuracyCell
from bench.report.notes import points
from bench.report.render import display_name
from bench.report.runplots import ladder_order, plot_curves, plot_ladder, plot_sweep, sweep_frame
from bench.report.runview import provenance_lines
from bench.report.site.html import Cell, Col, cell, data_badges, esc, notes, table
from bench.report.site.leaderboard import attack_label, safe
from bench.report.text import count, settings_text


@dataclass(frozen=True)
class RunData:
    """What the site read about one run (frames filtered to it)."""

    rec: dict[str, Any]  # bench/report/boards.py: run_records
    evs: pd.DataFrame  # evaluations_frame (+ AutoAttack worst cases)
    epochs: pd.DataFrame  # epoch_frame
    ckpts: pd.DataFrame  # checkpoint_frame
    audit: list[dict]  # audit_records
    runtime: str  # runframes.runtimes
    boards: list[tuple[str, str]]  # (file, title) of the leaderboards it is on


def run_page(engine: Engine, d: RunData, img: Path) -> str:
    """The body of a run's page; its pictures are drawn into ``img``."""
    name = d.rec["name"]
    parts = [f"<h1>{esc(name)}</h1>", _facts(d)]
    parts.append("<h2>Training curves</h2>")
    if d.epochs.empty:
        parts.append("<p>No training epochs in the database (an external or unfinished run).</p>")
    else:
        png = plot_curves(engine, [name], img / f"curves-{safe(name)}.png", in_image=False)
        parts += [_figure(png, "training curves"), _epoch_details(d.epochs)]
    parts.append("<h2>Attack ladder (best and last checkpoints)</h2>")
    if d.evs.empty:
        parts.append(f"<p>Not evaluated yet: <code>bench eval {esc(name)}</code>.</p>")
    else:
        caption = (
            f"Data: {d.evs['data_label'].iloc[0]}; {points(d.evs)} (the first of the test set); "
            f"preset {d.rec['preset']}; bars: accuracy with its 95% Wilson interval; attack "
            "settings in the table below."
        )
        png = plot_ladder(d.evs, name, caption, img / f"ladder-{safe(name)}.png", False)
        parts += [_figure(png, "attack ladder"), _ladder_table(d.evs)]
        parts.append("<h2>Per-point agreement between attacks</h2>")
        parts.append(_agreement(engine, name))
    parts += ["<h2>Eps sweep</h2>", _sweep(engine, name, img)]
    parts += ["<h2>Checkpoints</h2>", _checkpoints(d.ckpts)]
    parts += ["<h2>Gradient-masking audit</h2>", _audit(d.audit)]
    parts += ["<h2>Spec and preset</h2>", _spec(d.rec["spec"])]
    parts += ["<h2>Provenance</h2>", _provenance(d.rec["provenance"])]
    return "\n".join(parts)


def _facts(d: RunData) -> str:
    r = d.rec
    spec = r["spec"]
    rows = [
        (
            "Defense",
            f"{display_name(r['defense'], r['model'], is_external(spec))} ({r['defense']})",
        ),
        ("Model", r["model"]),
        ("Preset", r["preset"]),
        ("eps", f"{spec.get('eps', float('nan')):.4g}"),
        ("Status", r["status"]),
        ("Epochs", f"{r['epochs_done']} of {spec.get('epochs', '?')}"),
        ("Training images", count(r["n_train"], "image")),
        ("Training time", f"{r['train_seconds']:.0f} s" + (f" ({d.runtime})" if d.runtime else "")),
        ("Training health", _health(d)),
        ("Test points", points(d.evs) + " (the first of the test set)" if len(d.evs) else "-"),
    ]
    if spec.get("kind") == "external":  # a published checkpoint: nothing was trained here
        rows[-5:-1] = [("Training", f"none here: {spec.get('source', 'an external model')}")]
    rows += [
        ("Seed", r["seed"]),
        ("Folder", r["run_dir"]),
        ("Created / finished", f"{r['created_at']} / {r['finished_at'] or '-'}"),
    ]
    body = [[cell(k), cell(v)] for k, v in rows]
    body.insert(1, [cell("Data"), Cell(data_badges(r["data_label"] or r["dataset"]))])
    links = " · ".join(f'<a href="{esc(f)}">{esc(t)}</a>' for f, t in d.boards) or "none"
    body.append([cell("Leaderboards"), Cell(links)])
    return table([Col("Field"), Col("Value")], body, sortable=False)


def _health(d: RunData) -> str:
    """Still at chance, when it left chance, a collapse (bench/eval/health.py)."""
    if d.epochs.empty:
        return "no epoch monitored yet"
    history = [
        EpochAcc(int(e.epoch), e.clean_acc / 100, e.robust_acc / 100) for e in d.epochs.itertuples()
    ]
    return assess(history, DATASETS.get(d.rec["dataset"]).num_classes).summary()


def _figure(png: Path, alt: str) -> str:
    text = png.with_suffix(".txt").read_text().split("\n\n", 1)[-1].strip()
    return (
        f'<figure><img src="img/{esc(png.name)}" alt="{esc(alt)}">'
        f"<figcaption>{esc(text)}</figcaption></figure>"
    )


def _epoch_details(epochs: pd.DataFrame) -> str:
    labels = ("Epoch", "Training loss", "Learning rate", "Clean %", "PGD-20 %", "Seconds")
    cols = [Col(label, num=True) for label in labels]
    keys = ("epoch", "train_loss", "lr", "clean_acc", "robust_acc", "seconds")
    fmts = ("{:.0f}", "{:.4f}", "{:.4g}", "{:.2f}", "{:.2f}", "{:.1f}")
    rows = [
        [
            cell(f.format(getattr(e, k)), sort=float(getattr(e, k)), cls="num")
            for k, f in zip(keys, fmts, strict=True)
        ]
        for e in epochs.itertuples()
    ]
    return f"<details><summary>Per-epoch numbers</summary>{table(cols, rows)}</details>"


def _ladder_table(evs: pd.DataFrame) -> str:
    """Attacks from weakest to strongest, best and last side by side; settings below."""
    order = ladder_order(evs)  # as the bars above it
    cols = [Col("Attack")]
    for tag in CHECKPOINTS:
        sub = evs[evs["checkpoint"] == tag]
        epoch = f" (epoch {int(sub['checkpoint_epoch'].iloc[0])})" if len(sub) else ""
        cols.append(Col(f"{tag.title()}{epoch}", f"accuracy % on the {tag} checkpoint", True))
    rows, settings = [], []
    for atk in order:
        row = [cell(attack_label(atk), sort=atk, title=atk)]
        for tag in CHECKPOINTS:
            hit = evs[(evs["checkpoint"] == tag) & (evs["attack"] == atk)]
            row.append(_acc_cell(hit.iloc[0]) if len(hit) else Cell("—", cls="num missing"))
        rows.append(row)
        params = evs[evs["attack"] == atk].iloc[0]["attack_params"]
        settings.append(f"- {atk}: {settings_text(str(params))}")
    cells = "Cells: accuracy %, 95% Wilson interval, robust points / test points, seconds."
    return table(cols, rows, table_id="ladder") + f"<p class='note'>{cells}</p>" + notes(settings)


def _acc_cell(e: pd.Series) -> Cell:
    acc = AccuracyCell.counted(int(e["correct"]), int(e["n"]))
    return Cell(acc.counts_html(e["seconds"]), sort=float(e["accuracy"]), cls="num")


def _agreement(engine: Engine, run: str) -> str:
    parts = [
        "<p class='lede'>From the stored per-point masks (no attack is run again), on the test "
        "points most attacks share. A point is <i>broken</i> by an attack when it is classified "
        "correctly on clean inputs and not under the attack. <i>Only this one</i>: points this "
        "attack breaks and no other listed attack does. The matrix counts points the row's "
        "attack breaks and the column's does not.</p>"
    ]
    for tag in CHECKPOINTS:
        per, pairs = agreement_frames(engine, run, tag)
        if per.empty:
            continue
        parts.append(f"<h3>{tag.title()} checkpoint ({int(per['n'].iloc[0])} test points)</h3>")
        cols = [
            Col("Attack"),
            Col("Robust", num=True),
            Col("Broken", num=True),
            Col("Broken by this one only", num=True),
        ]
        rows = [
            [cell(attack_label(p.attack), sort=p.attack)]
            + [cell(v, sort=float(v), cls="num") for v in (p.robust, p.broken, p.only)]
            for p in per.itertuples()
        ]
        parts.append(table(cols, rows, table_id=f"agreement-{tag}"))
        mcols = [Col("breaks, and not →")] + [Col(attack_label(c), c, True) for c in pairs]
        mrows = [
            [cell(attack_label(str(a)))] + [cell(v, cls="num") for v in pairs.loc[a]]
            for a in pairs.index
        ]
        parts.append(
            f"<details><summary>Pairwise ({tag})</summary>"
            f"{table(mcols, mrows, sortable=False)}</details>"
        )
    return "\n".join(parts)


def _sweep(engine: Engine, name: str, img: Path) -> str:
    """The accuracy-vs-eps curve of ``bench sweep`` (the checklist's eps sweep), if run."""
    sweep = sweep_frame(engine, name)
    if sweep.empty:
        return f"<p>Not run: <code>bench sweep {esc(name)}</code>.</p>"
    png = plot_sweep(sweep, name, img / f"sweep-{safe(name)}.png", in_image=False)
    cells = ", ".join(
        f"eps {e:g}: {a:.1f}%" for e, a in zip(sweep["eps"], sweep["accuracy"], strict=True)
    )
    return _figure(png, "eps sweep") + f"<p class='note'>{esc(cells)}</p>"


def _checkpoints(ckpts: pd.DataFrame) -> str:
    if ckpts.empty:
        return "<p>No checkpoint yet.</p>"
    cols = [
        Col("Checkpoint"),
        Col("Epoch", num=True),
        Col("Monitor PGD-20 %", "the per-epoch monitor at that epoch", True),
        Col("sha256"),
        Col("File"),
    ]
    rows = [
        [
            cell(c.checkpoint),
            cell(c.epoch, cls="num"),
            cell("—" if pd.isna(c.monitor_acc) else f"{c.monitor_acc:.2f}", cls="num"),
            Cell(f"<span class='mono'>{esc(c.sha256)}</span>"),
            cell(c.path),
        ]
        for c in ckpts.itertuples()
    ]
    return table(cols, rows, sortable=False)


def _audit(records: list[dict]) -> str:
    if not records:
        return "<p>Not audited yet: <code>bench audit</code> (docs/audit.md).</p>"
    cols = [
        Col("Checkpoint"),
        Col("Check"),
        Col("Status"),
        Col("Points", num=True),
        Col("Value", num=True),
        Col("Detail"),
    ]
    rows = [
        [
            cell(a["checkpoint"]),
            cell(a["check"]),
            cell(a["status"], cls=f"status-{a['status']}"),
            cell(a["n"], cls="num"),
            cell("" if a["value"] is None else f"{a['value']:.4g}", cls="num"),
            cell(a["detail"]),
        ]
        for a in records
    ]
    attrs = [{"class": "flagged" if a["status"] == FLAG else ""} for a in records]
    intro = "<p class='lede'>Consistency checks between stored evaluations (docs/audit.md).</p>"
    return intro + table(cols, rows, attrs=attrs, table_id="audit")


def _spec(spec: dict[str, Any]) -> str:
    rows = [
        [Cell(f"<code>{esc(k)}</code>"), cell(v if isinstance(v, str) else json.dumps(v))]
        for k, v in spec.items()
    ]
    return table([Col("Field"), Col("Value")], rows, sortable=False)


def _provenance(prov: dict[str, Any]) -> str:
    if not prov:
        return "<p>No provenance recorded.</p>"
    full = esc(json.dumps(prov, indent=2, sort_keys=True, default=str))
    return (
        notes(provenance_lines(prov))
        + f"<details><summary>Everything recorded</summary><pre>{full}</pre></details>"
    )
