"""Hostile input at the boundary: one short line, exit code 2, and nothing written.

Each case runs the real CLI (Typer's runner) against a database in a temporary folder and
checks the exit code, that the message is one line with no traceback, and that no run or
evaluation row appeared (or, for a broken database file, that its bytes are unchanged).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from bench.cli import app
from bench.store import db as bdb
from bench.store.checkpoints import load_state, save_state, save_weights, sha256

RUN = ["run", "--defense", "mart", "--model", "tiny-cnn", "--dataset", "mnist", "--no-eval"]
CASES = {
    "eps-inf": ([*RUN, "--eps", "inf"], "eps"),
    "eps-too-big": ([*RUN, "--eps", "1.5"], "eps"),
    "lam-text": ([*RUN, "--param", "lam=abc"], "lam must be a number"),
    "lam-nan": ([*RUN, "--param", "lam=nan"], "finite"),
    "lam-overflow": ([*RUN, "--param", "lam=1e400"], "finite"),
    "lam-negative": ([*RUN, "--param", "lam=-5"], ">= 0"),
    "eps-as-param": ([*RUN, "--param", "eps=0.5", "--eps", "0.1"], "--eps"),
    "param-unknown": ([*RUN, "--param", "nosuch=1"], "it takes"),
    "start-on-natural": (
        ["run", "--defense", "natural", "--model", "tiny-cnn", "--start", "normal", "--no-eval"],
        "has no parameter 'start'",
    ),
    "device-bogus": ([*RUN, "--device", "bogus"], "device"),
    "seeds-text": ([*RUN, "--seeds", "a,b"], "--seeds expects whole numbers"),
    "seeds-repeated": ([*RUN, "--seeds", "1,1"], "distinct seeds"),
    "nproc-zero": ([*RUN, "--nproc", "0"], "--nproc must be at least 1"),
    "nproc-with-executor": (
        [*RUN, "--nproc", "2", "--executor", "local"],
        "--nproc with --executor",
    ),
    "lr-inf": ([*RUN, "--lr", "inf"], "lr must be a finite number"),
    "milestone-zero": ([*RUN, "--milestones", "0,5"], "milestones are epochs"),
    "model-unknown": (["run", "--defense", "mart", "--model", "nosuch", "--no-eval"], "model"),
    "attack-unknown": ([*RUN[:-1], "--attacks", "pgd21"], "Did you mean"),
    "attack-param-bad": ([*RUN[:-1], "--attack-param", "pgd20.nosuch=1"], "it takes"),
    "attack-param-shape": ([*RUN[:-1], "--attack-param", "steps=3"], "ATTACK.KEY=VALUE"),
    "table-without-paper": (["table", "--table", "3"], "--paper"),
    "experiment-unknown-model": (
        ["experiment", "table2-mnist", "--model", "nosuch", "--dry-run"],
        "unknown model",
    ),
    "eval-unknown-run": (["eval", "nosuch-run"], "no run named"),
    "eval-no-checkpoint": (["eval", "nosuch-run", "--checkpoint", ","], "names no checkpoint"),
}
if not torch.cuda.is_available():
    CASES["device-cuda"] = ([*RUN, "--device", "cuda"], "CUDA is not available")


def _rows(db: Path) -> tuple[int, int]:
    engine = bdb.connect(db)
    with Session(engine) as s:
        runs = s.scalar(select(func.count()).select_from(bdb.Run))
        evs = s.scalar(select(func.count()).select_from(bdb.Evaluation))
    engine.dispose()
    return int(runs or 0), int(evs or 0)


def _check(result, needle: str) -> None:
    assert result.exit_code == 2, result.output
    text = result.output.strip()
    assert "Traceback" not in text
    assert needle in text, text
    assert len(text.splitlines()) <= 2 or "Usage" in text  # one line (Typer: a usage box)


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(name: str, tmp_path: Path) -> None:
    args, needle = CASES[name]
    db = tmp_path / "b.sqlite"
    before = _rows(db)
    result = CliRunner().invoke(app, [*args, "--db", str(db)])
    _check(result, needle)
    assert _rows(db) == before


@pytest.mark.parametrize(
    "content", [b"this is not a database" * 40, None], ids=["garbage", "folder"]
)
@pytest.mark.parametrize("cmd", [["table"], ["ls", "runs"], ["table", "--paper"]])
def test_a_broken_database_is_one_line_and_untouched(cmd, content, tmp_path: Path) -> None:
    db = tmp_path / "broken.sqlite"
    if content is None:
        db.mkdir()
    else:
        db.write_bytes(content)
    result = CliRunner().invoke(app, [*cmd, "--db", str(db)])
    _check(result, str(db.name))
    if content is not None:
        assert db.read_bytes() == content


def test_output_into_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    db = tmp_path / "ok.sqlite"
    bdb.connect(db).dispose()
    out = tmp_path / "no" / "such" / "t.md"
    result = CliRunner().invoke(app, ["table", "--db", str(db), "--output", str(out)])
    _check(result, "No such file")
    assert not out.exists()


@pytest.mark.parametrize("name", ["z?a.sqlite", "pc%41.sqlite", "sp ace#.sqlite"])
def test_database_file_names_are_taken_literally(name: str, tmp_path: Path) -> None:
    engine = bdb.connect(tmp_path / name)
    engine.dispose()
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".sqlite"] == [name]


def test_checkpoint_bytes_are_deterministic(tmp_path: Path) -> None:
    model = torch.nn.Linear(4, 3)
    meta = {"run": "r", "epoch": "1", "robust_acc": "0.5"}
    a = save_weights(model, tmp_path / "a.safetensors", meta)
    b = save_weights(model, tmp_path / "b.safetensors", dict(reversed(meta.items())))
    assert a == b == sha256(tmp_path / "a.safetensors")


def test_a_truncated_resume_state_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "state.pt"
    save_state({"epoch": 3, "w": torch.zeros(1000)}, path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.warns(UserWarning, match="unreadable"):
        assert load_state(path) == {}
    assert not path.exists() and (tmp_path / "state.pt.corrupt").exists()


class _Evil:
    """Unpickling this creates a file: the proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_pickle_checkpoint_never_runs_code(tmp_path: Path, monkeypatch) -> None:
    """A zoo checkpoint is read with weights_only=True, whatever the environment says."""
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"state_dict": _Evil(marker)}, protocol=2))
    db = tmp_path / "z.sqlite"
    args = ["zoo", "eval", "Wang2020Improving", "--checkpoint-file", str(evil), "--db", str(db)]
    result = CliRunner().invoke(app, [*args, "--dataset", "cifar10-jpeg", "--test-subset", "2"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert not marker.exists()
    assert _rows(db) == (0, 0)
