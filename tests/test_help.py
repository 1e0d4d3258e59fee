"""Help survives the terminal: every command's --help at 80 columns shows each word."""

from __future__ import annotations

import re

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


@pytest.mark.parametrize("command", ["run", "eval", "experiment"])
def test_every_executor_option_is_listed_with_its_env_and_default(command: str) -> None:
    """The executor options are declared once (bench/spec/placement/) and every command
    that places jobs lists each of them, with its environment variable and default."""
    from dataclasses import MISSING

    from bench.core.flags import flagged
    from bench.spec.placement import Options, Placing

    res = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"}, terminal_width=200)
    blocks = [" ".join(b.split()) for b in re.split(r"\n  (?=--)", res.output)]
    lines = {b.split()[0]: b for b in blocks}
    for f in [*flagged(Placing), *flagged(Options)]:
        flag = f.metadata["flag"]
        line = lines[flag.primary]
        assert f"env var: {flag.env}" in line
        if f.default is not None and f.default is not MISSING and not isinstance(f.default, bool):
            assert f"default: {f.default}" in line


def test_placing_options_need_an_executor_and_are_checked(tmp_path) -> None:
    env = {"BENCH_HOME": str(tmp_path), "BENCH_WORKERS": "3"}
    res = CliRunner().invoke(app, ["experiment", "table2-mnist", "--dry-run"], env=env)
    assert res.exit_code == 2
    assert "--workers place jobs: add --executor local|slurm|ray" in res.output
    res = CliRunner().invoke(
        app,
        ["eval", "x", "--executor", "local", "--workers", "0"],
        env={"BENCH_HOME": str(tmp_path)},
    )
    assert res.exit_code == 2 and "'--workers'" in res.output
    assert "greater than or equal to 1" in res.output
    from bench.spec.placement import Options  # built from Python: the same bound

    with pytest.raises(ValueError, match="--workers must be >= 1, got 0"):
        Options(workers=0)
