"""Speed benchmark (prints figures; not a test): SmallCNN on MNIST on this machine.

- seconds per training epoch of natural and of MART (PGD-10) training, and their ratio.
  MART makes ~12 forward+backward passes per example (10 attack steps, then a clean and an
  adversarial pass), but the 10 attack passes back-propagate to the input only (no weight
  gradients, eval mode), so the ratio can sit below 12; the target is <= 13,
- PGD-20 evaluation throughput in images per second.

Usage: python benchmarks/speed.py [--train-subset 4000] [--eval-images 1000] [--device cpu]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path

import torch

import attacks
from bench import data as bdata
from bench.eval.loop import robust_points
from bench.spec.run import build_for_spec, resolve
from bench.train.loop import EpochReport, train


def epoch_seconds(defense: str, n: int, device: str, epochs: int) -> float:
    spec = resolve(
        defense,
        "smallcnn",
        "mnist",
        "paper-4.2-mnist",
        train_subset=n,
        test_subset=1,
        overrides={"epochs": epochs},
    )
    reports: list[EpochReport] = []
    with tempfile.TemporaryDirectory() as tmp:
        train(spec, Path(tmp), device=device, on_epoch=reports.append, progress=False)
    # The first epoch carries warm-up costs; take the fastest.
    return min(r.train_seconds for r in reports)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--train-subset", type=int, default=4000)
    ap.add_argument("--eval-images", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()

    print(
        f"device {args.device}; torch {torch.__version__}; {torch.get_num_threads()} threads; "
        f"{platform.processor() or platform.machine()}"
    )
    nat = epoch_seconds("natural", args.train_subset, args.device, args.epochs)
    mart = epoch_seconds("mart", args.train_subset, args.device, args.epochs)
    per = 1000 / args.train_subset
    print(
        f"natural epoch ({args.train_subset} images, batch 128): {nat:.2f} s "
        f"({nat * per:.2f} s per 1000 images)"
    )
    print(
        f"MART PGD-10 epoch ({args.train_subset} images): {mart:.2f} s "
        f"({mart * per:.2f} s per 1000 images)"
    )
    print(f"MART / natural ratio: {mart / nat:.2f} (12 full passes; target <= 13)")

    spec = resolve("natural", "smallcnn", "mnist")
    model = build_for_spec(spec).to(args.device).eval()
    x, y = bdata.subset(*bdata.load_split("mnist", False), args.eval_images)
    pgd = attacks.build("pgd20", eps=0.3)
    robust_points(model, x[:256], y[:256], pgd, device=args.device)  # warm-up
    res = robust_points(model, x, y, pgd, batch_size=256, device=args.device)
    print(
        f"PGD-20 evaluation: {res.n / res.seconds:.1f} images/s "
        f"({res.n} images in {res.seconds:.2f} s, batch 256)"
    )


if __name__ == "__main__":
    main()
