"""Speed, side by side in one run (prints figures; not a test).

Training images/s of MART and TRADES for SmallCNN/MNIST and ResNet-18/CIFAR-10 (small
subsets), for
  1. the official loop (benchmarks/official_loop.py: DataLoader of floats, per-batch
     copies, fp32, the official PGD),
  2. bench in fp32 (contiguous memory, as before this benchmark existed),
  3. bench fp32 with channels_last (the default runtime),
  4. bench at its best setting (bf16 autocast + channels_last);
with the fraction of the machine's peak each reaches (benchmarks/flops.py: the epoch's
matrix-product and convolution FLOPs per image, counted, times images/s, over a 2048^2
matrix product's rate in the loop's precision);
then PGD-20 evaluation images/s for bench and for torchattacks' PGD on the same model and
points (bench without and with the skip of points wrong on clean inputs), and the
MART/natural epoch ratio. Each figure is the median of ``--repeats`` runs, the
configurations interleaved within each repeat. The load average is printed at the start
and the end: figures taken while something else runs are not comparable.

torchattacks is installed only for this benchmark: ``pip install --no-deps torchattacks``.

Usage: python benchmarks/speed.py [--repeats 3] [--mnist-images 1024] [--cifar-images 128]
       [--eval-images 1000] [--skip-cifar] [--compile] [--device cpu]
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

import attacks
from bench import data as bdata
from bench.eval.loop import robust_points
from bench.spec.run import RunSpec, build_for_spec, resolve
from bench.train.loop import EpochReport, train
from bench.train.runtime import Runtime

sys.path.insert(0, str(Path(__file__).resolve().parent))
import official_loop
from flops import peak_gflops, train_flops_per_image

SETTINGS = {  # name -> (precision, channels_last)
    "bench fp32": ("fp32", False),
    "bench fp32 channels_last": ("fp32", True),
    "bench best (bf16 + channels_last)": ("bf16", True),
}
TASKS = {  # (model, dataset, preset)
    "SmallCNN/MNIST": ("smallcnn", "mnist", "paper-4.2-mnist"),
    "ResNet-18/CIFAR-10": ("resnet18", "cifar10-jpeg", "paper-4.2-cifar"),
}


def _spec(defense: str, task: str, n: int, precision: str = "fp32") -> RunSpec:
    model, dataset, preset = TASKS[task]
    return resolve(
        defense,
        model,
        dataset,
        preset,
        train_subset=n,
        test_subset=1,
        overrides={"epochs": 1},
        precision=precision,
    )


def bench_rate(spec: RunSpec, runtime: Runtime, device: str) -> float:
    """Training images/s of bench's loop (the optimisation loop alone, one epoch)."""
    reports: list[EpochReport] = []
    with tempfile.TemporaryDirectory() as tmp:
        train(
            spec, Path(tmp), device=device, on_epoch=reports.append, progress=False, runtime=runtime
        )
    return spec.train_subset / reports[0].train_seconds


def official_rate(spec: RunSpec, device: str) -> float:
    x, y = bdata.subset(*bdata.load_split(spec.dataset, True), spec.train_subset)
    model = build_for_spec(spec).to(device)
    opt = torch.optim.SGD(
        model.parameters(), lr=spec.lr, momentum=spec.momentum, weight_decay=spec.weight_decay
    )
    p = spec.params()
    beta = p.get("lam", p.get("beta", 5.0))
    t = time.perf_counter()
    official_loop.epoch(
        model,
        official_loop.loader(x, y, spec.batch_size),
        opt,
        spec.defense,
        eps=spec.eps,
        step=p["step_size"],
        steps=p["steps"],
        beta=beta,
        device=device,
    )
    return len(y) / (time.perf_counter() - t)


def median_rates(jobs: dict[str, Callable[[], float]], repeats: int) -> dict[str, float]:
    """Each job ``repeats`` times, interleaved; the median images/s of each."""
    seen: dict[str, list[float]] = {k: [] for k in jobs}
    for _ in range(repeats):
        for name, job in jobs.items():
            seen[name].append(job())
    return {k: statistics.median(v) for k, v in seen.items()}


def training_table(
    task: str, n: int, repeats: int, device: str, peaks: dict[str, float]
) -> list[str]:
    """One row per loop: images/s, against the official loop, and the fraction of the
    peak (``peaks``: GFLOP/s per precision) that its counted FLOPs reach."""
    lines = []
    for defense in ("mart", "trades"):
        per_image = train_flops_per_image(_spec(defense, task, min(n, 128)), device)
        jobs = {"official loop (fp32)": lambda d=defense: official_rate(_spec(d, task, n), device)}
        precision = {"official loop (fp32)": "fp32"}
        for name, (prec, cl) in SETTINGS.items():
            jobs[name] = lambda d=defense, p=prec, c=cl: bench_rate(
                _spec(d, task, n, p), Runtime(channels_last=c), device
            )
            precision[name] = prec
        rates = median_rates(jobs, repeats)
        base = rates["official loop (fp32)"]
        for name, r in rates.items():
            gflops = r * per_image / 1e9
            peak = 100 * gflops / peaks[precision[name]]
            lines.append(
                f"| {task} | {defense} | {name} | {r:.1f} | {r / base:.2f}x "
                f"| {per_image / 1e6:.0f} | {gflops:.0f} | {peak:.0f}% |"
            )
    return lines


