"""Run-level facts for reports, read from the database: each run's per-epoch monitor, how
it was computed (runtime), which runs are seeds of one setting, and which used unlabelled
data. With ``frames.py`` (evaluations and paper tables) the only report modules that query
the database; the renderers take what these return.
"""

from __future__ import annotations

import json

import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bench.core.constants import RunKind, is_external
from bench.store.db import EpochMetric, Run

SEED_KEYS = ("seed", "pseudo_labeller")  # what differs between seeds of one setting


def seed_groups(engine: Engine, runs: list[str]) -> dict[str, tuple[str, int]]:
    """Run name -> (its setting without the seed, its seed): runs that differ only in the
    seed form one group, which tables show as mean ± sd over the seeds."""
    with Session(engine) as s:
        rows = s.scalars(select(Run).where(Run.name.in_(runs))).all()
        out = {}
        for r in rows:
            key = json.dumps(_without_seed(r.spec), sort_keys=True, default=str)
            out[r.name] = (f"{_seedless_label(r)}|{key}", r.seed)
    return out


def _without_seed(spec: dict) -> dict:
    """The setting of a run: its spec without what differs between seeds (a transformed
    run: its base run's, and the transformation)."""
    out = {k: v for k, v in spec.items() if k not in SEED_KEYS and k != "base_run"}
    if spec.get("kind") == RunKind.TRANSFORMED:
        out["base"] = _without_seed(spec["base"])
    return out


def _seedless_label(r: Run) -> str:
    """A run's name with its seed as ``s*`` and without its hash; a transformed run keeps
    its transformation (``...-s*+bit-depth-bits1``)."""
    if is_external(r.spec):
        return r.name.rsplit("-", 1)[0]
    base, plus, transform = r.name.partition("+")
    return base.replace(f"-s{r.seed}-", "-s*-").rsplit("-", 1)[0] + plus + transform


def semi_runs(engine: Engine) -> dict[str, Run]:
    """Runs trained with unlabelled data, by name."""
    with Session(engine) as s:
        return {r.name: r for r in s.scalars(select(Run)) if r.spec.get("unlabelled")}


def epoch_frame(engine: Engine, names: list[str]) -> pd.DataFrame:
    """Per-epoch monitor metrics of the named runs (accuracies in %)."""
    with Session(engine) as s:
        rows = s.execute(
            select(Run.name, EpochMetric)
            .join(EpochMetric, EpochMetric.run_id == Run.id)
            .where(Run.name.in_(names))
        ).all()
        records = [
            {
                "run": name,
                "epoch": m.epoch,
                "robust_acc": 100 * m.robust_acc,
                "clean_acc": 100 * m.clean_acc,
                "n_monitor": m.n_monitor,
                "monitor": m.monitor_attack,
                "train_loss": m.train_loss,
                "lr": m.lr,
                "seconds": m.seconds,
            }
            for name, m in rows
        ]
    cols = ["run", "epoch", "robust_acc", "clean_acc", "n_monitor", "monitor", "train_loss"]
    cols += ["lr", "seconds"]
    return pd.DataFrame.from_records(records, columns=cols).sort_values(["run", "epoch"])


def runtimes(engine: Engine, runs: list[str]) -> dict[str, str]:
    """How each run was computed, where it decides the last bits of its numbers: training
    precision, threads, processes, memory format (bench/train/runtime.py); empty when not
    recorded."""
    with Session(engine) as s:
        out = {}
        for r in s.scalars(select(Run).where(Run.name.in_(runs))):
            rt = (r.provenance or {}).get("runtime") or {}
            if not rt:
                continue
            fmt = "channels_last" if rt.get("channels_last") else "contiguous"
            out[r.name] = (
                f"{r.spec.get('precision', 'fp32')}, {rt.get('torch_threads')} threads, {fmt}"
                + (f", {rt['nproc']} processes" if rt.get("nproc", 1) > 1 else "")
                + (f", {rt['cpu_capability']} kernels" if rt.get("cpu_capability") else "")
                + (", compiled" if rt.get("compile") else "")
                + f", on {(r.provenance or {}).get('device', '?')}"
            )
    return out
