"""`bench report` (the static site) and `bench plot curves`, without a browser: files,
links, escaping, the numbers behind the pages, and bad input. The browser checks are in
tests/test_site_browser.py."""

from __future__ import annotations

import re
import shutil
import sqlite3
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
from sqlalchemy.orm import Session
from tests_helpers import synthetic_curves
from typer.testing import CliRunner

from bench.cli import app
from bench.eval.perpoint import current_evaluations
from bench.report.boards import agreement_frames, leaderboard_frame, run_records
from bench.report.frames import evaluations_frame, paper_frame
from bench.report.runplots import ladder_order
from bench.report.site import build_site
from bench.report.site.paper import figure_settings, figures_page
from bench.spec import experiments as bexp
from bench.store import db as bdb

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "golden.sqlite"
MART0 = "mnist-smallcnn-mart-paper-4.2-mnist-e50-s0-5eb2ad"
DYNAMIC = "mnist-smallcnn-dynamic-paper-4.2-mnist-e50-s0-aa3631"
ZOO = "zoo-cifar10-jpeg-Wang2020Improving-42d4bb"
runner = CliRunner()


def golden(tmp_path: Path) -> Path:
    shutil.copy(FIXTURE, tmp_path / "g.sqlite")  # connecting writes (WAL, new columns)
    return tmp_path / "g.sqlite"


def test_report_writes_a_linked_offline_site(tmp_path: Path) -> None:
    db = golden(tmp_path)
    con = sqlite3.connect(db)  # markup in a data label must come out as text
    con.execute("UPDATE runs SET data_label = '<b>mnist</b> & \"q\"' WHERE name = ?", (DYNAMIC,))
    con.execute(
        "UPDATE evaluations SET data_label = '<b>mnist</b> & \"q\"' WHERE run_id = "
        "(SELECT id FROM runs WHERE name = ?)",
        (DYNAMIC,),
    )
    con.commit()
    con.close()
    out = tmp_path / "site"
    args = ["report", "--out", str(out), "--db", str(db), "--no-progress"]
    res = runner.invoke(app, [*args, "--run", MART0, "--run", DYNAMIC, "--run", ZOO])
    assert res.exit_code == 0, res.output
    pages = {p.name: p.read_text() for p in out.glob("*.html")}
    assert {"index.html", "paper.html", "figures.html", "board-mnist-eps0.3.html"} <= set(pages)
    assert "board-cifar10-jpeg-eps0.0313725.html" in pages and f"run-{MART0}.html" in pages
    for name, text in pages.items():
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), name  # no network
        assert "<script src" not in text and "@import" not in text and "@font-face" not in text
        for ref in re.findall(r"""(?:src|href)="([^"#:]+)\"""", text):
            assert (out / ref).is_file(), f"{name} links to missing {ref}"
        assert "<b>mnist</b>" not in text
    assert "&lt;b&gt;mnist&lt;/b&gt; &amp; &quot;q&quot;" in pages[f"run-{DYNAMIC}.html"]
    board = pages["board-mnist-eps0.3.html"]
    assert 'class="flagged"' in board and "fgsm-ge-pgd" in board  # marked, not hidden
    assert (
        "partial copy" in board
        and "offline stand-in" in pages["board-cifar10-jpeg-eps0.0313725.html"]
    )
    run_page = pages[f"run-{MART0}.html"]
    for part in ("Training curves", "Attack ladder", "Per-point agreement", "sha256", "audit"):
        assert part in run_page
    assert "Test points" in run_page and "test points (the first of the test set)" in run_page
    evs = evaluations_frame(bdb.connect(db), [MART0])
    ladder = run_page.split("Attack ladder")[1].split("Per-point agreement")[0]
    rows = [f'title="{a}"' for a in ladder_order(evs)]  # the table in the bars' order
    assert all(r in ladder for r in rows) and sorted(rows, key=ladder.index) == rows
    with Session(bdb.connect(db)) as s:
        for c in bdb.find_run(s, MART0).checkpoints:
            assert c.sha256 in run_page  # the full hash, not a prefix
    assert all(mpimg.imread(p).std() > 0.05 for p in (out / "img").glob("*.png"))


