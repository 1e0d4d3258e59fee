"""Every benchmark script still imports and parses its arguments: they are run by hand, so
a refactoring that moves what they import would otherwise go unnoticed until someone
needs the figure (precision_curves.py had lost its ``epoch_frame`` that way)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted((ROOT / "benchmarks").glob("*.py"))
SCRIPTS = [p.name for p in FILES if '__name__ == "__main__"' in p.read_text()]
HELPERS = [p.name for p in FILES if p.name not in SCRIPTS]  # imported by the scripts


def test_every_benchmark_is_listed() -> None:
    assert "speed.py" in SCRIPTS and "official_loop.py" in HELPERS and len(SCRIPTS) >= 9


@pytest.mark.parametrize("helper", HELPERS)
def test_a_benchmark_helper_imports(helper: str) -> None:
    spec = importlib.util.spec_from_file_location(helper[:-3], ROOT / "benchmarks" / helper)
    assert spec is not None and spec.loader is not None
    spec.loader.exec_module(importlib.util.module_from_spec(spec))


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_benchmark_script_answers_help(script: str, tmp_path: Path) -> None:
    env = {**os.environ, "BENCH_HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    res = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--help"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "usage:" in res.stdout
