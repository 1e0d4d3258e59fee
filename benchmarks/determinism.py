"""What changes a run's numbers besides its spec: one tiny training run under several runtimes.

Each variant trains the same spec (SmallCNN MART, demo-mnist, the first 512 training
images, 1 epoch, seed 0) in a fresh process and prints the sha256 of the final weights and
the clean / PGD-20 accuracy on the first 500 test points. Variants: the baseline twice
(1 thread, channels_last), 2 threads, contiguous memory, ATen's vector kernels limited to
AVX2 (ATEN_CPU_CAPABILITY) and oneDNN limited to AVX2 (ONEDNN_MAX_CPU_ISA).

    BENCH_DATA_ROOT=... python benchmarks/determinism.py [--train-subset 512] [--epochs 1]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = """
import json, sys
import torch
from pathlib import Path
import tempfile
import attacks
from bench import data as bdata
from bench.eval.loop import robust_points
from bench.spec.run import resolve
from bench.store.checkpoints import sha256
from bench.train.loop import train
from bench.train.runtime import Runtime

threads, channels_last = int(sys.argv[1]), sys.argv[2] == "1"
n, epochs = int(sys.argv[3]), int(sys.argv[4])
spec = resolve("mart", "smallcnn", "mnist", "demo-mnist", train_subset=n, test_subset=500,
               overrides={"epochs": epochs})
rt = Runtime(channels_last=channels_last, threads=threads)
with tempfile.TemporaryDirectory() as t:
    model = train(spec, Path(t), progress=False, runtime=rt).eval()
    digest = sha256(Path(t) / "last.safetensors")
x, y = bdata.subset(*bdata.load_split("mnist", False, None), 500)
clean = robust_points(model, x, y, None, batch_size=500, seed=0).accuracy
pgd = robust_points(model, x, y, attacks.build("pgd20", eps=spec.eps), batch_size=500, seed=0)
print(json.dumps({"sha256": digest, "clean": 100 * clean, "pgd20": 100 * pgd.accuracy,
                  "runtime": rt.record()}))
"""

VARIANTS = (
    ("baseline: 1 thread, channels_last", 1, True, {}),
    ("baseline again", 1, True, {}),
    ("2 threads", 2, True, {}),
    ("contiguous memory", 1, False, {}),
    ("ATen kernels AVX2", 1, True, {"ATEN_CPU_CAPABILITY": "avx2"}),
    ("oneDNN limited to AVX2", 1, True, {"ONEDNN_MAX_CPU_ISA": "AVX2"}),
)


def run(threads: int, channels_last: bool, env: dict[str, str], n: int, epochs: int) -> dict:
    args = [sys.executable, "-c", CHILD, str(threads), "1" if channels_last else "0"]
    out = subprocess.run(
        [*args, str(n), str(epochs)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train-subset", type=int, default=512)
    ap.add_argument("--epochs", type=int, default=1)
    a = ap.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    base = None
    print("| variant | weights sha256 | same as baseline | clean % | PGD-20 % | kernels |")
    print("|---|---|---|---|---|---|")
    for label, threads, cl, env in VARIANTS:
        r = run(threads, cl, env, a.train_subset, a.epochs)
        base = base or r["sha256"]
        same = "yes" if r["sha256"] == base else "no"
        isa = r["runtime"]["cpu_capability"]
        print(
            f"| {label} | {r['sha256'][:12]} | {same} | {r['clean']:.1f} | {r['pgd20']:.1f} "
            f"| {isa} |"
        )
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