def test_report_replaces_its_own_site_and_refuses_other_folders(tmp_path: Path) -> None:
    db, out = golden(tmp_path), tmp_path / "site"
    args = ["report", "--db", str(db), "--no-progress", "--run", ZOO]
    assert runner.invoke(app, [*args, "--out", str(out)]).exit_code == 0
    (out / "stale.html").write_text("old")
    res = runner.invoke(app, [*args, "--out", str(out)])
    assert res.exit_code == 0 and not (out / "stale.html").exists()
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    res = runner.invoke(app, [*args, "--out", str(other)])
    assert res.exit_code == 2 and "not made by bench report" in res.output
    assert [p.name for p in other.iterdir()] == ["notes.txt"]
    res = runner.invoke(app, [*args, "--run", "no-such-run", "--out", str(tmp_path / "new")])
    assert res.exit_code == 2 and "no-such-run" in res.output
    assert not (tmp_path / "new").exists() and not list(tmp_path.glob(".new*"))


def test_report_never_touches_the_users_files_beside_its_site(tmp_path: Path) -> None:
    """Names the old code used for its own scratch folders, planted by the user beside
    ``--out``, survive any number of rebuilds."""
    db, out = golden(tmp_path), tmp_path / "site"
    args = ["report", "--db", str(db), "--no-progress", "--run", ZOO, "--out", str(out)]
    planted = [tmp_path / ".site.old" / "important.txt", tmp_path / ".site.x" / "mine.txt"]
    for p in planted:
        p.parent.mkdir()
        p.write_text("keep")
    for _ in range(2):
        assert runner.invoke(app, args).exit_code == 0
    assert all(p.read_text() == "keep" for p in planted)
    left = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(db.name))
    assert left == [".site.old", ".site.x", "site"], left  # no scratch folder left behind


def test_leaderboard_numbers_are_the_paper_tables_numbers(tmp_path: Path) -> None:
    engine = bdb.connect(golden(tmp_path))
    board = leaderboard_frame(engine).set_index(["run", "checkpoint", "attack"])
    key = ["run", "checkpoint", "attack"]
    frames = {t: paper_frame(engine, t, autoattack=t == 2) for t in (2, 4)}
    t2, t4 = (frames[t].set_index(key)["paper"].dropna() for t in (2, 4))
    for frame in frames.values():
        for r in frame.dropna(subset=["accuracy"]).itertuples():
            ours = board.loc[(r.run, r.checkpoint, r.attack)]
            assert ours["accuracy"] == r.accuracy and ours["n"] == r.n
            want = t4.get((r.run, r.checkpoint, r.attack), t2.get((r.run, r.checkpoint, r.attack)))
            assert ours["paper"] == want or (np.isnan(ours["paper"]) and want is None)
    assert len(t4) > 0
    # transfer: a point is robust only if no transfer attack broke it
    with Session(engine) as s:
        _, evs = current_evaluations(s, MART0, "best")
        masks = [e.robust() for e in evs if e.attack.startswith("transfer-")]
    assert len(masks) == 4
    worst = 100 * np.logical_and.reduce(masks).mean()
    assert board.loc[(MART0, "best", "transfer"), "accuracy"] == worst
    assert worst <= min(100 * m.mean() for m in masks)


