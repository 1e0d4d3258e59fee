"""Do two runs that differ only in training precision agree, epoch by epoch?

Reads the per-epoch monitor (clean and PGD-20 accuracy on the same test points) of two runs
from a results database and prints, for every epoch both reached, each value with its 95%
Wilson interval and whether the intervals overlap. This is how the README's bf16 decision
for the paper-schedule MNIST table was made: the same spec (Standard, SmallCNN, preset
paper-4.2-mnist, 1,000 monitored points) in fp32 and bf16, past the plateau at chance.

Usage: python benchmarks/precision_curves.py RUN_A RUN_B [--db FILE]
"""

from __future__ import annotations

import argparse
import os

from bench.eval.perpoint import wilson_interval
from bench.report.runframes import epoch_frame
from bench.store import db as bdb


def _cell(acc: float, n: int) -> tuple[str, tuple[float, float]]:
    lo, hi = wilson_interval(round(acc * n / 100), n)
    return f"{acc:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]", (100 * lo, 100 * hi)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("runs", nargs=2)
    ap.add_argument("--db", default=None)
    args = ap.parse_args()
    print(f"load average: {os.getloadavg()}")
    frame = epoch_frame(bdb.connect(args.db), args.runs)
    a, b = (frame[frame["run"] == r].set_index("epoch") for r in args.runs)
    print(f"A = {args.runs[0]}\nB = {args.runs[1]}\n")
    print("| epoch | clean A | clean B | PGD-20 A | PGD-20 B | intervals overlap |")
    print("|---|---|---|---|---|---|")
    agree = True
    for epoch in sorted(set(a.index) & set(b.index)):
        row, ok = [str(epoch)], True
        for col in ("clean_acc", "robust_acc"):
            ca, ia = _cell(a.at[epoch, col], int(a.at[epoch, "n_monitor"]))
            cb, ib = _cell(b.at[epoch, col], int(b.at[epoch, "n_monitor"]))
            ok &= ia[0] <= ib[1] and ib[0] <= ia[1]
            row += [ca, cb]
        agree &= ok
        print("| " + " | ".join([*row, "yes" if ok else "NO"]) + " |")
    print(f"\nevery common epoch's intervals overlap: {'yes' if agree else 'no'}")


if __name__ == "__main__":
    main()
