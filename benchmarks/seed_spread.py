"""How much do the demo's cells move with the seed? (prints figures; not a test)

Trains Standard, TRADES and MART (SmallCNN, MNIST, preset demo-mnist with the given lr,
epochs and training images) for each seed, evaluates the last checkpoint with the Table 2
attacks on the first 500 test points, and prints every value, the mean and the spread
(max - min) per cell, then the worst spread. Results go to ``--home`` (resumable).

Usage: python benchmarks/seed_spread.py [--lr 0.01] [--epochs 5] [--train-subset 2000]
       [--seeds 0,1,2] [--home /tmp/bench-spread]
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--train-subset", type=int, default=2000)
    ap.add_argument("--test-subset", type=int, default=500)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--home", type=Path, default=Path("/tmp/bench-spread"))
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()}", flush=True)
    engine = bdb.connect(args.home / "bench.sqlite")
    seeds = [int(s) for s in args.seeds.split(",")]
    cells: dict[tuple[str, str], list[float]] = {}
    for defense, seed in itertools.product(("standard", "trades", "mart"), seeds):
        spec = resolve(
            defense, "smallcnn", "mnist", "demo-mnist", seed=seed,
            train_subset=args.train_subset, test_subset=args.test_subset,
            overrides={"epochs": args.epochs, "lr": args.lr},
        )  # fmt: skip
        jobs.train_job(engine, spec, runs_dir=args.home / "runs", progress=False)
        for e in jobs.eval_job(engine, spec.name, checkpoints=["last"], progress=False):
            cells.setdefault((defense, e.attack), []).append(100 * e.accuracy)
    worst = 0.0
    for (defense, attack), values in cells.items():
        spread = max(values) - min(values)
        worst = max(worst, spread)
        shown = ", ".join(f"{v:.1f}" for v in values)
        print(f"{defense:<9} {attack:<6} {shown}  mean {statistics.mean(values):.1f}  "
              f"spread {spread:.1f}")  # fmt: skip
    print(f"worst spread: {worst:.1f} points (target <= 3)")
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
