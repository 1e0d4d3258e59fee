"""Seeds of one setting, shown together: runs that differ only in their seed form a group,
and tables show the group's mean ± sample sd (a single seed keeps its own interval)."""

from __future__ import annotations

import json

import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bench.core.constants import is_external
from bench.store.db import Run

SEED_KEYS = ("seed", "pseudo_labeller")  # what differs between seeds of one setting


def seed_groups(engine: Engine, runs: list[str]) -> dict[str, tuple[str, int]]:
    """Run name -> (its setting without the seed, its seed): runs that differ only in the
    seed form one group, which tables show as mean ± sd over the seeds."""
    with Session(engine) as s:
        rows = s.scalars(select(Run).where(Run.name.in_(runs))).all()
        out = {}
        for r in rows:
            setting = {k: v for k, v in r.spec.items() if k not in SEED_KEYS}
            label = r.name if is_external(r.spec) else r.name.replace(f"-s{r.seed}-", "-s*-")
            key = json.dumps(setting, sort_keys=True, default=str)
            out[r.name] = (f"{label.rsplit('-', 1)[0]}|{key}", r.seed)
    return out


def aggregate_seeds(frame: pd.DataFrame, groups: dict[str, tuple[str, int]]) -> pd.DataFrame:
    """Per (setting, checkpoint, attack): mean, sd and number of seeds with a value.

    A single seed keeps its own numbers (and its interval); several seeds get their mean
    and sample sd, and the paper's difference is taken from the mean.
    """
    df = frame.assign(
        group=[groups.get(r, (r, 0))[0] for r in frame["run"]],
        seed=[groups.get(r, (r, 0))[1] for r in frame["run"]],
    )
    keys = ["group", "checkpoint", "attack"]
    stats = df.groupby(keys, sort=False)["accuracy"].agg(["mean", "std", "count"])
    first = df.groupby(keys, sort=False).first()
    seeds = df.groupby("group", sort=False)["seed"].apply(lambda s: sorted(set(s)))
    members = df.groupby("group", sort=False).apply(
        lambda g: list(dict.fromkeys(zip(g["run"], g["seed"], strict=True))), include_groups=False
    )
    out = first.join(stats).reset_index()
    single = out["count"] <= 1
    out["accuracy"] = out["mean"].where(~single, out["accuracy"])
    out["sd"] = out["std"].where(~single)
    out["n_seeds"] = out["count"]
    out["seeds"] = out["group"].map(seeds)
    out["members"] = out["group"].map(members)
    for col in ("ci_low", "ci_high"):
        out[col] = out[col].where(single)
    out["diff"] = out["accuracy"] - out["paper"]
    return out.drop(columns=["mean", "std", "count"])
