"""Figures of single runs, from the database (matplotlib, Agg, imported when drawn).

- ``plot_curves`` (``bench plot curves RUN...``, and every run page of ``bench report``):
  the per-epoch monitor (clean and PGD-20 accuracy on the monitored test points), the
  training loss and the learning rate against epoch, with the best and last checkpoints
  marked; several runs share the axes, one colour each.
- ``plot_ladder``: the attack ladder of one run, best and last checkpoints side by side,
  with 95% Wilson intervals.

Each figure carries a caption saying how its numbers were obtained (data set and whether
it is an offline stand-in, training subset, preset, monitor attack and its test points).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine

from bench.core.constants import MONITOR_ATTACKS, Tag
from bench.eval.perpoint import wilson_interval
from bench.report.boards import checkpoint_frame, run_records
from bench.report.frames import evaluations_frame
from bench.report.plots import pyplot, save_figure
from bench.report.runframes import epoch_frame
from bench.report.text import attack_label, count

MARKERS = {"best": ("*", 13), "last": ("s", 7)}


def curves_caption(engine: Engine, runs: list[str], curves: pd.DataFrame) -> str:
    """Per run: data, preset, epochs, training images, monitor attack, checkpoint epochs;
    what several runs share is said once, before them."""
    ckpts = checkpoint_frame(engine, runs)
    facts: dict[str, list[str]] = {}
    for rec in run_records(engine, runs):
        c = curves[curves["run"] == rec["name"]]
        facts[rec["name"]] = _facts(rec, c)
    common = [f for f in facts[runs[0]] if len(runs) > 1 and all(f in v for v in facts.values())]
    parts = [f"All {len(runs)} runs: " + "; ".join(common)] if common else []
    for name, own in facts.items():
        tags = ckpts[ckpts["run"] == name]
        marks = ", ".join(f"{t.checkpoint} = epoch {t.epoch}" for t in tags.itertuples())
        text = "; ".join(f for f in own if f not in common)
        text += ("; " if text else "") + (f"checkpoints {marks}" if marks else "")
        parts.append(f"{name}: {text}" if text else name)
    return ". ".join(parts) + "."


def _facts(rec: dict, c: pd.DataFrame) -> list[str]:
    """How one run's curves were made, as the caption's clauses."""
    out = [
        f"data {rec['data_label'] or rec['dataset']}",
        f"model {rec['model']}, preset {rec['preset']}, "
        f"eps {rec['spec'].get('eps', float('nan')):.4g}, "
        f"{count(rec['epochs_done'], 'epoch')} of {rec['spec'].get('epochs')}, "
        f"{count(rec['n_train'], 'training image')}",
    ]
    if not c.empty:
        mon = c.iloc[0]["monitor"] or {}
        out.append(
            f"monitor {mon.get('preset', 'pgd20')} (eps {mon.get('eps', 0):.4g}, step "
            f"{mon.get('step_size', 0):.4g}) and clean accuracy on the first "
            f"{int(c['n_monitor'].max())} test points"
        )
    return out


def plot_curves(engine: Engine, runs: list[str], out: Path, in_image: bool = True) -> Path:
    """Accuracy (clean dashed, PGD-20 solid), loss and learning rate against epoch; the
    caption goes under the axes (``in_image``) and always into the .txt beside the PNG."""
    if not runs:
        raise ValueError("name at least one run (see `bench ls runs`)")
    records = {r["name"]: r for r in run_records(engine, runs)}
    known = set(records)
    if unknown := [r for r in runs if r not in known]:
        raise LookupError(f"no run named {unknown[0]!r} in the database (see `bench ls runs`)")
    curves = epoch_frame(engine, runs)
    if missing := [r for r in runs if r not in set(curves["run"])]:
        raise LookupError(f"{missing[0]} has no finished epoch in the database: nothing to draw")
    ckpts = checkpoint_frame(engine, runs)
    plt, ticker = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.6), gridspec_kw={"width_ratios": [2, 1, 1]})
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, run in enumerate(runs):
        c, colour = curves[curves["run"] == run], colours[i % len(colours)]
        name = _short(records, run, runs) if len(runs) > 1 else "PGD-20"
        axes[0].plot(c["epoch"], c["robust_acc"], color=colour, marker="o", ms=3, label=name)
        clean = f"{name} clean" if len(runs) > 1 else "clean"
        axes[0].plot(c["epoch"], c["clean_acc"], color=colour, ls="--", alpha=0.8, label=clean)
        _mark_checkpoints(axes[0], c, ckpts[ckpts["run"] == run], colour)
        axes[1].plot(c["epoch"], c["train_loss"], color=colour, marker="o", ms=3)
        axes[2].plot(c["epoch"], c["lr"], color=colour, marker="o", ms=3, drawstyle="steps-mid")
    titles = ("accuracy on the monitored test points (%)", "training loss", "learning rate")
    for ax, title in zip(axes, titles, strict=True):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True, min_n_ticks=1))
        ax.grid(alpha=0.3)
    axes[0].set_ylim(0, 100)
    if curves["lr"].gt(0).all() and curves["lr"].max() > 20 * curves["lr"].min():
        axes[2].set_yscale("log")
    for tag, (marker, size) in MARKERS.items():  # legend keys for the checkpoint markers
        epochs = ckpts[ckpts["checkpoint"] == tag]["epoch"] if len(runs) == 1 else []
        where = f" (epoch {int(epochs.iloc[0])})" if len(epochs) else ""
        axes[0].plot(
            [],
            [],
            marker=marker,
            ms=size * 0.7,
            color="grey",
            mec="black",
            ls="none",
            label=f"{tag} checkpoint{where}",
        )
    # Under the axes and their labels, never over the curves (a short run's curves fill the
    # whole box), running right under the other panels; kept out of the layout, which
    # would otherwise shrink the first panel to the legend's width, and given its room.
    ncol = 4 if len(runs) == 1 else 6
    legend = axes[0].legend(
        fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.2), ncol=ncol, frameon=False
    )
    legend.set_in_layout(False)
    rows = -(-len(legend.get_texts()) // ncol)
    title = "Training curves" + (f": {runs[0]}" if len(runs) == 1 else f" ({len(runs)} runs)")
    caption = curves_caption(engine, runs, curves)
    return save_figure(fig, out, title, caption, in_image, reserve=0.6 + 0.2 * rows)


def _short(records: dict[str, dict], run: str, runs: list[str]) -> str:
    """A legend name: the defense and seed, or the run's name where those repeat."""
    short = {r: f"{records[r]['defense']} s{records[r]['seed']}" for r in runs}
    return short[run] if list(short.values()).count(short[run]) == 1 else run


