"""The `bench` command line: run, eval, table, ls, demo.

Every command validates names against the registries and fails with one line and a
non-zero exit on bad input; work already in the database is never redone.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

import attacks
import defenses
from bench import data as bdata
from bench import db as bdb
from bench import jobs, tables
from bench.models import MODELS
from bench.presets import TRAIN_PRESETS
from bench.provenance import default_device
from bench.registry import UnknownNameError
from bench.semi import describe_run as describe_semi_run
from bench.specs import RunSpec, resolve

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
F = TypeVar("F", bound=Callable[..., Any])

DbOpt = Annotated[
    Path | None,
    typer.Option("--db", help="SQLite file [env BENCH_DB; default results/bench.sqlite]"),
]
RootOpt = Annotated[
    str | None, typer.Option("--data-root", help="data folder [env BENCH_DATA_ROOT]")
]
DeviceOpt = Annotated[
    str | None, typer.Option(help="cpu, cuda, cuda:1 ... [default: cuda if available]")
]
AttacksOpt = Annotated[str, typer.Option("--attacks", help="comma-separated attack presets")]


def fail(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)
    raise typer.Exit(2)


def clean_errors(fn: F) -> F:
    """Turn expected errors into one line on stderr and exit code 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (UnknownNameError, ValueError, LookupError, bdata.DataNotFoundError) as e:
            fail(str(e))

    return wrapper  # type: ignore[return-value]


def split_list(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def check_attacks(names: list[str]) -> list[str]:
    for n in names:
        attacks.PRESETS.get(n)
    return names


def parse_params(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--param expects key=value, got {item!r}")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = int(v) if v.strip().lstrip("-").isdigit() else float(v)
        except ValueError:
            out[k.strip()] = v.strip()
    return out


def default_dataset(model: str) -> str:
    return "mnist" if model in ("smallcnn", "tiny-cnn") else "cifar10"


@app.command()
@clean_errors
def run(
    defense: Annotated[str, typer.Option(help="defense name (bench ls defenses)")],
    model: Annotated[str, typer.Option(help="model name (bench ls models)")],
    dataset: Annotated[
        str | None, typer.Option(help="default: mnist for smallcnn, else cifar10")
    ] = None,
    preset: Annotated[str | None, typer.Option(help="training preset (bench ls presets)")] = None,
    epochs: Annotated[int | None, typer.Option(min=1)] = None,
    batch_size: Annotated[int | None, typer.Option(min=1)] = None,
    lr: Annotated[float | None, typer.Option(min=0.0)] = None,
    momentum: Annotated[float | None, typer.Option(min=0.0)] = None,
    weight_decay: Annotated[float | None, typer.Option(min=0.0)] = None,
    milestones: Annotated[
        str | None, typer.Option(help="epochs where lr drops, e.g. 75,90")
    ] = None,
    eps: Annotated[
        float | None, typer.Option(min=0.0, help="L-inf budget (training and eval)")
    ] = None,
    train_steps: Annotated[int | None, typer.Option(min=0, help="inner PGD steps")] = None,
    train_step_size: Annotated[float | None, typer.Option(min=0.0)] = None,
    start: Annotated[str | None, typer.Option(help="inner PGD start: uniform|normal|none")] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="defense parameter key=value, e.g. lam=6")
    ] = None,
    seed: int = 0,
    train_subset: Annotated[int | None, typer.Option(min=1, help="first N training images")] = None,
    test_subset: Annotated[int | None, typer.Option(min=1, help="first N test images")] = None,
    unlabelled: Annotated[
        str | None,
        typer.Option(help="semi-supervised: folder, .npy/.pt, or heldout:DATASET:START:STOP"),
    ] = None,
    evaluate: Annotated[
        bool, typer.Option("--eval/--no-eval", help="evaluate after training")
    ] = True,
    attack_list: AttacksOpt = ",".join(jobs.DEFAULT_ATTACKS),
    device: DeviceOpt = None,
    db: DbOpt = None,
    runs_dir: Annotated[Path, typer.Option(help="where checkpoints go")] = Path(
        jobs.DEFAULT_RUNS_DIR
    ),
    data_root: RootOpt = None,
    progress: bool = True,
) -> None:
    """Train a defense (resuming an interrupted run), then evaluate it."""
    MODELS.get(model)
    dataset = dataset or default_dataset(model)
    bdata.DATASETS.get(dataset)
    names = check_attacks(split_list(attack_list)) if evaluate else []
    if start is not None and start not in ("uniform", "normal", "none"):
        raise ValueError(f"unknown start {start!r}; valid: uniform, normal, none")
    overrides = {
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "momentum": momentum,
        "weight_decay": weight_decay,
        "milestones": tuple(int(m) for m in split_list(milestones)) if milestones else None,
        "eps": eps,
        "steps": train_steps,
        "step_size": train_step_size,
        "start": start,
    }
    spec = resolve(
        defense,
        model,
        dataset,
        preset,
        seed=seed,
        train_subset=train_subset,
        test_subset=test_subset,
        overrides=overrides,
        defense_overrides=parse_params(param or []),
    )
    if unlabelled is not None:  # pseudo-labelled by a natural run, trained when missing
        from bench.semi import attach_unlabelled

        spec = attach_unlabelled(spec, unlabelled, data_root)
    device = device or default_device()
    engine = bdb.connect(db)
    typer.echo(f"run {spec.name} on {device}", err=True)
    run_row, trained = jobs.train_job(
        engine, spec, runs_dir=runs_dir, device=device, data_root=data_root, progress=progress
    )
    if not trained:
        typer.echo(f"already trained: {run_row.name} (in {bdb.db_path(db)})", err=True)
    if names:
        evs = jobs.eval_job(
            engine,
            spec.name,
            attack_names=names,
            device=device,
            data_root=data_root,
            progress=progress,
        )
        _print_evals(evs)


