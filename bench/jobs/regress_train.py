"""Training regression: a pinned tiny grid trained again and compared with committed cells.

``results/reference/regress/training.json`` pins the grid (softmax regression on the first
2,048 MNIST training images, preset demo-mnist (eps 0.1), 3 epochs; Standard, TRADES and
MART; seeds 0 and 1; one thread) and holds, per defense, two kinds of cells. The grid is the
smallest measured to leave chance: tiny-cnn on 256 or 1,024 images for 2 epochs stayed at
9-11% clean accuracy for all three defenses, the linear model reaches 80-84% clean and
51-55% PGD-20 in about 8 s a run.

- **the trajectory**, exact where it can be: each seed's mean training loss over the first
  epoch. On one machine it is bit-identical; its tolerance is ten times the largest change
  measured when only the runtime changes (2 threads, contiguous memory), so a changed
  objective fails while another CPU's rounding passes.
- **the outcome**, statistical: clean and PGD-20 accuracy of the last checkpoint on the first
  500 test points, averaged over the seeds. Its tolerance is three standard errors of that
  mean, the standard deviation measured over six seeds when the baseline was written
  (with a floor of one point), not a guess.

``update`` trains the six-seed spread and the runtime variants, and rewrites the file.
"""

from __future__ import annotations

import json
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import attacks
from bench import data as bdata
from bench.core.constants import REGRESS_TRAIN_BASELINE
from bench.eval.loop import robust_points
from bench.spec.run import resolve
from bench.train.loop import train
from bench.train.runtime import Runtime

BASELINE = REGRESS_TRAIN_BASELINE
GRID: dict[str, Any] = {
    "model": "linear",
    "dataset": "mnist",
    "preset": "demo-mnist",
    "train_subset": 2048,
    "test_subset": 500,
    "monitor_subset": 100,
    "epochs": 3,
    "threads": 1,
    # The preset's training values, pinned: a later change to the demo preset must not
    # change this grid (an override equal to the preset's value leaves the spec unchanged).
    "pinned": {"lr": 0.05, "milestones": [], "batch_size": 64, "steps": 10, "eps": 0.1},
    "pinned_params": {"trades": {"beta": 4.0}, "mart": {"lam": 5.0}},  # the same, per defense
}
DEFENSES = ("standard", "trades", "mart")
CHECK_SEEDS = (0, 1)
SPREAD_SEEDS = (0, 1, 2, 3, 4, 5)
OUTCOMES = ("clean", "pgd20")
ACC_FLOOR = 1.0  # points: below this, a difference is within a couple of test points
LOSS_FLOOR = 1e-4
VARIANTS = (Runtime(threads=2), Runtime(channels_last=False, threads=1))


@dataclass(frozen=True)
class Cell:
    defense: str
    metric: str
    baseline: float
    now: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return abs(self.now - self.baseline) <= self.tolerance


def train_once(
    defense: str, seed: int, grid: dict[str, Any], data_root: str | None, runtime: Runtime
) -> dict[str, float]:
    """One run of the grid: its first-epoch loss and its last checkpoint's accuracies."""
    spec = resolve(
        defense,
        grid["model"],
        grid["dataset"],
        grid["preset"],
        seed=seed,
        train_subset=grid["train_subset"],
        test_subset=grid["test_subset"],
        monitor_subset=grid["monitor_subset"],
        overrides={**grid.get("pinned", {}), "epochs": grid["epochs"]},
        defense_overrides=grid.get("pinned_params", {}).get(defense),
    )
    reports: list = []
    with tempfile.TemporaryDirectory() as t:
        model = train(
            spec,
            Path(t),
            data_root=data_root,
            on_epoch=reports.append,
            progress=False,
            runtime=runtime,
        ).eval()
    x, y = bdata.subset(*bdata.load_split(spec.dataset, False, data_root), spec.test_subset)
    n = len(y)
    clean = robust_points(model, x, y, None, batch_size=n, seed=0).accuracy
    pgd = robust_points(model, x, y, attacks.build("pgd20", eps=spec.eps), batch_size=n, seed=0)
    return {"loss_epoch1": reports[0].train_loss, "clean": 100 * clean, "pgd20": 100 * pgd.accuracy}


def _runs(defense: str, seeds: tuple[int, ...], grid: dict, data_root: str | None) -> list[dict]:
    return [
        train_once(defense, s, grid, data_root, Runtime(threads=grid["threads"])) for s in seeds
    ]


def check(
    path: Path = BASELINE, data_root: str | None = None, only: tuple[str, ...] = ()
) -> list[Cell]:
    """Train the check seeds again; one Cell per (defense, seed) loss and per outcome."""
    base = json.loads(path.read_text())
    cells = []
    for d in base["defenses"]:
        if only and d not in only:
            continue
        entry, seeds = base["cells"][d], tuple(base["check_seeds"])
        now = _runs(d, seeds, base["grid"], data_root)
        for s, r in zip(seeds, now, strict=True):
            cells.append(
                Cell(
                    d,
                    f"epoch-1 loss, seed {s}",
                    entry["loss_epoch1"][str(s)],
                    r["loss_epoch1"],
                    base["loss_tolerance"],
                )
            )
        for m in OUTCOMES:
            mean = statistics.fmean(r[m] for r in now)
            cells.append(
                Cell(
                    d,
                    f"{m} %, mean of {len(seeds)} seeds",
                    entry[m]["mean"],
                    mean,
                    entry[m]["tolerance"],
                )
            )
    return cells


def update(path: Path = BASELINE, data_root: str | None = None) -> list[Cell]:
    """Measure the seed spread and the runtime drift, then write the baseline.

    Returns what changed against the previous baseline (as ``check`` would have), or []."""
    before = check(path, data_root) if path.exists() else []
    grid, seeds = dict(GRID), CHECK_SEEDS
    cells: dict[str, Any] = {}
    drift = 0.0
    for d in DEFENSES:
        spread = dict(zip(SPREAD_SEEDS, _runs(d, SPREAD_SEEDS, grid, data_root), strict=True))
        entry: dict[str, Any] = {"loss_epoch1": {str(s): spread[s]["loss_epoch1"] for s in seeds}}
        for m in OUTCOMES:
            values = [r[m] for r in spread.values()]
            sd = statistics.stdev(values)
            entry[m] = {
                "mean": statistics.fmean(spread[s][m] for s in seeds),
                "spread_sd": sd,
                "spread_values": values,
                "tolerance": max(3 * sd / len(seeds) ** 0.5, ACC_FLOOR),
            }
        for rt in VARIANTS:
            other = train_once(d, seeds[0], grid, data_root, rt)["loss_epoch1"]
            drift = max(drift, abs(other - spread[seeds[0]]["loss_epoch1"]))
        cells[d] = entry
    out = {
        "grid": grid,
        "defenses": list(DEFENSES),
        "check_seeds": list(seeds),
        "spread_seeds": list(SPREAD_SEEDS),
        "runtime_drift": drift,
        "loss_tolerance": max(10 * drift, LOSS_FLOOR),
        "cells": cells,
    }
    path.write_text(json.dumps(out, indent=2, sort_keys=True) + "\n")
    return before
