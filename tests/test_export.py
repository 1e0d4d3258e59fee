"""``bench export``: a results bundle whose every number can be recomputed from its masks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from bench.cli import app
from bench.eval.perpoint import wilson_interval
from bench.report.bundle import claims
from bench.store import db as bdb

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _cell(defense: str, correct: int, n: int = 1000) -> dict:
    lo, hi = wilson_interval(correct, n)
    return {
        "defense": defense,
        "run": defense,
        "attack": "pgd20",
        "checkpoint": "best",
        "accuracy": 100 * correct / n,
        "ci_low": 100 * lo,
        "ci_high": 100 * hi,
        "n": n,
        "paper": None,
        "diff": None,
    }


def test_claims_need_intervals_apart() -> None:
    cells = [_cell("mart", 600), _cell("trades", 590), _cell("standard", 500)]
    verdicts = {c["claim"]: c["verdict"] for c in claims(cells, "best")}
    assert verdicts["mart > trades"].startswith("not resolved")  # 60.0 vs 59.0 on 1000
    assert verdicts["mart > standard"] == "holds outside the intervals"
    reversed_ = claims([_cell("mart", 400), _cell("trades", 600)], "best")
    assert reversed_[0]["verdict"].startswith("reversed")


def test_export_bundle_matches_the_database(tmp_path: Path) -> None:
    db = tmp_path / "golden.sqlite"
    shutil.copy(FIXTURES / "golden.sqlite", db)
    out, md = tmp_path / "ref.json", tmp_path / "ref.md"
    res = CliRunner().invoke(
        app,
        [
            "export",
            "--out",
            str(out),
            "--markdown",
            str(md),
            "--db",
            str(db),
            "--note",
            "fixture numbers",
        ],
    )
    assert res.exit_code == 0, res.output
    b = json.loads(out.read_text())
    engine = bdb.connect(db)
    with Session(engine) as s:
        shas = {(c.run.name, c.tag): c.sha256 for c in s.scalars(select(bdb.Checkpoint))}
        curves = {r.name: sorted(m.epoch for m in r.epochs) for r in s.scalars(select(bdb.Run))}
    assert b["runs"] and b["note"] == "fixture numbers"
    assert any(curves.values())  # the fixture has per-epoch rows: the bundle carries them
    for r in b["runs"]:
        assert [e["epoch"] for e in r["epochs"]] == curves[r["name"]]
        assert all(e["n_monitor"] > 0 and 0 <= e["robust_acc"] <= 1 for e in r["epochs"])
    for r in b["runs"]:
        for tag, c in r["checkpoints"].items():
            assert shas[(r["name"], tag)] == c["sha256"]
        for e in r["evaluations"]:  # every count is the popcount of its stored mask
            mask = bdb.unpack_mask(bytes.fromhex(e["robust_mask_hex"]), e["n"])
            assert int(mask.sum()) == e["correct"]
            assert e["sha256"] == r["checkpoints"][e["checkpoint"]]["sha256"]
    for c in b["cells"]:
        if c["n"]:
            assert c["ci_low"] <= c["accuracy"] <= c["ci_high"]
    text = md.read_text()
    assert "ours − paper" in text and "## Runs" in text


def test_export_of_an_empty_database_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "empty.sqlite"
    bdb.connect(db)
    res = CliRunner().invoke(app, ["export", "--out", str(tmp_path / "x.json"), "--db", str(db)])
    assert res.exit_code != 0 and "no runs to export" in res.output
    assert not (tmp_path / "x.json").exists()
