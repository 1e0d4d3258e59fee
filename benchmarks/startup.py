"""Start-up time of the command line (prints figures; not a test).

Times commands that need no tensors as fresh processes (``bench --help``, ``bench run
--help``, ``bench ls``, ``bench ls runs``, ``bench table``, ``bench table --paper`` and
``bench show RUN``, on a copy of the golden test database, tests/fixtures/golden.sqlite:
20 runs, 157 evaluations) and prints, per command, the fastest and the median wall time of
``--repeats`` runs with the 1-minute load average beside each, the CPU time (user + system)
of the fastest, and whether the process imported PyTorch. Then ``python -X importtime``:
what ``import bench.cli`` costs, its slowest packages, and ``import torch`` for comparison.

Other processes on the machine slow every figure down; the fastest run is the least
disturbed, so compare minima, and only figures taken at a low load average. The CPU time
depends much less on the load (an import is one thread: idle, wall time is close to it).
Run it with another checkout's interpreter (``/path/to/other/.venv/bin/python
benchmarks/startup.py``, from outside both checkouts) to compare two versions under the
same load.

Usage: python benchmarks/startup.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "golden.sqlite"
RUN = "mnist-smallcnn-mart-paper-4.2-mnist-e50-s0-"  # prefix; the full name is looked up
# Runs the command, then says on stderr whether it imported PyTorch.
PROBE = (
    "import atexit, sys; atexit.register(lambda: sys.stderr.write("
    "'\\nTORCH=%s\\n' % ('torch' in sys.modules))); "
    "sys.argv = ['bench', *sys.argv[1:]]; from bench.cli import main; main()"
)


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(args: list[str], env: dict[str, str]) -> tuple[float, str, float, bool]:
    """Wall seconds, the load average then, CPU seconds, whether PyTorch was imported."""
    cpu, t = cpu_children(), time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True, check=False
    )
    secs, cpu = time.perf_counter() - t, cpu_children() - cpu
    if res.returncode != 0:
        raise SystemExit(f"bench {' '.join(args)} failed:\n{res.stderr[-2000:]}")
    return secs, load(), cpu, "TORCH=True" in res.stderr


def importtime(statement: str) -> list[tuple[float, int, str]]:
    """(cumulative seconds, nesting depth, module) for every import ``statement`` makes."""
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        capture_output=True,
        text=True,
        check=False,
    ).stderr
    rows = []
    for line in err.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if m:
            rows.append((int(m.group(1)) / 1e6, (len(m.group(2)) - 1) // 2, m.group(3)))
    return rows


def report_imports() -> None:
    rows = importtime("import bench.cli")
    total = next(s for s, _, name in rows if name == "bench.cli")
    names = {name.split(".")[0] for _, _, name in rows}
    print(f"\n`import bench.cli`: {total:.2f} s ({load()}; python -X importtime, one run)")
    print(f"  PyTorch imported: {'yes' if 'torch' in names else 'no'}")
    tops: dict[str, float] = {}
    for secs, _, name in rows:  # a package's first (outermost) import carries its cost
        if "." not in name and name not in ("bench", "attacks", "defenses"):
            tops[name] = max(tops.get(name, 0.0), secs)
    print("  slowest packages it imports (cumulative s):")
    for name, secs in sorted(tops.items(), key=lambda kv: -kv[1])[:6]:
        print(f"    {secs:5.2f}  {name}")
    torch_s = next((s for s, _, n in importtime("import torch") if n == "torch"), float("nan"))
    print(f"for comparison, `import torch` alone: {torch_s:.2f} s ({load()})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    print(f"{sys.executable}; {os.cpu_count()} CPUs; {load()} at start")
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "golden.sqlite")
        shutil.copy(GOLDEN, db)
        env = {**os.environ, "BENCH_HOME": tmp, "BENCH_DB": db}
        runs = subprocess.run(
            [sys.executable, "-c", PROBE, "table", "--format", "json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        run = next(r["run"] for r in json.loads(runs) if r["run"].startswith(RUN))
        commands = [["--help"], ["run", "--help"], ["ls"], ["ls", "runs"], ["table"]]
        commands += [["table", "--paper"], ["show", run]]
        print(f"fresh processes, {args.repeats} each; database: a copy of {GOLDEN.name}")
        for cmd in commands:
            times = [timed(cmd, env) for _ in range(args.repeats)]
            best = min(times)
            torch = "imports PyTorch" if any(t[3] for t in times) else "no PyTorch"
            label = " ".join(cmd if cmd[0] != "show" else ["show", "RUN"])
            print(
                f"  bench {label:<14} min {best[0]:.2f} s ({best[1]}; CPU {best[2]:.2f} s), "
                f"median {statistics.median(t[0] for t in times):.2f} s; {torch}"
            )
    report_imports()
    print(f"{load()} at end")


if __name__ == "__main__":
    main()