def eval_table(n: int, repeats: int, device: str) -> list[str]:
    """PGD-20 (eps 0.3) on a naturally trained SmallCNN (8,000 images, 2 epochs): bench vs
    torchattacks on the same points."""
    spec = resolve(
        "natural",
        "smallcnn",
        "mnist",
        "demo-mnist",
        train_subset=8000,
        test_subset=1,
        overrides={"epochs": 2},
    )

    with tempfile.TemporaryDirectory() as tmp:
        model = train(spec, Path(tmp), device=device, progress=False).eval()
    model.to(memory_format=torch.contiguous_format)  # as a user hands it over
    ours = copy.deepcopy(model).to(memory_format=torch.channels_last)  # as eval_job loads it
    x, y = bdata.subset(*bdata.load_split("mnist", False), n)
    pgd = attacks.build("pgd20", eps=0.3)
    clean = robust_points(model, x, y, None, device=device).accuracy
    jobs = {
        "bench PGD-20 (every point)": lambda: _eval_rate(ours, x, y, pgd, device, False),
        "bench PGD-20 (skip wrong points)": lambda: _eval_rate(ours, x, y, pgd, device, True),
    }
    try:
        import torchattacks

        ta = torchattacks.PGD(model, eps=0.3, alpha=0.03, steps=20, random_start=True)
        jobs["torchattacks PGD (20 steps, same eps and step)"] = lambda: _ta_rate(ta, x, y, device)
    except ImportError:
        print("torchattacks is not installed: pip install --no-deps torchattacks")
    rates = median_rates(jobs, repeats)
    base = rates.get("torchattacks PGD (20 steps, same eps and step)", float("nan"))
    out = [f"| {k} | {r:.1f} | {r / base:.2f}x |" for k, r in rates.items()]
    return [f"clean accuracy of the model: {100 * clean:.1f}% ({n} MNIST test points)", *out]


def _eval_rate(model, x, y, atk, device: str, skip: bool) -> float:
    res = robust_points(model, x, y, atk, batch_size=256, device=device, skip_wrong=skip)
    return res.n / res.seconds


def _ta_rate(ta, x, y, device: str) -> float:
    t = time.perf_counter()
    for lo in range(0, len(y), 256):
        xb = (x[lo : lo + 256].float() / 255).to(device)
        yb = y[lo : lo + 256].to(device)
        adv = ta(xb, yb)
        with torch.inference_mode():
            ta.model(adv).argmax(1)
    return len(y) / (time.perf_counter() - t)


def ratio_line(n: int, repeats: int, device: str) -> str:
    prec, cl = SETTINGS["bench best (bf16 + channels_last)"]
    jobs = {
        d: lambda d=d: bench_rate(_spec(d, "SmallCNN/MNIST", n, prec), Runtime(cl), device)
        for d in ("natural", "mart")
    }
    rates = median_rates(jobs, repeats)
    ratio = rates["natural"] / rates["mart"]
    return f"MART / natural epoch time (SmallCNN, best setting): {ratio:.2f} (target <= 13)"


def compile_line(n: int, device: str) -> str:
    """Warm-up and steady cost of torch.compile (MART, SmallCNN, fp32)."""
    spec = resolve(
        "mart",
        "smallcnn",
        "mnist",
        "paper-4.2-mnist",
        train_subset=n,
        test_subset=1,
        overrides={"epochs": 2},
    )
    reports: list[EpochReport] = []
    with tempfile.TemporaryDirectory() as tmp:
        train(
            spec,
            Path(tmp),
            device=device,
            on_epoch=reports.append,
            progress=False,
            runtime=Runtime(compile=True),
        )
    first, second = (r.train_seconds for r in reports)
    return (
        f"torch.compile: first epoch {first:.1f} s (includes compilation), second "
        f"{second:.1f} s = {n / second:.1f} images/s"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--mnist-images", type=int, default=1024)
    ap.add_argument("--cifar-images", type=int, default=128)
    ap.add_argument("--eval-images", type=int, default=1000)
    ap.add_argument("--skip-cifar", action="store_true")
    ap.add_argument("--skip-mnist", action="store_true", help="CIFAR-10 and evaluation only")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    print(f"load average at start: {os.getloadavg()}")
    print(
        f"device {args.device}; torch {torch.__version__}; {torch.get_num_threads()} threads; "
        f"{platform.processor() or platform.machine()}"
    )
    peaks = {p: peak_gflops(p, args.device) for p in ("fp32", "bf16")}
    print(
        "peak, 2048^2 matrix product: "
        + ", ".join(f"{p} {g:.0f} GFLOP/s" for p, g in peaks.items())
    )
    print(
        "\n| task | defense | loop | train images/s | vs official | MFLOP/image | GFLOP/s "
        "| of peak |\n|---|---|---|---|---|---|---|---|"
    )
    tasks = [] if args.skip_mnist else [("SmallCNN/MNIST", args.mnist_images)]
    tasks += [] if args.skip_cifar else [("ResNet-18/CIFAR-10", args.cifar_images)]
    for task, n in tasks:
        for line in training_table(task, n, args.repeats, args.device, peaks):
            print(line)
    print("\n| PGD-20 evaluation | images/s | vs torchattacks |\n|---|---|---|")
    for line in eval_table(args.eval_images, args.repeats, args.device):
        print(line)
    print()
    print(ratio_line(args.mnist_images, args.repeats, args.device))
    if args.compile:
        print(compile_line(args.mnist_images, args.device))
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
