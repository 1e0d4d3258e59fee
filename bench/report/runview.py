"""One run, everything the database knows about it, as text (``bench show RUN``).

Spec and preset, provenance (first and resumed), the per-epoch history, the checkpoints
with their hashes, every evaluation with its test points and time, and the audit.
"""

from __future__ import annotations

import json

import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bench.core.constants import is_external
from bench.eval.health import from_metrics
from bench.report.runframes import epoch_frame
from bench.store.db import AuditFlag, Run, find_run


def _table(df: pd.DataFrame, empty: str) -> str:
    return df.to_markdown(index=False, floatfmt=".4g") if not df.empty else empty


def provenance_lines(prov: dict) -> list[str]:
    versions = ", ".join(f"{k} {v}" for k, v in (prov.get("versions") or {}).items())
    lines = [
        f"- commit {prov.get('git_commit', '?')}; device {prov.get('device', '?')}; "
        f"host {prov.get('host', '?')}",
        f"- versions: {versions or '?'}",
    ]
    if prov.get("runtime"):
        lines.append(f"- runtime: {json.dumps(prov['runtime'], sort_keys=True)}")
    for r in prov.get("resumed", []):
        lines.append(
            f"- resumed {r.get('at', '?')} on {r.get('device', '?')} at {r.get('git_commit')}"
        )
    return lines


def _summary(run: Run) -> str:
    """What the run is, in one line: trained here (epochs, time) or external (given weights)."""
    where = f"{run.dataset} ({run.data_label})"
    if is_external(run.spec):
        return (
            f"- external model {run.model} ({run.defense}), not trained here: the given "
            f"checkpoint, evaluated on {where}; status {run.status}"
        )
    # train_seconds is written when a run finishes; until then, its epochs so far
    seconds = run.train_seconds or sum(e.seconds for e in run.epochs)
    return (
        f"- {run.defense} on {run.model}, {where}; preset {run.preset}; status {run.status}; "
        f"{run.epochs_done}/{run.spec.get('epochs')} epochs; {seconds:.0f} s of training"
    )


def _evaluations(run: Run) -> pd.DataFrame:
    """Every stored evaluation of the run, its eps beside it."""
    return pd.DataFrame(
        [
            (
                e.checkpoint,
                e.checkpoint_epoch,
                e.attack,
                e.attack_params.get("eps"),
                e.n,
                100 * e.accuracy,
                e.seconds,
                bool(e.attack_params.get("skip_wrong", False)),
            )
            for e in sorted(run.evaluations, key=lambda e: (e.checkpoint, e.id))
        ],
        columns=[
            "checkpoint",
            "epoch",
            "attack",
            "eps",
            "n",
            "accuracy %",
            "seconds",
            "skip wrong",
        ],
    )


def run_view(engine: Engine, name: str) -> str:
    with Session(engine) as s:
        run = find_run(s, name)
        if run is None:
            raise LookupError(f"no run named {name!r} in the database (see `bench ls runs`)")
        epochs = epoch_frame(engine, [run.name])
        cols = ["epoch", "train_loss", "lr", "clean_acc", "robust_acc", "seconds"]
        epochs = epochs[cols].rename(columns={"clean_acc": "clean %", "robust_acc": "PGD-20 %"})
        ckpts = pd.DataFrame(
            [(c.tag, c.epoch, 100 * c.robust_acc, c.sha256[:16], c.path) for c in run.checkpoints],
            columns=["checkpoint", "epoch", "monitor PGD-20 %", "sha256", "file"],
        )
        evs = _evaluations(run)
        audit = pd.DataFrame(
            [
                (a.checkpoint, a.check, a.status, a.detail)
                for a in s.scalars(select(AuditFlag).where(AuditFlag.run_id == run.id))
            ],
            columns=["checkpoint", "check", "status", "detail"],
        )
        health = from_metrics(run.epochs, run.dataset)
        head = [
            f"# {run.name}",
            "",
            _summary(run),
            *([f"- training health: {health.summary()}"] if health is not None else []),
            f"- spec: {json.dumps(run.spec, sort_keys=True)}",
            f"- folder: {run.run_dir}",
            *provenance_lines(run.provenance or {}),
        ]
        return "\n\n".join(
            [
                "\n".join(head),
                "## Epochs\n\n" + _table(epochs, "no epoch finished yet"),
                "## Checkpoints\n\n" + _table(ckpts, "no checkpoint yet"),
                "## Evaluations\n\n"
                + _table(evs, "no evaluation yet: `bench eval " + run.name + "`"),
                "## Audit (docs/audit.md)\n\n" + _table(audit, "not audited yet"),
            ]
        )


def runs_frame(engine: Engine) -> pd.DataFrame:
    """One row per run for `bench ls runs`: what it is and how far it got."""
    with Session(engine) as s:
        rows = []
        for r in s.scalars(select(Run).order_by(Run.id)):
            best = next((c.robust_acc for c in r.checkpoints if c.tag == "best"), None)
            rows.append(
                {
                    "run": r.name,
                    "defense": r.defense,
                    "model": r.model,
                    "dataset": r.dataset,
                    "eps": r.spec.get("eps"),
                    "epochs": f"{r.epochs_done}/{r.spec.get('epochs') or '-'}",
                    "best PGD-20 %": None if best is None or best < 0 else 100 * best,
                    "status": r.status,
                }
            )
    return pd.DataFrame(rows)
