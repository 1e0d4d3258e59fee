"""Seeds of one setting, shown together: runs that differ only in their seed form a group,
and tables show the group's mean ± sample sd (a single seed keeps its own interval)."""

from __future__ import annotations

import pandas as pd


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
