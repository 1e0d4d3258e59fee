"""Figure 2 of the MART paper as PNG files, rendered from the database (matplotlib, Agg).

- ``fig2-ablation``: PGD-20 robust accuracy (the per-epoch monitor in ``EpochMetric``)
  against epoch, one panel per group of arms: (a) components removed, (b) components
  replaced, (c) the regulariser on a fraction of the data. MART is the dashed blue
  line in every panel, as in the paper.
- ``fig2-lambda``: robust accuracy against lambda for MART and TRADES (d), at the best
  epoch (solid) and the last epoch (dotted); the x ticks are evenly spaced, as the
  paper's footnote says.

Every figure carries a caption with the data set (and whether it is an offline
stand-in), training subset, test points, preset, epochs and the monitor attack. Runs
that are missing or unfinished are named in the caption instead of silently dropped.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bench.core.constants import RunStatus
from bench.report.runframes import epoch_frame
from bench.report.text import count
from bench.spec.experiments import EXPERIMENTS, Job
from bench.store.db import Run

PANEL_TITLES = {
    "a": "(a) removing components",
    "b": "(b) replacing components",
    "c": "(c) regulariser on a fraction of the data",
    "d": "(d) sensitivity to lambda",
}


def caption(engine: Engine, job_list: list[Job], curves: pd.DataFrame) -> str:
    """Data set, subsets, preset, epochs and monitor attack: what the figure shows."""
    specs = [j.spec for j in job_list if j.role == "run"]
    names = [s.name for s in specs]
    with Session(engine) as s:
        runs = {r.name: r for r in s.scalars(select(Run).where(Run.name.in_(names)))}
    spec = specs[0]
    labels = sorted({r.data_label for r in runs.values()}) or [spec.dataset]
    n_train = sorted({r.n_train for r in runs.values() if r.n_train is not None})
    parts = [
        f"Data: {'; '.join(labels)}",
        f"model {spec.model}, preset {spec.preset}, {count(spec.epochs, 'epoch')}, "
        f"eps {spec.eps:.4g}",
        f"training images: {', '.join(map(str, n_train)) or spec.train_subset or 'all'}",
    ]
    if not curves.empty:
        mon = curves.iloc[0]["monitor"]
        parts.append(
            f"robust accuracy: {mon.get('preset', 'pgd20')} monitor "
            f"(eps {mon.get('eps', spec.eps):.4g}, step {mon.get('step_size', 0):.4g}) "
            f"on the first {int(curves['n_monitor'].max())} test points"
        )
    missing = missing_runs(engine, names)
    if missing:
        parts.append(f"{len(missing)} run(s) missing or unfinished: {', '.join(missing)}")
    return "; ".join(parts)


def _wrap(text: str, fig_width_in: float) -> str:
    """Wrap the caption to the figure (about 15 characters per inch at 7 pt)."""
    return "\n".join(textwrap.wrap(text, int(15 * fig_width_in)))


def _style(arm_defense: str, params: tuple) -> dict:
    if arm_defense == "mart" and not params:
        return {"color": "tab:blue", "linestyle": "--", "linewidth": 2.0}
    return {"linewidth": 1.5}


def plot_ablation(engine: Engine, job_list: list[Job], out: Path) -> Path:
    """Fig. 2(a-c): robust accuracy against epoch, one panel per arm group."""
    runs = [j for j in job_list if j.role == "run"]
    curves = epoch_frame(engine, [j.spec.name for j in runs])
    panels = sorted({a.panel for j in runs for a in j.arms})
    plt, ticker = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.6), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        for job in runs:
            for arm in (a for a in job.arms if a.panel == panel):
                c = curves[curves["run"] == job.spec.name]
                label = arm.title if not c.empty else f"{arm.title} (no data)"
                ax.plot(
                    c["epoch"],
                    c["robust_acc"],
                    marker="o",
                    markersize=3,
                    label=label,
                    **_style(arm.defense, arm.params),
                )
        ax.set_title(PANEL_TITLES.get(panel, panel))
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True, min_n_ticks=1))  # epochs
        ax.set_ylabel("robust accuracy (%)")
        top = curves["robust_acc"].max() if not curves.empty else 0.0
        ax.set_ylim(0, min(100.0, max(5.0, 1.1 * top)))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, out, engine, job_list, curves, "Figure 2 (a-c): MART ablations")


def plot_lambda(engine: Engine, job_list: list[Job], out: Path) -> Path:
    """Fig. 2(d): robust accuracy (best and last epoch) against lambda, evenly spaced."""
    runs = [j for j in job_list if j.role == "run"]
    curves = epoch_frame(engine, [j.spec.name for j in runs])
    rows = []
    for job in runs:
        arm = job.arms[0]
        c = curves[curves["run"] == job.spec.name]
        value = dict(arm.params).get("lam", dict(arm.params).get("beta"))
        rows.append(
            {
                "method": "MART" if arm.defense == "mart" else arm.defense.upper(),
                "lam": value,
                "best": c["robust_acc"].max() if not c.empty else float("nan"),
                "last": c["robust_acc"].iloc[-1] if not c.empty else float("nan"),
            }
        )
    df = pd.DataFrame(rows)
    lams = sorted(df["lam"].unique())
    pos = {v: i for i, v in enumerate(lams)}
    plt, _ = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.6))
    for method, sub in df.groupby("method", sort=False):
        color = "tab:blue" if method == "MART" else "tab:orange"
        x = [pos[v] for v in sub["lam"]]
        ax.plot(x, sub["best"], marker="o", color=color, label=f"{method} (best epoch)")
        ax.plot(x, sub["last"], marker="x", linestyle=":", color=color, label=f"{method} (last)")
    ax.set_xticks(range(len(lams)), [f"{v:g}" for v in lams])
    ax.set_xlabel("lambda (MART lam, TRADES beta); evenly spaced ticks")
    ax.set_ylabel("robust accuracy (%)")
    top = df["best"].max() if df["best"].notna().any() else 0.0
    ax.set_ylim(0, min(100.0, max(5.0, 1.1 * top)))
    ax.set_title(PANEL_TITLES["d"])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out, engine, job_list, curves, "Figure 2 (d): lambda")


def _save(
    fig: Any, out: Path, engine: Engine, job_list: list[Job], curves: pd.DataFrame, title
) -> Path:
    return save_figure(fig, out, title, caption(engine, job_list, curves))


def save_figure(
    fig: Any, out: Path, title: str, text: str, in_image: bool = True, reserve: float = 0.0
) -> Path:
    """Title on top, the wrapped caption under the axes (``in_image``: else the page that
    shows the PNG prints it), ``reserve`` inches between them (a legend under the axes);
    the PNG, and the caption in .txt."""
    fig.suptitle(title)
    wrapped = _wrap(text, fig.get_figwidth()) if in_image else ""
    n_lines = wrapped.count("\n") + 1 if in_image else 0  # 7 pt lines: 0.12 in
    # the caption's lines are added to the figure, so a long caption never squeezes the axes
    fig.set_figheight(fig.get_figheight() + reserve + 0.12 * n_lines)
    height = fig.get_figheight()
    if in_image:
        fig.text(0.01, 0.01, wrapped, fontsize=7, va="bottom", ha="left")
    fig.tight_layout(rect=(0, (0.2 + reserve + 0.12 * n_lines) / height, 1, 1 - 0.3 / height))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")  # renamed when whole: never half a picture
    fig.savefig(tmp, dpi=120, format="png")
    pyplot()[0].close(fig)
    tmp.replace(out)
    out.with_suffix(".txt").write_text(f"{title}\n\n{text}\n")
    return out


def pyplot() -> tuple[Any, Any]:
    """matplotlib (Agg), imported when a figure is drawn: it costs 0.7 s of every start-up."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    return plt, ticker


PLOTTERS = {"figure-epochs": plot_ablation, "figure-lambda": plot_lambda}


def missing_runs(engine: Engine, names: list[str]) -> list[str]:
    """The named runs that are not in the database or not finished."""
    with Session(engine) as s:
        done = {
            r.name
            for r in s.scalars(select(Run).where(Run.name.in_(names)))
            if r.status == RunStatus.DONE
        }
    return [n for n in names if n not in done]


def plot_experiment(engine: Engine, name: str, job_list: list[Job], out_dir: Path) -> Path:
    """Render an experiment's figure to ``out_dir/<name>.png`` (caption in ``.txt``)."""
    exp = EXPERIMENTS.get(name)
    if exp.kind not in PLOTTERS:
        figures = ", ".join(n for n, e in EXPERIMENTS.items() if e.kind in PLOTTERS)
        raise ValueError(f"{name} is a table, not a figure; figures: {figures}")
    return PLOTTERS[exp.kind](engine, job_list, Path(out_dir) / f"{name}.png")
