"""Tables 2-4 renderers, exports and the audit column, on a database filled by hand."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from bench.cli import app
from bench.core.paper import paper_number
from bench.report.frames import paper_frame
from bench.report.render import render_paper
from bench.store import db as bdb

EPS_C, EPS_M = 8 / 255, 0.3


def add_run(
    s: Session,
    name: str,
    defense: str,
    model: str,
    dataset: str,
    eps: float,
    cells: dict[tuple[str, str], int],
    n: int = 200,
    preset: str = "paper-4.2-mnist",
) -> bdb.Run:
    """A run whose (checkpoint, attack) evaluations have the given numbers of correct points."""
    run = bdb.Run(
        key=name,
        name=name,
        defense=defense,
        model=model,
        dataset=dataset,
        preset=preset,
        spec={"epochs": 3},
        seed=0,
        run_dir="",
        n_train=500,
        data_label=f"{dataset} (test)",
        status="done",
    )
    s.add(run)
    s.flush()
    for tag, epoch in (("best", 2), ("last", 3)):
        s.add(
            bdb.Checkpoint(
                run_id=run.id, tag=tag, epoch=epoch, path="", sha256=tag * 4, robust_acc=0.0
            )
        )
    for i, ((tag, atk), correct) in enumerate(cells.items()):
        mask = np.zeros(n, bool)
        mask[:correct] = True
        s.add(
            bdb.Evaluation(
                key=f"{name}-{i}",
                run_id=run.id,
                checkpoint=tag,
                checkpoint_epoch=2 if tag == "best" else 3,
                checkpoint_sha256=tag * 4,
                attack=atk,
                attack_params={"eps": eps, "attack": atk},
                dataset=dataset,
                data_label=f"{dataset} (test)",
                n=n,
                correct=correct,
                accuracy=correct / n,
                seconds=1.0,
                seed=0,
                robust_mask=bdb.pack_mask(mask),
            )
        )
    return run


@pytest.fixture
def engine(tmp_path: Path):
    eng = bdb.connect(tmp_path / "t.sqlite")
    with Session(eng) as s:
        mart = add_run(
            s,
            "mnist-mart",
            "mart",
            "smallcnn",
            "mnist",
            EPS_M,
            {
                ("best", "clean"): 196,
                ("best", "fgsm"): 190,
                ("best", "pgd20"): 180,
                ("best", "transfer-fgsm"): 194,
                ("best", "transfer-pgd20"): 193,
                ("last", "transfer-pgd20"): 150,
                ("best", "apgd-ce"): 178,
                ("best", "apgd-t"): 177,
                ("best", "fab-t"): 177,
                ("best", "square"): 177,
            },
        )
        add_run(
            s,
            "cifar-trades",
            "trades",
            "wrn-34-10",
            "cifar10",
            EPS_C,
            {
                ("best", "clean"): 170,
                ("best", "fgsm"): 130,
                ("best", "pgd20"): 112,
                ("last", "pgd20"): 100,
                ("best", "pgd100"): 110,
                ("last", "pgd100"): 98,
            },
            preset="mart-code-wrn",
        )
        s.add(
            bdb.AuditFlag(
                run_id=mart.id,
                checkpoint="best",
                checkpoint_sha256="best" * 4,
                check="zero-gradients",
                status="flag",
                n=200,
                value=0.4,
                detail="80 of 200 points",
            )
        )
        s.add(
            bdb.AuditFlag(
                run_id=mart.id,
                checkpoint="best",
                checkpoint_sha256="best" * 4,
                check="spsa-not-below-pgd",
                status="not-evaluated",
                n=200,
                detail="needs spsa",
            )
        )
        s.commit()
    return eng


def test_table3_numbers_paper_and_diff(engine) -> None:
    f = paper_frame(engine, 3)
    assert set(f["run"]) == {"mnist-mart"}  # the CIFAR run has no transfer rows
    cell = f[(f["checkpoint"] == "best") & (f["attack"] == "transfer-pgd20")].iloc[0]
    assert cell["accuracy"] == pytest.approx(96.5) and cell["paper"] == 96.97
    assert cell["diff"] == pytest.approx(96.5 - 96.97)
    assert cell["audit_flags"] == "zero-gradients"
    missing = f[(f["checkpoint"] == "best") & (f["attack"] == "transfer-cw20")].iloc[0]
    assert np.isnan(missing["accuracy"]) and np.isnan(missing["diff"])  # never a number
    last = f[(f["checkpoint"] == "last") & (f["attack"] == "transfer-pgd20")].iloc[0]
    assert np.isnan(last["paper"])  # the paper's Table 3 is for the best checkpoint
    md = render_paper(engine, 3)
    assert "Table 3, MNIST" in md and "PGD-20 (transfer)" in md
    assert "96.50 / 75.00 (96.97, -0.47)" in md
    assert "— / —" in md  # transfer-cw20 not evaluated
    assert "| flag: zero-gradients |" in md  # compact; which run, checkpoint and what was
    assert "`mnist-mart` (best) not evaluated: spsa-not-below-pgd" in md  # not run: notes
    assert "Audit flag `zero-gradients`" in md and "docs/audit.md" in md
    assert "500 training images, 200 test points" in md  # provenance under the table


def test_table4_best_last_ci_and_paper(engine) -> None:
    f = paper_frame(engine, 4)
    assert set(f["run"]) == {"cifar-trades"}  # Table 4 is CIFAR-10 only
    last = f[(f["checkpoint"] == "last") & (f["attack"] == "pgd100")].iloc[0]
    assert last["paper"] == 51.27 and last["diff"] == pytest.approx(49.0 - 51.27)
    assert paper_number(4, "cifar10", "trades", "pgd100", "last", EPS_C, "resnet18") is None
    md = render_paper(engine, 4, ci=True)
    assert "PGD-100 best" in md and "PGD-100 last" in md
    # 98/200 = 49.00%, Wilson 95%: [42.2, 55.9]
    assert "49.00 [42.2, 55.9] (51.27, -2.27)" in md
    # CW not evaluated: ours is "—", the paper's number stands alone, no difference.
    assert "CW-inf best" in md and "— (51.98)" in md and "— (51.98," not in md
    lo, hi = f.loc[
        (f["checkpoint"] == "last") & (f["attack"] == "pgd100"), ["ci_low", "ci_high"]
    ].iloc[0]
    assert (lo, hi) == pytest.approx((42.1563, 55.8814), abs=1e-3)  # by hand


def test_autoattack_column_from_parts(engine) -> None:
    f = paper_frame(engine, 2, autoattack=True)
    aa = f[(f["run"] == "mnist-mart") & (f["attack"] == "autoattack")]
    best = aa[aa["checkpoint"] == "best"].iloc[0]
    assert best["correct"] == 177 and best["n"] == 200  # AND of the four parts
    other = f[(f["run"] == "cifar-trades") & (f["attack"] == "autoattack")]
    assert len(other) == 2 and other["accuracy"].isna().all()  # not evaluated: NaN, not 0
    assert "AutoAttack" in render_paper(engine, 2, autoattack=True)


@pytest.mark.parametrize("table", [2, 3, 4])
def test_exports_parse(engine, table: int) -> None:
    csv = pd.read_csv(io.StringIO(render_paper(engine, table, "csv")))
    js = pd.DataFrame(json.loads(render_paper(engine, table, "json")))
    assert len(csv) == len(js) > 0
    assert list(csv.columns) == list(js.columns)
    num = csv.dropna(subset=["accuracy", "paper"])
    assert np.allclose(num["diff"], num["accuracy"] - num["paper"])


def test_cli_paper_tables(engine, tmp_path: Path) -> None:
    db = str(tmp_path / "t.sqlite")
    runner = CliRunner()
    res = runner.invoke(app, ["table", "--paper", "--table", "3", "--format", "csv", "--db", db])
    assert res.exit_code == 0, res.output
    assert pd.read_csv(io.StringIO(res.output))["attack"].str.startswith("transfer-").all()
    res = runner.invoke(app, ["table", "--paper", "--db", db])  # Table 2, the one layout
    assert res.exit_code == 0 and "| Audit" in res.output  # the audit column and its notes
    assert "flag: zero-gradients" in res.output
    assert "Audit flag `zero-gradients` on `mnist-mart` (best)" in res.output
    assert "90.00 / — (96.48, -6.48)" in res.output  # MART PGD-20: best 180/200, last missing
    res = runner.invoke(app, ["table", "--paper", "--table", "4", "--ci", "--db", db])
    assert res.exit_code == 0 and "[42.2, 55.9]" in res.output
    res = runner.invoke(app, ["table", "--paper", "--table", "7", "--db", db])
    assert res.exit_code == 2 and "valid: 2, 3, 4" in res.output
