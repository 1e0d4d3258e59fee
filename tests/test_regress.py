"""`bench regress` passes on the committed baseline and fails when an attack is broken."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from conftest import requires_mnist
from typer.testing import CliRunner

import attacks
from bench.cli import app
from bench.core.constants import REGRESS_BASELINE


@pytest.fixture
def tiny_baseline(tmp_path: Path) -> Path:
    """The committed baseline cut to its tiny checkpoint (fast), in a temporary folder."""
    spec = json.loads(REGRESS_BASELINE.read_text())
    spec["checkpoints"] = [e for e in spec["checkpoints"] if e["model"] == "tiny-cnn"]
    for e in spec["checkpoints"]:
        shutil.copy(REGRESS_BASELINE.parent / e["file"], tmp_path / e["file"])
    path = tmp_path / "attacks.json"
    path.write_text(json.dumps(spec))
    return path


@requires_mnist
def test_the_committed_baseline_holds(tiny_baseline: Path) -> None:
    res = CliRunner().invoke(app, ["regress", "--baseline", str(tiny_baseline)])
    assert res.exit_code == 0, res.output
    assert "0 regressions" in res.output


@requires_mnist
def test_a_pgd_stepping_down_the_gradient_is_caught(tiny_baseline: Path, monkeypatch) -> None:
    broken = dataclasses.replace(attacks.PRESETS.get("pgd20"), step_fraction=-0.1)
    monkeypatch.setitem(attacks.PRESETS._items, "pgd20", broken)
    res = CliRunner().invoke(app, ["regress", "--baseline", str(tiny_baseline)])
    assert res.exit_code == 1, res.output
    assert "| pgd20 |" in res.output and "1 regressions" in res.output


@requires_mnist
def test_update_rewrites_and_says_so(tiny_baseline: Path) -> None:
    before = json.loads(tiny_baseline.read_text())
    res = CliRunner().invoke(app, ["regress", "--update", "--baseline", str(tiny_baseline)])
    assert res.exit_code == 0 and "baseline rewritten" in res.output
    after = json.loads(tiny_baseline.read_text())
    assert after["checkpoints"][0]["masks"] == before["checkpoints"][0]["masks"]
