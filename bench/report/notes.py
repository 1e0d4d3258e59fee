"""What stands under and beside a table's numbers: how they were obtained (data, runs,
checkpoints, schedules, attack settings) and what the audit says, per run and checkpoint."""

from __future__ import annotations

import pandas as pd

from bench.core.constants import external_source
from bench.eval.checks import FLAG, NOT_EVALUATED
from bench.report.text import count, settings_text


def audit_text(
    sub: pd.DataFrame, flags: dict[tuple[str, str], list[dict]], members: list[tuple[str, int]]
) -> str:
    """The row's Audit cell, compact: the flagged checks over every seed and checkpoint, or
    ``ok (n checks)``; which run and checkpoint, and what was not evaluated, are in the notes."""
    flagged, checks, audited = set(), 0, False
    for run, _ in members:
        for tag in sorted(sub[sub["run"] == run]["checkpoint"].unique()):
            rows = flags.get((run, str(tag)), [])
            audited |= bool(rows)
            flagged |= {r["check"] for r in rows if r["status"] == FLAG}
            checks = max(checks, sum(r["status"] != NOT_EVALUATED for r in rows))
    if flagged:
        return "flag: " + ", ".join(sorted(flagged))
    return f"ok ({checks} checks)" if audited else "not audited"


def audit_detail(sub: pd.DataFrame, flags: dict[tuple[str, str], list[dict]], run: str) -> str:
    """One run's audit per checkpoint, in words (the site's hover text)."""
    parts = []
    for tag in sorted(sub["checkpoint"].unique()):
        rows = flags.get((run, str(tag)), [])
        bad = [r["check"] for r in rows if r["status"] == FLAG]
        unk = sum(r["status"] == NOT_EVALUATED for r in rows)
        if not rows:
            text = "not audited"
        elif bad:
            text = ", ".join(bad)
        else:
            text = f"no flag in {len(rows) - unk} checks"
        parts.append(f"{tag}: {text}" + (f" ({unk} not evaluated)" if unk else ""))
    return "; ".join(parts)


def points(evs: pd.DataFrame) -> str:
    """How many test points a run's evaluations used, naming the attacks that used fewer."""
    most = int(evs["n"].max())
    fewer = evs[evs["n"] < most].groupby("n")["attack"].unique()
    extra = "; ".join(f"{n} for {', '.join(sorted(a))}" for n, a in fewer.items())
    return f"{most} test points" + (f" ({extra})" if extra else "")


def run_notes(sub: pd.DataFrame) -> list[str]:
    notes = []
    for label in sorted(sub["data_label"].unique()):
        notes.append(f"- Data: {label}")
    for run, r in sub.groupby("run", sort=True):
        first = r.iloc[0]
        epochs = ", ".join(
            f"{c} = epoch {e}"
            for c, e in r.groupby("checkpoint")["checkpoint_epoch"].first().items()
        )
        notes.append(
            f"- `{run}`: {first['model']}, eps {first['eps']:.4g}, preset {first['preset']}, "
            f"{count(first['epochs'], 'epoch')}, "
            f"{count(first['train_subset'], 'training image')}, {points(r)} "
            f"(the first of the test set); checkpoints {epochs}"
            + (f"; schedule cut: {first['schedule']}" if first.get("schedule") else "")
        )
    for atk, r in sub.groupby("attack", sort=False):
        notes.append(f"- {atk}: {settings_text(r.iloc[0]['attack_params'])}")
    return notes


def eval_notes(evs: pd.DataFrame) -> list[str]:
    """Provenance under the table: data, runs (or zoo sources), attack settings."""
    if evs.empty:
        return []
    external = evs[evs["external"]]
    notes = run_notes(evs[~evs["external"]]) if len(external) < len(evs) else []
    for run, r in external.groupby("run", sort=True):
        first = r.iloc[0]
        _, what, weights = external_source(first["defense"])
        notes.append(
            f"- `{run}`: {what} {first['model']} ({weights}, sha256 "
            f"{str(first['checkpoint_sha256'])[:12]}), eps {first['eps']:.4g}, "
            f"{points(r)} (the first of the test set); "
            f"data {first['data_label']}"
        )
    return notes


def audit_notes(flags: dict[tuple[str, str], list[dict]], runs: list[str]) -> list[str]:
    out = []
    for run in runs:
        for (r, tag), rows in sorted(flags.items()):
            if r != run:
                continue
            for f in rows:
                if f["status"] == FLAG:
                    out.append(
                        f"- Audit flag `{f['check']}` on `{run}` ({tag}): {f['detail']} "
                        "(see docs/audit.md)"
                    )
            unk = sorted(f["check"] for f in rows if f["status"] == NOT_EVALUATED)
            if unk:
                out.append(f"- Audit of `{run}` ({tag}) not evaluated: {', '.join(unk)}")
    return out
