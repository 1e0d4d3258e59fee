"""Where a demo epoch's time goes (prints figures; not a test): one epoch of MART on the
demo's 4,000 images with one thread, in fp32 and bf16, with PGD-10 and PGD-5 training,
and batch 64 and 128. Prints the training seconds, the whole epoch (with the per-epoch
PGD-20 check on ``--monitor-subset`` points) and the load average beside each line; take
it on an idle machine.

Usage: python benchmarks/demo_epoch.py [--monitor-subset 500]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from bench.spec.run import resolve
from bench.train.loop import EpochReport, train
from bench.train.runtime import Runtime

SETTINGS = (("bf16", 10, 64), ("fp32", 10, 64), ("bf16", 5, 64), ("bf16", 10, 128))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--monitor-subset", type=int, default=500)
    args = ap.parse_args()
    for precision, steps, batch in SETTINGS:
        spec = resolve(
            "mart",
            "smallcnn",
            "mnist",
            "demo-mnist",
            seed=0,
            train_subset=4000,
            test_subset=500,
            overrides={"epochs": 1, "steps": steps, "batch_size": batch},
            precision=precision,
            monitor_subset=args.monitor_subset,
        )
        reports: list[EpochReport] = []
        started = time.monotonic()
        train(
            spec,
            Path(tempfile.mkdtemp()),
            on_epoch=reports.append,
            progress=False,
            runtime=Runtime(threads=1),
        )
        r = reports[-1]
        print(
            f"{precision} PGD-{steps} batch {batch}: training {r.train_seconds:.1f} s, epoch "
            f"{r.seconds:.1f} s, wall {time.monotonic() - started:.1f} s; clean "
            f"{100 * r.clean_acc:.1f}%, PGD-20 {100 * r.robust_acc:.1f}%; load average "
            f"{os.getloadavg()[0]:.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
