"""Commands that need no tensors start without PyTorch (docs/architecture.md, Start-up).

Each command runs in a fresh interpreter, which reports the heavy modules it imported;
speed itself is measured by benchmarks/startup.py, not here.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import attacks
from bench.cli import deferred
from bench.core.lazy import LazyModule, load
from bench.core.registry import Registry, UnknownNameError
from bench.eval.protocols import PROTOCOLS

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "torchvision", "matplotlib", "autoattack", "pyautoattack", "robustbench")
DEFERRED = tuple(getattr(deferred, n)._name for n in deferred.__all__)
RUN = "mnist-smallcnn-standard-paper-4.2-mnist-e50-s0-b609c1"  # in the golden database
# Runs `bench ARGS...` in this interpreter, then writes the heavy modules it imported to OUT.
PROBE = """
import atexit, json, sys
out, watched, args = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3:]
atexit.register(lambda: open(out, "w").write(json.dumps([m for m in watched if m in sys.modules])))
sys.argv = ["bench", *args]
from bench.cli import main
main()
"""


def _run(args: list[str], tmp_path: Path) -> tuple[int, list[str], str]:
    out = tmp_path / "loaded.json"
    res = subprocess.run(
        [sys.executable, "-c", PROBE, str(out), json.dumps(HEAVY + DEFERRED), *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "BENCH_HOME": str(tmp_path / "home")},
    )
    return res.returncode, json.loads(out.read_text()), res.stdout + res.stderr


@pytest.fixture
def db(tmp_path: Path) -> str:
    path = tmp_path / "golden.sqlite"
    shutil.copy(REPO / "tests" / "fixtures" / "golden.sqlite", path)
    return str(path)


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["run", "--help"],
        ["zoo", "eval", "--help"],
        ["ls"],
        ["ls", "runs", "--db", "{db}"],
        ["table", "--db", "{db}"],
        ["table", "--paper", "--table", "3", "--ci", "--db", "{db}"],
        ["show", RUN, "--db", "{db}"],
        ["rm", RUN, "--yes", "--db", "{db}"],
    ],
    ids=" ".join,
)
def test_commands_without_tensors_import_no_torch(args: list[str], db: str, tmp_path: Path) -> None:
    code, loaded, output = _run([a.replace("{db}", db) for a in args], tmp_path)
    assert code == 0, output
    assert loaded == []
    if args[0] == "ls" and len(args) == 1:  # every registry listed, from declarations only
        for name in ("mart", "pgd20", "autoattack", "wrn-34-10", "cifar10", "table2-mnist"):
            assert name in output


def test_the_probe_sees_a_command_that_needs_torch(db: str, tmp_path: Path) -> None:
    """`bench audit` checks the device first: PyTorch and the audit module are imported."""
    code, loaded, output = _run(["audit", "no-such-run", "--db", db], tmp_path)
    assert code == 2 and "no run named 'no-such-run'" in output
    assert "torch" in loaded and "bench.eval.audit" in loaded


def test_deferred_names_match_what_they_stand_for() -> None:
    """Each lazy name in bench/cli/deferred.py is the module its TYPE_CHECKING import names."""
    tree = ast.parse((REPO / "bench" / "cli" / "deferred.py").read_text())
    branch = next(n for n in tree.body if isinstance(n, ast.If))
    typed = {
        (a.asname or a.name): f"{imp.module}.{a.name}"
        for imp in branch.body
        if isinstance(imp, ast.ImportFrom)
        for a in imp.names
    }
    lazy = {n: getattr(deferred, n)._name for n in deferred.__all__}
    assert typed == lazy
    for name in deferred.__all__:
        assert getattr(deferred, name).__name__ == lazy[name]  # resolves: the module imports


def test_lazy_module_imports_on_first_attribute(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "lazy_probe_mod.py").write_text("VALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lazy_probe_mod", raising=False)
    mod = LazyModule("lazy_probe_mod")
    assert "lazy_probe_mod" not in sys.modules and "not imported" in repr(mod)
    assert mod.VALUE == 42
    assert "lazy_probe_mod" in sys.modules and "not imported" not in repr(mod)
    with pytest.raises(AttributeError):
        _ = mod.MISSING
    with pytest.raises(ModuleNotFoundError):
        _ = LazyModule("no_such_module_here").anything


def test_registry_entry_by_reference(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "lazy_probe_reg.py").write_text("def thing():\n    return 'built'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lazy_probe_reg", raising=False)
    reg: Registry = Registry("thing")
    reg.add_lazy("thing", "lazy_probe_reg:thing")
    assert reg.names() == ["thing"] and "thing" in reg
    assert "lazy_probe_reg" not in sys.modules  # listed without importing
    assert reg.get("thing")() == "built"
    with pytest.raises(ValueError, match="already registered"):
        reg.add_lazy("thing", "lazy_probe_reg:thing")
    with pytest.raises(UnknownNameError, match="Did you mean 'thing'"):
        reg.get("thin")
    with pytest.raises(ValueError, match="module:attribute"):
        load("lazy_probe_reg.thing")


def test_every_preset_protocol_resolves() -> None:
    for name, preset in attacks.PRESETS.items():
        assert callable(PROTOCOLS.get(preset.protocol)), name


def test_resolving_a_spec_imports_no_pytorch() -> None:
    """The spec layer reads defense defaults and checks model and data set names without
    importing PyTorch (bench/core/registry.py ``check``), so planning jobs is cheap."""
    code = (
        "import sys; from bench.spec.run import resolve; "
        "[resolve(d, m, 'mnist') for d in ('mart', 'trades', 'mma', 'dynamic') "
        "for m in ('smallcnn', 'tiny-cnn')]; "
        f"print(sorted(h for h in {HEAVY!r} if h in sys.modules))"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert res.stdout.strip() == "[]", res.stdout + res.stderr