def _print_evals(evs: list[bdb.Evaluation]) -> None:
    for e in evs:
        typer.echo(
            f"{e.checkpoint:>4} (epoch {e.checkpoint_epoch:>3})  {e.attack:<8} "
            f"{100 * e.accuracy:6.2f}%  ({e.correct}/{e.n}, {e.seconds:.1f}s)"
        )


@app.command("eval")
@clean_errors
def eval_cmd(
    runs: Annotated[list[str] | None, typer.Argument(help="run names (bench ls runs)")] = None,
    all_runs: Annotated[bool, typer.Option("--all", help="every finished run")] = False,
    attack_list: AttacksOpt = ",".join(jobs.DEFAULT_ATTACKS),
    checkpoint: Annotated[str, typer.Option(help="best,last")] = "best,last",
    test_subset: Annotated[int | None, typer.Option(min=1, help="first N test images")] = None,
    eps: Annotated[float | None, typer.Option(min=0.0, help="default: the run's eps")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 256,
    seed: int = 0,
    device: DeviceOpt = None,
    db: DbOpt = None,
    data_root: RootOpt = None,
    progress: bool = True,
) -> None:
    """Attack stored checkpoints; evaluations already in the database are skipped."""
    names = check_attacks(split_list(attack_list))
    tags = split_list(checkpoint)
    for t in tags:
        if t not in jobs.CHECKPOINTS:
            raise ValueError(f"unknown checkpoint {t!r}; valid: {', '.join(jobs.CHECKPOINTS)}")
    engine = bdb.connect(db)
    targets = list(runs or [])
    if all_runs:
        targets += [r.name for r in _runs(engine) if r.status == "done"]
    if not targets:
        raise ValueError("name at least one run, or pass --all")
    for name in targets:
        evs = jobs.eval_job(
            engine,
            name,
            attack_names=names,
            checkpoints=tags,
            test_subset=test_subset,
            eps=eps,
            device=device or default_device(),
            data_root=data_root,
            batch_size=batch_size,
            seed=seed,
            progress=progress,
        )
        typer.echo(name)
        _print_evals(evs)


@app.command()
@clean_errors
def table(
    paper: Annotated[bool, typer.Option("--paper", help="the paper's Table 2 layout")] = False,
    number: Annotated[
        int,
        typer.Option(
            "--table", help="with --paper: 2, 3 (black-box), 4 (WRN best/last), 5 (unlabelled)"
        ),
    ] = 2,
    ci: Annotated[bool, typer.Option("--ci", help="95% Wilson intervals (tables 2-4)")] = False,
    autoattack: Annotated[
        bool, typer.Option("--autoattack", help="add an AutoAttack column (tables 2-4)")
    ] = False,
    fmt: Annotated[str, typer.Option("--format", help="markdown|csv|json")] = "markdown",
    output: Annotated[Path | None, typer.Option(help="write to a file instead of stdout")] = None,
    db: DbOpt = None,
) -> None:
    """Render results from the database."""
    if fmt not in ("markdown", "csv", "json"):
        raise ValueError(f"unknown format {fmt!r}; valid: markdown, csv, json")
    if not bdb.db_path(db).exists():
        raise LookupError(f"no database at {bdb.db_path(db)}: run `bench run` first")
    df = tables.evaluations_frame(bdb.connect(db))
    if paper and number in (2, 3, 4):  # bench/paper_tables.py: markdown, csv or json
        from bench.paper_tables import render_paper

        text = render_paper(bdb.connect(db), number, fmt, ci=ci, autoattack=autoattack)
    elif paper and fmt != "markdown":
        raise ValueError("--paper --table 5 renders Markdown; use --format csv/json without it")
    else:
        text = tables.render_long(df, fmt)
    if paper and number == 5:
        from bench.table5 import render_table5

        text = render_table5(bdb.connect(db))
    elif number not in (2, 3, 4, 5):
        raise ValueError(f"unknown paper table {number}; valid: 2, 3, 4, 5")
    if output is None:
        typer.echo(text.rstrip("\n"))
    else:
        output.write_text(text + "\n")
        typer.echo(f"wrote {output}", err=True)


def _runs(engine: Any) -> list[bdb.Run]:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    with Session(engine) as s:
        return list(s.scalars(select(bdb.Run).order_by(bdb.Run.id)))


@app.command("ls")
@clean_errors
def ls(
    what: Annotated[
        str, typer.Argument(help="defenses|attacks|models|datasets|presets|runs|all")
    ] = "all",
    db: DbOpt = None,
) -> None:
    """List what the harness knows."""
    kinds = ("defenses", "attacks", "models", "datasets", "presets", "experiments", "runs")
    if what != "all" and what not in kinds:
        raise ValueError(f"unknown listing {what!r}; valid: all, {', '.join(kinds)}")
    show = kinds if what == "all" else (what,)
    if "defenses" in show:
        typer.echo("defenses:")
        width = max(len(n) for n in defenses.DEFENSES.names())
        for n, cls in defenses.DEFENSES.items():
            typer.echo(f"  {n:<{width}} {cls.summary}")
    if "attacks" in show:
        typer.echo("attacks (presets):")
        for n, p in attacks.PRESETS.items():
            typer.echo(f"  {n:<12} {p.label:<8} {p.attack} {p.params} ({p.source})")
    if "models" in show:
        typer.echo("models:\n  " + ", ".join(MODELS.names()))
    if "datasets" in show:
        typer.echo("datasets:")
        for n, info in bdata.DATASETS.items():
            typer.echo(f"  {n:<14} {info.label}")
    if "presets" in show:
        typer.echo("training presets:")
        for n, p in TRAIN_PRESETS.items():
            typer.echo(f"  {n:<16} {p.source}; {p.notes}")
    if "experiments" in show:
        from bench.experiments import EXPERIMENTS

        typer.echo("experiments (bench experiment NAME --dry-run):")
        for n, e in EXPERIMENTS.items():
            arms = ", ".join(dict.fromkeys(a.defense for a in e.arms))
            typer.echo(f"  {n:<15} {e.description}; {e.model}/{e.dataset}/{e.preset}: {arms}")
    if "runs" in show:
        path = bdb.db_path(db)
        rows = _runs(bdb.connect(db)) if path.exists() else []
        typer.echo(f"runs in {path}:" if rows else f"runs: none in {path}")
        for r in rows:
            typer.echo(f"  {r.name:<60} {r.status:<11} {r.epochs_done}/{r.spec['epochs']} epochs")
            semi_line = describe_semi_run(r.spec, r.provenance)
            if semi_line:
                typer.echo(f"    + {semi_line}")


@app.command()
@clean_errors
def demo(
    train_subset: Annotated[int, typer.Option(min=1)] = 2000,
    test_subset: Annotated[int, typer.Option(min=1)] = 500,
    epochs: Annotated[int | None, typer.Option(min=1, help="default: the preset's")] = None,
    preset: Annotated[str, typer.Option(help="training preset")] = "demo-mnist",
    db: Annotated[Path, typer.Option("--db")] = Path("results/demo.sqlite"),
    device: DeviceOpt = None,
    data_root: RootOpt = None,
    progress: bool = True,
) -> None:
    """A quick real run: Standard, TRADES and MART on an MNIST subset, then Table 2.

    The default preset `demo-mnist` uses eps 0.1 so that minutes of CPU training learn
    something; the table then omits the paper's eps-0.3 numbers. Use
    `--preset paper-4.2-mnist --epochs 50` (and a GPU) for the paper's setting.
    """
    engine = bdb.connect(db)
    device = device or default_device()
    names = []
    for defense in ("standard", "trades", "mart"):
        spec: RunSpec = resolve(
            defense,
            "smallcnn",
            "mnist",
            preset,
            train_subset=train_subset,
            test_subset=test_subset,
            overrides={"epochs": epochs},
        )
        typer.echo(f"== {spec.name}", err=True)
        names.append(spec.name)
        jobs.train_job(engine, spec, device=device, data_root=data_root, progress=progress)
        jobs.eval_job(engine, spec.name, device=device, data_root=data_root, progress=progress)
    from bench.paper_tables import render_paper

    typer.echo(render_paper(engine, 2, runs=names))


# Commands kept in their own module (they import this one) register on `app` here.
from bench import cli_audit as _cli_audit  # noqa: E402, F401
from bench import cli_experiments as _cli_experiments  # noqa: E402, F401


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted: progress is saved; run the same command again to resume", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