def _mark_checkpoints(ax: Any, c: pd.DataFrame, ckpts: pd.DataFrame, colour: str) -> None:
    """A star at the best checkpoint's epoch and a square at the last one, on PGD-20 (their
    epochs are in the legend: a label on the curve would cover it)."""
    by_epoch = c.set_index("epoch")["robust_acc"]
    for t in ckpts.itertuples():
        if t.epoch not in by_epoch.index or t.checkpoint not in MARKERS:
            continue
        marker, size = MARKERS[t.checkpoint]
        y = float(by_epoch.loc[t.epoch])
        ax.plot([t.epoch], [y], marker=marker, ms=size, color=colour, mec="black", ls="none")


def ladder_order(evs: pd.DataFrame) -> list[str]:
    """Attacks from the weakest (highest accuracy on either checkpoint) to the strongest,
    ties by name: the order of the ladder's bars (top to bottom) and of its table."""
    best = evs.groupby("attack")["accuracy"].max()
    return sorted(best.index, key=lambda a: (-float(best[a]), str(a)))


def plot_ladder(
    evs: pd.DataFrame, run: str, caption: str, out: Path, in_image: bool = True
) -> Path:
    """Horizontal bars per attack (strongest at the bottom), best and last checkpoints."""
    sub = evs[evs["run"] == run]
    order = ladder_order(sub)[::-1]  # the bottom bar is the strongest attack
    plt, _ = pyplot()
    fig, ax = plt.subplots(figsize=(8, 2.6 + 0.45 * len(order)))
    height = 0.4
    for k, (tag, colour) in enumerate((("best", "tab:blue"), ("last", "tab:orange"))):
        rows = sub[sub["checkpoint"] == tag].set_index("attack")
        if rows.empty:
            continue
        ys = [i + (0.5 - k) * height for i, a in enumerate(order) if a in rows.index]
        vals = [float(rows.loc[a, "accuracy"]) for a in order if a in rows.index]
        errs = [_err(rows.loc[a]) for a in order if a in rows.index]
        epoch = int(rows["checkpoint_epoch"].iloc[0])
        ax.barh(
            ys,
            vals,
            height=height,
            color=colour,
            label=f"{tag} (epoch {epoch})",
            xerr=list(zip(*errs, strict=True)) if errs else None,
            capsize=2,
        )
        for y, v in zip(ys, vals, strict=True):
            inside = v > 12
            ax.text(
                1 if inside else v + 1,
                y,
                f"{v:.2f}",
                va="center",
                fontsize=7,
                color="white" if inside else "black",
            )
    ax.set_yticks(range(len(order)), [attack_label(a) for a in order])
    ax.set_xlim(0, 100)
    ax.set_xlabel("accuracy (%), 95% Wilson interval")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    return save_figure(fig, out, f"Attack ladder: {run}", caption, in_image)


