"""Start-up time of the command line (prints figures; not a test).

Times ``bench --help``, ``bench ls`` and ``bench table`` (on an empty database) as fresh
processes, median of ``--repeats``, and lists the slowest imports of ``import bench.cli``
from ``python -X importtime``. The load average is printed at the start and the end.

Usage: python benchmarks/startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = [sys.executable, "-c", "from bench.cli import main; main()"]


def timed(args: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(args, env=env, capture_output=True, check=False)
    return time.perf_counter() - t


def slowest_imports(n: int = 8) -> list[tuple[float, str]]:
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import bench.cli"],
        capture_output=True, text=True, check=False,
    ).stderr  # fmt: skip
    rows = []
    for line in err.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s+(.*)", line)
        if m:
            rows.append((int(m.group(1)) / 1e6, m.group(2).strip()))
    return sorted(rows, reverse=True)[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "BENCH_HOME": tmp}
        db = str(Path(tmp) / "empty.sqlite")
        subprocess.run([*BENCH, "ls", "runs", "--db", db], env=env, capture_output=True)
        for name, extra in [
            ("--help", ["--help"]),
            ("ls", ["ls"]),
            ("table", ["table", "--db", db]),
        ]:
            times = [timed([*BENCH, *extra], env) for _ in range(args.repeats)]
            print(f"bench {name}: median {statistics.median(times):.2f} s over {len(times)} runs")
    print("slowest imports under `import bench.cli` (cumulative seconds, python -X importtime):")
    for secs, name in slowest_imports():
        print(f"  {secs:6.2f}  {name}")
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
