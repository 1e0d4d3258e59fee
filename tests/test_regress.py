"""`bench regress` passes on the committed baseline and fails when an attack is broken."""

from __future__ import annotations

import dataclasses
import functools
import json
import shutil
from pathlib import Path

import pytest
from conftest import requires_mnist
from typer.testing import CliRunner

import attacks
from attacks.autoattack import STANDARD_ORDER
from bench.cli import app
from bench.core.constants import REGRESS_BASELINE
from bench.jobs import regress_train
from bench.store.db import unpack_mask
from defenses import mart, trades


def _tiny(folder: Path, autoattack: bool) -> Path:
    """The committed baseline cut to its tiny checkpoint, in a temporary folder; without
    AutoAttack's parts unless asked (APGD-T is most of the time)."""
    spec = json.loads(REGRESS_BASELINE.read_text())
    spec["checkpoints"] = [e for e in spec["checkpoints"] if e["model"] == "tiny-cnn"]
    for e in spec["checkpoints"]:
        shutil.copy(REGRESS_BASELINE.parent / e["file"], folder / e["file"])
        if not autoattack:
            e["attacks"] = [a for a in e["attacks"] if a not in STANDARD_ORDER]
            e["masks"] = {k: v for k, v in e["masks"].items() if k in e["attacks"]}
    path = folder / "attacks.json"
    path.write_text(json.dumps(spec))
    return path


@pytest.fixture
def tiny_baseline(tmp_path: Path) -> Path:
    return _tiny(tmp_path, autoattack=False)


@requires_mnist
def test_the_committed_baseline_holds(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        app, ["regress", "--only", "attacks", "--baseline", str(_tiny(tmp_path, True))]
    )
    assert res.exit_code == 0, res.output
    assert "0 regressions" in res.output
    assert "| apgd-ce |" in res.output and "| apgd-t |" in res.output


def test_autoattack_masks_are_chained() -> None:
    """Each AutoAttack part's stored mask is cumulative: robust after clean and every part
    before it, as AutoAttack counts (so APGD-T's mask is the APGD-CE + APGD-T verdict)."""
    for e in json.loads(REGRESS_BASELINE.read_text())["checkpoints"]:
        masks = {k: unpack_mask(bytes.fromhex(v), e["n"]) for k, v in e["masks"].items()}
        before = masks["clean"]
        for part in (a for a in e["attacks"] if a in STANDARD_ORDER):
            assert not (masks[part] & ~before).any(), (e["file"], part)
            before = masks[part]
        assert masks["apgd-t"].sum() <= masks["pgd20"].sum() + 2, e["file"]


@requires_mnist
def test_a_pgd_stepping_down_the_gradient_is_caught(tiny_baseline: Path, monkeypatch) -> None:
    broken = dataclasses.replace(attacks.PRESETS.get("pgd20"), step_fraction=-0.1)
    monkeypatch.setitem(attacks.PRESETS._items, "pgd20", broken)
    res = CliRunner().invoke(
        app, ["regress", "--only", "attacks", "--baseline", str(tiny_baseline)]
    )
    assert res.exit_code == 1, res.output
    assert "| pgd20 |" in res.output and "1 regressions" in res.output


@requires_mnist
def test_update_rewrites_and_says_so(tiny_baseline: Path) -> None:
    before = json.loads(tiny_baseline.read_text())
    res = CliRunner().invoke(
        app, ["regress", "--only", "attacks", "--update", "--baseline", str(tiny_baseline)]
    )
    assert res.exit_code == 0 and "baseline rewritten" in res.output
    after = json.loads(tiny_baseline.read_text())
    assert after["checkpoints"][0]["masks"] == before["checkpoints"][0]["masks"]


@pytest.fixture
def training_baseline(tmp_path: Path):
    """The committed training baseline cut to one defense (two tiny runs)."""

    def make(defense: str) -> Path:
        spec = json.loads(regress_train.BASELINE.read_text())
        spec["defenses"] = [defense]
        path = tmp_path / f"training-{defense}.json"
        path.write_text(json.dumps(spec))
        return path

    return make


def _train_regress(path: Path):
    return CliRunner().invoke(
        app, ["regress", "--only", "training", "--training-baseline", str(path)]
    )


@requires_mnist
def test_the_training_baseline_holds(training_baseline) -> None:
    res = _train_regress(training_baseline("mart"))
    assert res.exit_code == 0, res.output
    assert "training: 4 checks, 0 regressions" in res.output


@requires_mnist
def test_mart_without_its_weight_term_is_caught(training_baseline, monkeypatch) -> None:
    monkeypatch.setattr(mart, "mart_loss", functools.partial(mart.mart_loss, weight=False))
    res = _train_regress(training_baseline("mart"))
    assert res.exit_code == 1, res.output
    assert "REGRESSION" in res.output and "epoch-1 loss" in res.output


@requires_mnist
def test_trades_with_beta_zero_is_caught(training_baseline, monkeypatch) -> None:
    orig = trades.trades_loss
    monkeypatch.setattr(trades, "trades_loss", lambda ln, la, y, beta: orig(ln, la, y, 0.0))
    res = _train_regress(training_baseline("trades"))
    assert res.exit_code == 1, res.output
    # Without its robust term TRADES is natural training: the robust accuracy falls too.
    assert any("pgd20" in line and "REGRESSION" in line for line in res.output.splitlines())
