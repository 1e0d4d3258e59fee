"""Does bf16 training change accuracy? The same spec trained in fp32 and bf16, several seeds.

Trains one defense (default MART, SmallCNN, MNIST, preset demo-mnist: the first 2,000
training images, 3 epochs, eps 0.1) once per (precision, seed), evaluates clean and PGD-20
accuracy (fp32 attacks) on the first test points, and prints every run with its 95% Wilson
interval, then the mean and spread per precision. Results go to ``--home`` (a results
home, resumable: finished runs are not trained again).

Usage: python benchmarks/precision_accuracy.py [--defense mart] [--seeds 0,1,2]
       [--train-subset 2000] [--test-subset 500] [--epochs 3] [--home /tmp/bench-precision]
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

from bench import jobs
from bench.eval.perpoint import wilson_interval
from bench.spec.run import resolve
from bench.store import db as bdb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--defense", default="mart")
    ap.add_argument("--model", default="smallcnn")
    ap.add_argument("--preset", default="demo-mnist")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--train-subset", type=int, default=2000)
    ap.add_argument("--test-subset", type=int, default=500)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--home", type=Path, default=Path("/tmp/bench-precision"))
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()}")
    engine = bdb.connect(args.home / "bench.sqlite")
    acc: dict[tuple[str, str], list[float]] = {}
    for prec in args.precisions.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            spec = resolve(
                args.defense,
                args.model,
                "mnist",
                args.preset,
                seed=seed,
                train_subset=args.train_subset,
                test_subset=args.test_subset,
                overrides={"epochs": args.epochs},
                precision=prec,
            )
            run, _ = jobs.train_job(engine, spec, runs_dir=args.home / "runs", progress=False)
            evs = jobs.eval_job(
                engine,
                spec.name,
                attack_names=["clean", "pgd20"],
                checkpoints=["last"],
                progress=False,
            )
            cells = []
            for e in evs:
                lo, hi = wilson_interval(e.correct, e.n)
                acc.setdefault((prec, e.attack), []).append(100 * e.accuracy)
                cells.append(f"{e.attack} {100 * e.accuracy:.2f} [{100 * lo:.1f}, {100 * hi:.1f}]")
            secs = run.train_seconds
            print(f"{prec} seed {seed}: {'; '.join(cells)}; training {secs:.0f} s ({spec.name})")
    for (prec, attack), values in acc.items():
        sd = statistics.stdev(values) if len(values) > 1 else float("nan")
        print(
            f"{prec} {attack}: mean {statistics.mean(values):.2f}, sd {sd:.2f}, "
            f"min {min(values):.2f}, max {max(values):.2f} (n={len(values)} seeds)"
        )
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
