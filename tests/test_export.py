"""``bench export``: a results bundle whose every number can be recomputed from its masks."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from bench.cli import app
from bench.eval.perpoint import wilson_interval
from bench.report.bundle import claims
from bench.store import db as bdb

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _cell(defense: str, correct: int, n: int = 1000, run: str = "") -> dict:
    lo, hi = wilson_interval(correct, n)
    return {
        "defense": defense,
        "run": run or defense,
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


def test_claims_over_seeds_need_every_seed_apart() -> None:
    """Two MART seeds: the claim holds only if both are above Standard's intervals; the
    difference is of the means, and each seed's number is kept."""
    mart = [_cell("mart", 700, run="m0"), _cell("mart", 620, run="m1")]
    out = claims([*mart, _cell("standard", 500)], "best")[0]
    assert out["verdict"] == "holds outside the intervals of every seed"
    assert abs(out["difference"] - (66.0 - 50.0)) < 1e-9
    assert out["seeds"] == {"mart": [70.0, 62.0], "standard": [50.0]}
    mixed = [_cell("mart", 700, run="m0"), _cell("mart", 505, run="m1"), _cell("standard", 500)]
    assert claims(mixed, "best")[0]["verdict"] == "not resolved: the seeds' intervals overlap"
    other = [{**c, "attack": "autoattack"} for c in [*mart, _cell("standard", 800)]]
    assert claims(other, "best") == []  # judged on PGD-20 unless told
    assert claims(other, "best", "autoattack")[0]["verdict"].startswith("reversed")


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
    seeds = {r["name"]: r["spec"].get("seed") for r in b["runs"]}
    assert all(c["seed"] == seeds[c["run"]] for c in b["cells"])  # the fixture: MART s0, s1
    assert "mart (seed 0)" in text and "mart (seed 1)" in text


def _copy_transfer(db: Path, source: str, target: str) -> None:
    """Give ``target`` the transfer evaluations of ``source`` (its own checkpoints)."""
    with sqlite3.connect(db) as con:
        ids = dict(con.execute("select name, id from runs where name in (?, ?)", (source, target)))
        con.execute(
            "insert into evaluations (key, run_id, checkpoint, checkpoint_epoch, "
            "checkpoint_sha256, attack, attack_params, dataset, data_label, n, correct, "
            "accuracy, seconds, seed, device, provenance, robust_mask, created_at) "
            "select e.key || '-copy', ?, e.checkpoint, c.epoch, c.sha256, e.attack, "
            "e.attack_params, e.dataset, e.data_label, e.n, e.correct - 50, "
            "(e.correct - 50) * 1.0 / e.n, e.seconds, e.seed, e.device, e.provenance, "
            "e.robust_mask, e.created_at from evaluations e join checkpoints c "
            "on c.run_id = ? and c.tag = e.checkpoint "
            "where e.run_id = ? and e.attack like 'transfer-%'",
            (ids[target], ids[target], ids[source]),
        )


def test_export_of_table_3_judges_the_claims_on_transfer(tmp_path: Path) -> None:
    db = tmp_path / "golden.sqlite"
    shutil.copy(FIXTURES / "golden.sqlite", db)
    out, md = tmp_path / "t3.json", tmp_path / "t3.md"
    mnist = ["mnist-smallcnn-mart-paper-4.2-mnist-e50-s0-5eb2ad"]
    mnist.append("mnist-smallcnn-standard-paper-4.2-mnist-e50-s0-b609c1")
    _copy_transfer(db, *mnist)  # the fixture has Table 3 for MART only
    args = ["export", *mnist, "--table", "3", "--out", str(out), "--markdown", str(md)]
    res = CliRunner().invoke(app, [*args, "--db", str(db)])
    assert res.exit_code == 0, res.output
    b = json.loads(out.read_text())
    assert b["table"] == 3 and b["rank_attack"] == "transfer-pgd20"
    attacks = {c["attack"] for c in b["cells"]}
    assert attacks == {"transfer-fgsm", "transfer-pgd10", "transfer-pgd20", "transfer-cw20"}
    assert [c["attack"] for c in b["claims"]["best"]] == ["transfer-pgd20"]
    assert "Table 3 layout" in md.read_text() and "Ranking on transfer-pgd20" in md.read_text()
    bad_args = ["export", *mnist, "--table", "5", "--out", str(tmp_path / "x.json")]
    bad = CliRunner().invoke(app, [*bad_args, "--db", str(db)])
    assert bad.exit_code != 0 and "paper tables 2, 3" in bad.output
    assert not (tmp_path / "x.json").exists()


def test_export_of_an_empty_database_is_a_clear_error(tmp_path: Path) -> None:
    db = tmp_path / "empty.sqlite"
    bdb.connect(db)
    res = CliRunner().invoke(app, ["export", "--out", str(tmp_path / "x.json"), "--db", str(db)])
    assert res.exit_code != 0 and "no runs to export" in res.output
    assert not (tmp_path / "x.json").exists()
