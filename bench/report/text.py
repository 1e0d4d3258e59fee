"""Small formatting helpers shared by the renderers: numbers, counts, settings, notes."""

from __future__ import annotations

import json
import time
from typing import Any

import pandas as pd

import attacks


def count(v: object, unit: str) -> str:
    """'1 epoch', '50 epochs', '17,000 training images' (never '50.0' or '1 epochs')."""
    if v is None or pd.isna(v):
        return f"? {unit}s"
    n = int(v)  # type: ignore[call-overload]
    return f"{n:,} {unit}" + ("" if n == 1 else "s")


def time_left(started: float, done: int, total: int) -> str:
    """`` (about N min left)`` from the wall time per finished job so far (``started``:
    ``time.monotonic()`` at the start; jobs running side by side included); empty before
    the first finishes and after the last."""
    if not done or done >= total:
        return ""
    per = (time.monotonic() - started) / done
    return f" (about {per * (total - done) / 60:.0f} min left)"


def settings_text(params_json: str) -> str:
    """Stored attack settings for a note: floats to 6 significant digits (no 0.0100000002)."""
    try:
        params = json.loads(params_json)
    except (TypeError, ValueError):
        return str(params_json)
    if not isinstance(params, dict):
        return str(params_json)

    def show(v: object) -> str:
        return f"{v:.6g}" if isinstance(v, float) else json.dumps(v, sort_keys=True)

    return ", ".join(f"{k} {show(v)}" for k, v in sorted(params.items()))


def describe_semi_run(spec: dict[str, Any], provenance: dict[str, Any] | None) -> str | None:
    """One line for listings and table notes, or None for a supervised run."""
    if not spec.get("unlabelled"):
        return None
    rec = (provenance or {}).get("pseudo_labels") or {}
    text = (
        f"{spec.get('n_unlabelled')} unlabelled images ({spec['unlabelled']}) "
        f"pseudo-labelled by {spec.get('pseudo_labeller')}"
    )
    if rec:
        text += f" ({rec['labeller_checkpoint']} checkpoint, sha256 {rec['labeller_sha256'][:12]}"
        if rec.get("agreement_with_true_labels") is not None:
            text += f", {100 * rec['agreement_with_true_labels']:.1f}% agree with true labels"
        text += ")"
    return text


def attack_label(attack: str) -> str:
    """How tables and figures name an attack preset: its label (else the name itself)."""
    return attacks.PRESETS.get(attack).label if attack in attacks.PRESETS else attack
