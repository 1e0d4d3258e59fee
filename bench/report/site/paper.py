"""The paper's Tables 2-5 (as ``bench table --paper`` renders them) and its Figure 2 panels
(as ``bench plot`` draws them), for the site.

A figure is drawn for every setting some stored run was made with: the experiment is
expanded with that run's model, data set, preset, epochs, batch size, learning rate,
subsets and seed (and its inner steps), which names the same runs ``bench plot`` would
find; a setting is kept where at least one run made for the figure alone finished.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from bench.core.constants import RunStatus
from bench.report.plots import PLOTTERS, plot_experiment
from bench.report.render import render_paper, render_table5
from bench.report.site.html import esc, markdown
from bench.spec.experiments import EXPERIMENTS, Job, Overrides, expand

TABLES = (
    (2, "Table 2: white-box"),
    (3, "Table 3: black-box transfer"),
    (4, "Table 4: WRN-34-10, best and last"),
    (5, "Table 5: with unlabelled data"),
)


def tables_page(engine: Engine, runs: list[str] | None = None) -> str:
    """Each table with the command that prints it; empty tables say what would fill them."""
    parts = [
        "<h1>The paper's tables</h1>",
        "<p class='lede'>Wang et al., ICLR 2020 (MART), Tables 2–5, exactly as "
        "<code>bench table --paper --table N</code> prints them: each cell ours, best / last "
        "checkpoint, and in parentheses the paper's number and ours − paper where our eps is "
        "the paper's. The notes under each table say how every number was obtained.</p>",
    ]
    for number, title in TABLES:
        text = (
            render_table5(engine, runs) if number == 5 else render_paper(engine, number, runs=runs)
        )
        parts.append(
            f"<h2>{esc(title)} <span class='sub'>bench table --paper --table {number}</span></h2>"
        )
        parts.append(markdown(text))
    return "\n".join(parts)


def _overrides(spec: dict[str, Any], steps: int | None) -> Overrides:
    return Overrides(
        model=spec.get("model"),
        dataset=spec.get("dataset"),
        preset=spec.get("preset"),
        epochs=spec.get("epochs"),
        batch_size=spec.get("batch_size"),
        lr=spec.get("lr"),
        train_steps=steps,
        train_subset=spec.get("train_subset"),
        test_subset=spec.get("test_subset"),
        seed=int(spec.get("seed", 0)),
    )


def _own_jobs(jobs: list[Job], ov: Overrides) -> list[Job]:
    """The figure's runs that no table needs: an ablated defense or a lambda other than the
    default (a plain MART or TRADES run of the same setting is Table 2's, not a figure)."""
    try:
        plain = {j.spec.key for j in expand("table2-mnist", ov)}
    except (ValueError, LookupError):
        plain = set()
    return [j for j in jobs if j.role == "run" and j.spec.key not in plain]


def figure_settings(records: list[dict[str, Any]]) -> list[tuple[str, Overrides, list[Job]]]:
    """(figure, overrides, its jobs) for every setting in which a run of its own finished."""
    done = {r["name"] for r in records if r["status"] == RunStatus.DONE.value}
    figures = [n for n, e in EXPERIMENTS.items() if e.kind in PLOTTERS]
    out, seen = [], set()
    for name in figures:
        for rec in records:
            spec = rec["spec"]
            for steps in dict.fromkeys([None, (spec.get("defense_params") or {}).get("steps")]):
                ov = _overrides(spec, steps)
                try:
                    jobs = expand(name, ov)
                except (ValueError, LookupError):  # a setting this figure cannot take
                    continue
                key = (name, *sorted(j.spec.key for j in jobs))
                if key not in seen and any(j.spec.name in done for j in _own_jobs(jobs, ov)):
                    seen.add(key)
                    out.append((name, ov, jobs))
    return out


def figures_page(engine: Engine, records: list[dict[str, Any]], img: Path) -> str:
    """Figure 2 panels drawn from the database, with their captions."""
    parts = [
        "<h1>Figure 2 of the paper</h1>",
        "<p class='lede'>MART's ablations (a–c: robust accuracy against epoch) and its "
        "sensitivity to lambda (d), drawn from the per-epoch monitor exactly as "
        "<code>bench plot NAME</code> draws them. Each caption says how the curves were "
        "obtained and names the runs that are missing.</p>",
    ]
    found = figure_settings(records)
    if not found:
        parts.append(
            "<p>No Figure 2 runs in the database yet: <code>bench experiment fig2-ablation"
            "</code> and <code>bench experiment fig2-lambda</code> make them (small "
            "settings: docs/experiments.md).</p>"
        )
    for k, (name, ov, jobs) in enumerate(found):
        png = plot_experiment(engine, name, jobs, img / f"fig{k}")
        caption = png.with_suffix(".txt").read_text().split("\n\n", 1)[-1].strip()
        setting = (
            f"bench plot {name} --model {ov.model} --dataset {ov.dataset} --preset {ov.preset} "
            f"--epochs {ov.epochs} --batch-size {ov.batch_size} --lr {ov.lr:g} --seed {ov.seed}"
            + (f" --train-subset {ov.train_subset}" if ov.train_subset else "")
            + (f" --test-subset {ov.test_subset}" if ov.test_subset else "")
            + (f" --train-steps {ov.train_steps}" if ov.train_steps is not None else "")
            + " --allow-missing"
        )
        parts.append(
            f"<h2>{esc(EXPERIMENTS.get(name).description)}</h2>"
            f"<p><code>{esc(setting)}</code></p>"
            f'<figure><img src="img/fig{k}/{esc(png.name)}" alt="{esc(caption)}"></figure>'
            "<p class='note'>The caption is part of the picture, as <code>bench plot</code> "
            "draws it (and in the .txt file beside it).</p>"
        )
    return "\n".join(parts)
