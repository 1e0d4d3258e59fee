"""``bench ls``: what the harness knows (registries) and what the database holds."""

from __future__ import annotations

from typing import Annotated

import typer

import attacks
import defenses
from bench import data as bdata
from bench.cli.common import app, clean_errors
from bench.cli.options import DbOpt
from bench.models import MODELS, TRANSFORMS
from bench.report.runview import runs_frame
from bench.report.text import describe_semi_run
from bench.spec.experiments import EXPERIMENTS
from bench.spec.presets import TRAIN_PRESETS
from bench.store import db as bdb


@app.command("ls")
@clean_errors
def ls(
    what: Annotated[
        str,
        typer.Argument(help="defenses|attacks|models|transforms|datasets|presets|runs|all"),
    ] = "all",
    db: DbOpt = None,
) -> None:
    """List what the harness knows."""
    kinds = ("defenses", "attacks", "models", "transforms", "datasets", "presets", "experiments")
    kinds += ("runs",)
    if what != "all" and what not in kinds:
        raise ValueError(f"unknown listing {what!r}; valid: all, {', '.join(kinds)}")
    show = kinds if what == "all" else (what,)
    if "defenses" in show:
        typer.echo("defenses:")
        width = max(len(n) for n in defenses.DEFENSES.names())
        for n, cls in defenses.DEFENSES.items():
            typer.echo(f"  {n:<{width}} {cls.summary}")
    if "attacks" in show:
        typer.echo("attacks (presets): name, label, kind, norm, attack(settings), [source]")
        width = max(len(n) for n in attacks.PRESETS.names())
        label = max(len(p.label) for _, p in attacks.PRESETS.items())
        kind = max(len(p.kind) for _, p in attacks.PRESETS.items())
        for n, p in attacks.PRESETS.items():
            settings = ", ".join(f"{k}={v}" for k, v in p.params.items())
            step = f", step eps*{p.step_fraction:g}" if p.step_fraction else ""
            norm = attacks.NORM_LABELS[attacks.norm_of(n)]
            typer.echo(
                f"  {n:<{width}}  {p.label:<{label}}  {p.kind:<{kind}}  {norm:<5}  {p.attack}"
                f"({settings}{step})  [{p.source}]"
            )
    if "models" in show:
        typer.echo("models:\n  " + ", ".join(MODELS.names()))
    if "transforms" in show:
        typer.echo("input transformations (bench eval RUN --transform NAME[:KEY=VALUE,...]):")
        typer.echo("  " + ", ".join(TRANSFORMS.names()))
    if "datasets" in show:
        typer.echo("datasets:")
        for n, info in bdata.DATASETS.items():
            typer.echo(f"  {n:<14} {info.label}")
    if "presets" in show:
        typer.echo("training presets:")
        for n, p in TRAIN_PRESETS.items():
            typer.echo(f"  {n:<16} {p.source}; {p.notes}")
    if "experiments" in show:
        typer.echo("experiments (bench experiment NAME --dry-run):")
        for n, e in EXPERIMENTS.items():
            arms = ", ".join(dict.fromkeys(a.defense for a in e.arms))
            typer.echo(f"  {n:<15} {e.description}; {e.model}/{e.dataset}/{e.preset}: {arms}")
    if "runs" in show:
        path = bdb.describe_db(db)
        engine = bdb.connect(db) if bdb.db_exists(db) else None
        frame = runs_frame(engine) if engine is not None else None
        if frame is None or frame.empty:
            typer.echo(f"runs: none in {path} (try `bench demo`)")
        else:
            typer.echo(f"runs in {path}:")
            typer.echo(frame.to_markdown(index=False, floatfmt=".4g"))
            for r in bdb.list_runs(engine):
                semi_line = describe_semi_run(r.spec, r.provenance)
                if semi_line:
                    typer.echo(f"- {r.name}: {semi_line}")
