"""The frames behind the static site (``bench report``): numbers only, as in frames.py.

- ``leaderboard_frame``: one row per (run, checkpoint, leaderboard attack) with its number,
  Wilson interval, the paper's number and the audit flags; AutoAttack and "transfer" may be
  worst cases of stored per-point masks (no attack is run again);
- ``checkpoint_frame``: the checkpoints of runs, with their hashes;
- ``agreement_frames``: per-point agreement between the attacks on one checkpoint;
- ``run_records``: what the database knows about each run (spec, provenance, status).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

import attacks
from bench.eval.checks import FLAG
from bench.eval.perpoint import COMPOSITE, current_evaluations, judged_n, masks_by_n
from bench.report.frames import (
    audit_flags,
    defense_rank,
    evaluations_frame,
    paper_cell,
    with_autoattack,
    with_worst_case,
)
from bench.store.db import Checkpoint, Run

# Leaderboard columns, strongest last but for transfer (a black-box column).
BOARD_ATTACKS = ("clean", "fgsm", "pgd20", "pgd100", "cw20", "autoattack", "transfer")
BOARD_ATTACKS_L2 = ("clean", "pgd20-l2", "pgd100-l2", "cw20-l2", "autoattack-l2")  # L2 boards
TRANSFER = "transfer"
EXTRA = [
    "preset",
    "epochs",
    "train_subset",
    "attack_params",
    "checkpoint_sha256",
    "seconds",
    "norm",
]


def transfer_attacks(sub: pd.DataFrame) -> list[str]:
    """The stored transfer attacks of one checkpoint, in a stable order."""
    return sorted(a for a in set(sub["attack"]) if attacks.is_transfer(str(a)))


def leaderboard_frame(engine: Engine, runs: list[str] | None = None) -> pd.DataFrame:
    """One row per (run, checkpoint, attack in BOARD_ATTACKS) that has a number.

    ``transfer`` is the per-point worst case over every transfer attack stored for that
    checkpoint (a point counts as robust only if no surrogate's examples fooled it); it has
    no paper number, the paper's Table 3 giving one number per transfer attack. The paper's
    number is Table 4's (WRN-34-10 on CIFAR-10, best and last) where it has one, else Table 2's.
    """
    df = evaluations_frame(engine, runs)
    if df.empty:
        return pd.DataFrame()
    df = with_autoattack(engine, df)
    extra = []
    for _, sub in df.groupby(["run", "checkpoint"], sort=False):
        if names := transfer_attacks(sub):
            how = "per-point worst case of " + ", ".join(names)
            extra.append(with_worst_case(engine, sub, TRANSFER, transfer_attacks, how))
    if extra:
        df = pd.concat([df, *(e[e["attack"] == TRANSFER] for e in extra)], ignore_index=True)
    have = df[df["attack"].isin(BOARD_ATTACKS + BOARD_ATTACKS_L2)]
    flags = audit_flags(engine, runs)
    records = []
    # per threat model: a cell's eps is its norm's budget (paper_cell takes the group's)
    for (run, tag, _), sub in have.groupby(["run", "checkpoint", "norm"], sort=False):
        flagged = [f["check"] for f in flags.get((str(run), str(tag)), []) if f["status"] == FLAG]
        by_attack = sub.set_index("attack")
        for atk in sub["attack"].unique():
            rec = paper_cell(4, sub, atk, ",".join(flagged))  # WRN-34-10 on CIFAR-10
            if pd.isna(rec["paper"]):
                rec = paper_cell(2, sub, atk, ",".join(flagged))
            rec.update({k: by_attack.loc[atk, k] for k in EXTRA})
            records.append(rec)
    out = pd.DataFrame.from_records(records)
    rank = out["defense"].map(defense_rank)
    return (
        out.assign(_r=rank)
        .sort_values(["dataset", "eps", "_r", "run"], kind="stable")
        .drop(columns="_r")
        .reset_index(drop=True)
    )


def checkpoint_frame(engine: Engine, runs: list[str]) -> pd.DataFrame:
    """One row per checkpoint of the named runs: epoch, monitor accuracy (%), sha256, file."""
    with Session(engine) as s:
        rows = s.execute(
            select(Run.name, Checkpoint)
            .join(Checkpoint, Checkpoint.run_id == Run.id)
            .where(Run.name.in_(runs))
            .order_by(Run.name, Checkpoint.tag)
        ).all()
        records = [
            {
                "run": name,
                "checkpoint": c.tag,
                "epoch": c.epoch,
                "monitor_acc": 100 * c.robust_acc if c.robust_acc >= 0 else float("nan"),
                "sha256": c.sha256,
                "path": c.path,
            }
            for name, c in rows
        ]
    cols = ["run", "checkpoint", "epoch", "monitor_acc", "sha256", "path"]
    return pd.DataFrame.from_records(records, columns=cols)


def agreement_frames(engine: Engine, run: str, tag: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """How the attacks on one checkpoint agree point by point (stored masks, same points).

    A point is *broken* by an attack when it is classified correctly on clean inputs
    (where a clean evaluation is stored) and not under the attack. Returns, per attack
    (strongest last): n, robust, broken and ``only`` (broken by this attack and by none of
    the others); and the pairwise counts: points the row's attack breaks and the column's
    does not. AutoAttack's four parts are folded into ``autoattack`` when all are stored.
    """
    with Session(engine) as s:
        _, evs = current_evaluations(s, run, tag)
        by_n = masks_by_n(evs)
    if not by_n:
        return pd.DataFrame(), pd.DataFrame()
    n = judged_n(by_n)
    masks = dict(by_n[n])
    for name, parts in COMPOSITE.items():
        if name in masks:
            masks = {a: m for a, m in masks.items() if a not in parts}
    clean = masks.pop("clean", np.ones(n, dtype=bool))
    order = sorted(masks, key=lambda a: (-int(masks[a].sum()), a))
    broken = {a: clean & ~masks[a] for a in order}
    rows = []
    for a in order:
        others = [broken[b] for b in order if b != a]
        alone = broken[a] & ~np.logical_or.reduce(others) if others else broken[a]
        rows.append(
            {
                "attack": a,
                "n": n,
                "robust": int(masks[a].sum()),
                "broken": int(broken[a].sum()),
                "only": int(alone.sum()),
            }
        )
    pairs = pd.DataFrame(
        [[int((broken[a] & ~broken[b]).sum()) for b in order] for a in order],
        index=pd.Index(order, name="attack"),
        columns=order,
    )
    return pd.DataFrame(rows), pairs


def run_records(engine: Engine, runs: list[str] | None = None) -> list[dict[str, Any]]:
    """Every run (or the named ones) as a plain record, in the order they were created."""
    with Session(engine) as s:
        query = select(Run).order_by(Run.id)
        if runs is not None:
            query = query.where(Run.name.in_(runs))
        return [
            {
                "name": r.name,
                "defense": r.defense,
                "model": r.model,
                "dataset": r.dataset,
                "data_label": r.data_label,
                "preset": r.preset,
                "seed": r.seed,
                "spec": dict(r.spec),
                "provenance": dict(r.provenance or {}),
                "status": r.status,
                "epochs_done": r.epochs_done,
                "n_train": r.n_train,
                "train_seconds": r.train_seconds,
                "run_dir": r.run_dir,
                "created_at": r.created_at,
                "finished_at": r.finished_at,
            }
            for r in s.scalars(query)
        ]