def _err(row: pd.Series) -> tuple[float, float]:
    lo, hi = wilson_interval(int(row["correct"]), int(row["n"]))
    return (max(0.0, row["accuracy"] - 100 * lo), max(0.0, 100 * hi - row["accuracy"]))


def sweep_frame(engine: Engine, run: str) -> pd.DataFrame:
    """The run's eps sweep (``bench sweep``): PGD-20 in the run's norm on the best
    checkpoint at every stored eps, by growing eps; empty if it has fewer than two."""
    evs = evaluations_frame(engine, [run], all_budgets=True)
    if evs.empty:
        return evs
    attack = MONITOR_ATTACKS[str(evs["norm"].iloc[0])]
    sub = evs[(evs["attack"] == attack) & (evs["checkpoint"] == Tag.BEST.value)]
    return sub.sort_values("eps") if sub["eps"].nunique() > 1 else sub.iloc[0:0]


def plot_sweep(sweep: pd.DataFrame, run: str, out: Path, in_image: bool = True) -> Path:
    """Accuracy against eps (``sweep_frame``), with 95% Wilson intervals; the run's own
    budget marked. A curve that does not fall to ~0% at the top hides its gradients."""
    plt, _ = pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 3.6))
    errs = [_err(r) for _, r in sweep.iterrows()]
    ax.errorbar(
        sweep["eps"], sweep["accuracy"], yerr=list(zip(*errs, strict=True)), marker="o", capsize=3
    )
    judged = sweep[sweep["judged"]]
    if not judged.empty:
        ax.axvline(float(judged["eps"].iloc[0]), color="grey", ls=":", label="the run's eps")
        ax.legend(fontsize=8, frameon=False)
    ax.set_ylim(-2, 102)
    ax.set_xlabel(f"eps ({sweep['norm'].iloc[0]})")
    ax.set_ylabel("accuracy (%)")
    ax.grid(alpha=0.3)
    attack = attack_label(str(sweep["attack"].iloc[0]))
    n = int(sweep["n"].iloc[0])
    caption = (
        f"{attack} on the best checkpoint (epoch {int(sweep['checkpoint_epoch'].iloc[0])}), "
        f"first {n:,} test points, at each eps of `bench sweep`; every model must fall to "
        "about 0% at the top (an attack that may paint any image); bars: 95% Wilson interval."
    )
    return save_figure(fig, out, f"Eps sweep: {run}", caption, in_image)
