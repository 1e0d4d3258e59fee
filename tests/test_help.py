"""Help survives the terminal: every command's --help at 80 columns shows each word."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from bench.cli import app


def _commands() -> list[list[str]]:
    root = typer.main.get_command(app)
    out = [[]]
    for name, cmd in root.commands.items():  # type: ignore[attr-defined]
        out.append([name])
        for sub in getattr(cmd, "commands", {}):
            out.append([name, sub])
    return out


@pytest.mark.parametrize("path", _commands(), ids=lambda p: " ".join(p) or "bench")
def test_help_at_80_columns_keeps_every_word(path: list[str]) -> None:
    res = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "80"}, terminal_width=80)
    assert res.exit_code == 0, res.output
    text = res.output
    assert all(len(line) <= 80 for line in text.splitlines())
    assert "…" not in text  # nothing cut
    if "  --db " in text:
        assert "[env BENCH_DB; default $BENCH_HOME/bench.sqlite]" in " ".join(text.split())
    if "  --data-root " in text:
        assert "[env BENCH_DATA_ROOT]" in text
    if "  --device " in text:
        assert "[default: cuda if" in text


def test_top_level_help_lists_every_command() -> None:
    text = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "80"}).output
    for name in ("run", "eval", "demo", "table", "audit", "ls", "experiment", "plot", "zoo"):
        assert f"  {name} " in text
