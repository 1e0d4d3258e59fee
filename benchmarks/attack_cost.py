"""Evaluation cost of each attack preset (prints figures; not a test): seconds per 100 MNIST
test images for SmallCNN, batch 100, on this machine.

The slow attacks run on fewer images and are scaled to 100 (each line says how many ran).
Cost depends on how many points survive: SPSA stops per example once it is misclassified
and the AutoAttack parts only keep attacking points still robust, so on an easily fooled
model they are cheap. ``--eps`` small (e.g. 0.02) keeps most points robust and so measures
the full cost an evaluation of a robust model pays; eps 0.3 is the MNIST protocol.

Usage: python benchmarks/attack_cost.py [--eps 0.3] [--train-steps 150] [--scale 1.0]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch
import torch.nn.functional as F

import attacks
from bench import data as bdata
from bench.eval.loop import robust_points, to_float
from bench.models import build_model

# Images per preset (the slow ones are scaled): fgsm, pgd20, pgd100, cw20 run on 100.
IMAGES = {
    "fgsm": 100,
    "pgd20": 100,
    "pgd100": 100,
    "cw20": 100,
    "spsa": 4,
    "apgd-ce": 100,
    "apgd-t": 20,
    "fab-t": 10,
    "square": 10,
    "autoattack": 10,
}


def natural_smallcnn(steps: int, seed: int = 0) -> torch.nn.Module:
    """SmallCNN trained naturally for ``steps`` SGD steps (enough for ~90% on MNIST)."""
    torch.manual_seed(seed)
    model = build_model("smallcnn", num_classes=10, in_channels=1)
    x, y = bdata.load_split("mnist", True)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(y), (128,), generator=g)
        loss = F.cross_entropy(model(to_float(x[idx])), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return model.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--eps", type=float, default=0.3)
    ap.add_argument("--train-steps", type=int, default=150, help="0: untrained SmallCNN")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply the image counts")
    ap.add_argument("--attacks", default=",".join(IMAGES))
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()

    print(
        f"device {args.device}; torch {torch.__version__}; {torch.get_num_threads()} threads; "
        f"{platform.processor() or platform.machine()}; eps {args.eps}"
    )
    t0 = time.perf_counter()
    model = natural_smallcnn(args.train_steps).to(args.device)
    x, y = bdata.subset(*bdata.load_split("mnist", False), 100)
    clean = robust_points(model, x, y, None, device=args.device)
    print(
        f"SmallCNN, {args.train_steps} natural SGD steps ({time.perf_counter() - t0:.0f} s): "
        f"clean accuracy {100 * clean.accuracy:.0f}% on 100 test images"
    )
    for name in args.attacks.split(","):
        n = max(1, round(IMAGES[name] * args.scale))
        atk = attacks.build(name, eps=args.eps)
        res = robust_points(model, x[:n], y[:n], atk, batch_size=100, device=args.device)
        per100 = res.seconds / n * 100
        scaled = "" if n == 100 else f"  (ran {n} images, scaled x{100 / n:g})"
        print(
            f"{name:<11} {per100:9.1f} s / 100 images   robust {res.correct}/{n}"
            f"  [{res.seconds:.1f} s]{scaled}",
            flush=True,
        )


if __name__ == "__main__":
    main()
