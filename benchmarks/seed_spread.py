"""How much do the demo's cells move with the seed? (prints figures; not a test)

Trains what ``bench demo`` trains: Standard, TRADES and MART (SmallCNN, MNIST, preset
demo-mnist as it stands, or with the given overrides) for each seed, evaluates the best and
last checkpoints with the demo's attacks (clean, FGSM, PGD-20, CW-inf) on the first 500 test
points, and prints every value, the mean, the standard deviation and the spread (max - min)
per cell, then the worst spread against the demo's target (3 points). Results go to
``--home`` (resumable: finished runs and evaluations are not redone).

Usage: python benchmarks/seed_spread.py [--train-subset 4000] [--seeds 0,1,2] [--threads 1]
       [--precision auto|fp32|bf16]
       [--epochs N] [--lr LR] [--milestones 3] [--home /tmp/bench-spread]
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
from pathlib import Path

from bench import jobs
from bench.spec.run import resolve
from bench.store import db as bdb
from bench.train.precision import auto
from bench.train.runtime import Runtime

DEFENSES = ("standard", "trades", "mart")
TARGET = 3.0  # points: the demo's promise (README, preset notes)


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--epochs", type=int, default=None, help="default: the preset's")
    ap.add_argument("--lr", type=float, default=None, help="default: the preset's")
    ap.add_argument("--milestones", default=None, help="e.g. 3 (default: the preset's)")
    ap.add_argument("--train-subset", type=int, default=4000)
    ap.add_argument("--test-subset", type=int, default=500)
    ap.add_argument("--monitor-subset", type=int, default=200, help="as bench demo")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--threads", type=int, default=1, help="training threads per run")
    ap.add_argument(
        "--precision", default="auto", help="fp32, bf16, or auto (as bench demo: bf16 where fast)"
    )
    ap.add_argument("--home", type=Path, default=Path("/tmp/bench-spread"))
    return ap.parse_args()


def main() -> None:
    args = _args()
    print(f"load average at start: {os.getloadavg()}", flush=True)
    engine = bdb.connect(args.home / "bench.sqlite")
    milestones = None
    if args.milestones is not None:
        milestones = tuple(int(m) for m in args.milestones.split(",") if m)
    over = {"epochs": args.epochs, "lr": args.lr, "milestones": milestones}
    precision = auto(args.precision, "cpu")
    print(f"training precision: {precision}", flush=True)
    cells: dict[tuple[str, str, str], list[float]] = {}
    for defense, seed in itertools.product(DEFENSES, [int(s) for s in args.seeds.split(",")]):
        spec = resolve(
            defense,
            "smallcnn",
            "mnist",
            "demo-mnist",
            seed=seed,
            train_subset=args.train_subset,
            test_subset=args.test_subset,
            overrides=over,
            precision=precision,
            monitor_subset=args.monitor_subset,
        )
        jobs.train_job(
            engine,
            spec,
            runs_dir=args.home / "runs",
            progress=False,
            runtime=Runtime(threads=args.threads),
        )
        for tag in ("best", "last"):  # one row serves both when they are the same weights
            for e in jobs.eval_job(engine, spec.name, checkpoints=[tag], progress=False):
                cells.setdefault((defense, tag, e.attack), []).append(100 * e.accuracy)
    _report(cells)
    print(f"load average at end: {os.getloadavg()}")


def _report(cells: dict[tuple[str, str, str], list[float]]) -> None:
    worst = 0.0
    print("| defense | checkpoint | attack | per seed | mean ± sd | spread |")
    print("|---|---|---|---|---|---|")
    for (defense, tag, attack), values in sorted(cells.items()):
        spread = max(values) - min(values)
        worst = max(worst, spread)
        sd = statistics.stdev(values) if len(values) > 1 else float("nan")
        shown = ", ".join(f"{v:.1f}" for v in values)
        print(
            f"| {defense} | {tag} | {attack} | {shown} | {statistics.mean(values):.1f} ± "
            f"{sd:.1f} | {spread:.1f} |"
        )
    verdict = "met" if worst <= TARGET else "NOT met"
    print(f"worst spread: {worst:.1f} points (target <= {TARGET:g}: {verdict})")


if __name__ == "__main__":
    main()
