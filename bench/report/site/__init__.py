"""``bench report``: the results database as a static site (HTML, one stylesheet, PNGs).

The site opens from ``file://`` with no server and no network: pages link to each other
and to ``style.css`` and ``img/`` beside them, use local fonts, and inline their only
script (sorting tables by a column). Pages: an overview, one leaderboard per (data set,
eps), one page per run, the paper's Tables 2-5 and its Figure 2 panels. Numbers come from
the frames (bench/report/frames.py, boards.py); pictures from matplotlib.

The site is written into a temporary folder beside ``out`` and moved into place when
complete, so a failed build leaves the previous site (or nothing), never half a site.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pandas as pd
from sqlalchemy.engine import Engine
from tqdm import tqdm

from bench.core.constants import LINF
from bench.report.boards import checkpoint_frame, leaderboard_frame, run_records
from bench.report.frames import (
    audit_flags,
    evaluations_frame,
    with_autoattack,
)
from bench.report.runframes import epoch_frame, runtimes, seed_groups
from bench.report.runview import runs_frame
from bench.report.site.html import CSS, Cell, Col, cell, data_badges, esc, page, table
from bench.report.site.leaderboard import (
    board_file,
    board_norm,
    board_page,
    board_title,
    boards,
    run_file,
)
from bench.report.site.paper import figures_page, tables_page
from bench.report.site.runpage import RunData, run_page
from bench.store.db import audit_records

MARKER = ".bench-site"  # a folder with this file was written by bench report


def build_site(
    engine: Engine,
    out: Path,
    *,
    runs: list[str] | None = None,
    progress: bool = False,
    source: str = "",
) -> Path:
    """Write the site of every run (or the named ones) to ``out``, replacing an earlier site
    there; returns its index page."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).exists():
        raise ValueError(f"--out {out} is a folder not made by bench report: choose another")
    records = run_records(engine, runs)
    if runs is not None and len(records) < len(set(runs)):
        missing = sorted(set(runs) - {r["name"] for r in records})
        raise LookupError(f"no run named {missing[0]!r} in the database (see `bench ls runs`)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        _write(engine, tmp, records, runs, progress, source)
        # The earlier site moves into a folder made here, under a name no one else has,
        # so nothing but that site (checked for MARKER above) is ever removed.
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
        if out.exists():
            out.rename(old / out.name)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out / "index.html"


Pages = dict[str, tuple[str, str]]  # file -> (title, body)


def _write(
    engine: Engine,
    root: Path,
    records: list[dict],
    runs: list[str] | None,
    progress: bool,
    source: str,
) -> None:
    img = root / "img"
    img.mkdir()
    names = [r["name"] for r in records]
    found = boards(leaderboard_frame(engine, runs))
    pages: Pages = {}
    on_boards = _board_pages(engine, found, names, runs, pages)
    evs = evaluations_frame(engine, runs)
    evs = with_autoattack(engine, evs) if not evs.empty else pd.DataFrame(columns=["run"])
    epochs, ckpts = epoch_frame(engine, names), checkpoint_frame(engine, names)
    audits, times = audit_records(engine, runs), runtimes(engine, names)
    for rec in tqdm(records, desc="run pages", unit="run", disable=not progress):
        name = rec["name"]
        data = RunData(
            rec,
            evs[evs["run"] == name],
            epochs[epochs["run"] == name],
            ckpts[ckpts["run"] == name],
            [a for a in audits if a["run"] == name],
            times.get(name, ""),
            on_boards.get(name, []),
        )
        pages[run_file(name)] = (name, run_page(engine, data, img))
    pages["paper.html"] = ("The paper's tables", tables_page(engine, runs))
    pages["figures.html"] = ("Figure 2", figures_page(engine, records, img))
    pages["index.html"] = ("bench results", _index(engine, found, names, len(evs), source))
    nav = [("index.html", "Overview")]
    nav += [
        (
            board_file(d, e, board_norm(s)),
            f"{d} ε={e:.4g}" + ("" if board_norm(s) == LINF else " L2"),
        )
        for d, e, s in found
    ]
    nav += [("paper.html", "Paper tables"), ("figures.html", "Figure 2")]
    (root / "style.css").write_text(CSS)
    for file, (title, body) in pages.items():
        (root / file).write_text(page(title, body, nav, file), encoding="utf-8")
    (root / MARKER).write_text("written by bench report; the whole folder is replaced\n")


def _board_pages(
    engine: Engine, found: list, names: list[str], runs: list[str] | None, pages: Pages
) -> dict[str, list[tuple[str, str]]]:
    """Add the leaderboard pages; returns run -> the (file, title) of the boards it is on."""
    groups = seed_groups(engine, names) if names else {}
    flags = audit_flags(engine, runs)
    on_boards: dict[str, list[tuple[str, str]]] = {}
    for dataset, eps, sub in found:
        norm = board_norm(sub)
        file, title = board_file(dataset, eps, norm), board_title(dataset, eps, norm)
        pages[file] = (f"Leaderboard: {title}", board_page(sub, groups, flags))
        for run in dict.fromkeys(sub["run"]):
            on_boards.setdefault(str(run), []).append((file, title))
    return on_boards


def _index(engine: Engine, found: list, names: list[str], n_evals: int, source: str) -> str:
    runs = runs_frame(engine)
    runs = runs[runs["run"].isin(names)] if not runs.empty else runs
    parts = [
        "<h1>Results</h1>",
        f"<p class='lede'>{len(runs)} runs and {n_evals} evaluations of their current "
        f"checkpoints{', from ' + esc(source) if source else ''}. Leaderboards rank them per "
        "data set and eps; each run's page has its training curves, attack ladder, per-point "
        "agreement between attacks, checkpoint hashes, audit, spec and provenance.</p>",
        "<h2>Leaderboards</h2>",
    ]
    if not found:
        parts.append(
            "<p>No evaluations yet: <code>bench demo</code> or <code>bench run</code>.</p>"
        )
    cards = []
    for dataset, eps, sub in found:
        labels = "".join(f"<div>{data_badges(x)}</div>" for x in sorted(set(sub["data_label"])))
        cards.append(
            f'<div class="card"><a href="{esc(board_file(dataset, eps, board_norm(sub)))}"><b>'
            f"{esc(board_title(dataset, eps, board_norm(sub)))}</b></a><span class='sub'>"
            f"{sub['run'].nunique()} runs</span>{labels}</div>"
        )
    parts.append(f"<div class='cards'>{''.join(cards)}</div>")
    parts.append(
        "<h2>The paper</h2><p><a href='paper.html'>Tables 2–5</a> (as <code>bench table "
        "--paper</code> prints them) · <a href='figures.html'>Figure 2</a> (as <code>bench "
        "plot</code> draws it)</p><h2>Runs</h2>"
    )
    parts.append(_runs_table(runs))
    return "\n".join(parts)


def _runs_table(runs: pd.DataFrame) -> str:
    if runs.empty:
        return "<p>No runs yet.</p>"
    cols = [
        Col("Run"),
        Col("Defense"),
        Col("Model"),
        Col("Data set"),
        Col("eps", num=True),
        Col("Epochs"),
        Col("Best PGD-20 %", "the per-epoch monitor's best", True),
        Col("Status"),
    ]
    rows = []
    for r in runs.to_dict("records"):
        best, eps = r["best PGD-20 %"], r["eps"]
        rows.append(
            [
                Cell(f'<a href="{esc(run_file(r["run"]))}">{esc(r["run"])}</a>', sort=r["run"]),
                cell(r["defense"]),
                cell(r["model"]),
                cell(r["dataset"]),
                cell("—" if eps is None else f"{eps:.4g}", sort=eps, cls="num"),
                cell(r["epochs"]),
                cell("—" if best is None or pd.isna(best) else f"{best:.2f}", sort=best, cls="num"),
                cell(r["status"]),
            ]
        )
    return table(cols, rows, table_id="runs")