def test_agreement_counts_come_from_the_masks(tmp_path: Path) -> None:
    engine = bdb.connect(golden(tmp_path))
    per, pairs = agreement_frames(engine, MART0, "best")
    with Session(engine) as s:
        _, evs = current_evaluations(s, MART0, "best")
        masks = {e.attack: e.robust() for e in reversed(evs)}
    parts = ("apgd-ce", "apgd-t", "fab-t", "square")  # stored as AutoAttack's four parts
    masks.setdefault("autoattack", np.logical_and.reduce([masks[p] for p in parts]))
    clean = masks["clean"]
    assert "apgd-ce" not in set(per["attack"]) and "autoattack" in set(per["attack"])
    for r in per.itertuples():
        broken = clean & ~masks[r.attack]
        others = [clean & ~masks[a] for a in per["attack"] if a != r.attack]
        assert r.broken == broken.sum() and r.robust == masks[r.attack].sum()
        assert r.only == (broken & ~np.logical_or.reduce(others)).sum() <= r.broken
    assert per["only"].sum() > 0 and np.diag(pairs.to_numpy()).sum() == 0
    b = per.set_index("attack")["broken"]
    assert pairs.loc["autoattack", "fgsm"] - pairs.loc["fgsm", "autoattack"] == (
        b["autoattack"] - b["fgsm"]
    )


def test_plot_curves_writes_a_png_with_its_caption(tmp_path: Path) -> None:
    db, out = str(golden(tmp_path)), tmp_path / "fig" / "curves.png"
    seed1 = MART0.replace("-s0-5eb2ad", "-s1-077f90")
    res = runner.invoke(app, ["plot", "curves", MART0, seed1, "--db", db, "--out", str(out)])
    assert res.exit_code == 0, res.output
    img = mpimg.imread(out)
    assert img.shape[1] > 2 * img.shape[0] and img.std() > 0.05  # three panels, not blank
    caption = out.with_suffix(".txt").read_text()
    assert MART0 in caption and seed1 in caption and "partial copy" in caption
    assert "best = epoch 48" in caption and "first 10000 test points" in caption
    # what the two runs share is said once, before them; each then gives its checkpoints
    assert caption.count("partial copy") == 1 and "All 2 runs: data mnist" in caption
    assert f"{MART0}: checkpoints best = epoch 48" in caption
    for bad, msg in (
        (["nope"], "no run named 'nope'"),
        ([], "name at least one run"),
        ([ZOO], "no finished epoch"),
        ([MART0, "--out", str(tmp_path / "x.jpg")], "name it *.png"),
    ):
        res = runner.invoke(app, ["plot", "curves", *bad, "--db", db])
        assert res.exit_code == 2 and msg in res.output, res.output
    res = runner.invoke(app, ["plot", "fig2-ablation", MART0, "--db", db])
    assert res.exit_code == 2 and "takes no run names" in res.output


def test_figure_2_is_drawn_where_its_own_runs_exist(tmp_path: Path) -> None:
    engine = bdb.connect(tmp_path / "f.sqlite")
    tiny = bexp.Overrides(
        model="tiny-cnn", dataset="mnist", epochs=1, train_subset=128, test_subset=32, train_steps=1
    )
    lam = bexp.expand("fig2-lambda", tiny)
    plain = bexp.expand("table2-mnist", bexp.Overrides(**{**vars(tiny), "only": ("mart",)}))
    synthetic_curves(engine, plain)  # a plain MART run (in fig2-ablation too) is Table 2's
    assert figure_settings(run_records(engine)) == []
    synthetic_curves(engine, lam[:3])  # lam 0.5, 1 and 2: the figure's own runs
    found = figure_settings(run_records(engine))
    assert [(name, len(jobs)) for name, _, jobs in found] == [("fig2-lambda", len(lam))]
    html = figures_page(engine, run_records(engine), tmp_path / "img")
    assert "--train-steps 1" in html and "run(s) missing or unfinished" in html
    assert mpimg.imread(tmp_path / "img" / "fig0" / "fig2-lambda.png").std() > 0.05


@pytest.mark.parametrize("runs", [None, []])
def test_an_empty_database_still_gives_a_site(tmp_path: Path, runs) -> None:
    engine = bdb.connect(tmp_path / "empty.sqlite")
    index = build_site(engine, tmp_path / "site", runs=runs)
    assert "No evaluations yet" in index.read_text()
    assert "No evaluations for Table 2" in (tmp_path / "site" / "paper.html").read_text()
