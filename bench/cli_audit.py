"""CLI commands ``bench audit`` and ``bench zoo ls|eval`` (registered by bench/cli.py).

``bench audit`` recomputes the gradient-masking audit (docs/audit.md) from stored
evaluations; ``bench zoo eval`` evaluates a RobustBench model-zoo entry with our attacks
and shows RobustBench's published numbers beside ours.
"""

from __future__ import annotations

from typing import Annotated

import typer

from bench import audit as baudit
from bench import db as bdb
from bench.cli import (
    AttacksOpt,
    DbOpt,
    DeviceOpt,
    RootOpt,
    _print_evals,
    app,
    check_attacks,
    clean_errors,
    split_list,
)
from bench.provenance import default_device
from bench.reference import ROBUSTBENCH, ROBUSTBENCH_SOURCE

zoo_app = typer.Typer(no_args_is_help=True, help="RobustBench model-zoo entries (CIFAR-10 Linf)")
app.add_typer(zoo_app, name="zoo")


@app.command("audit")
@clean_errors
def audit_cmd(
    runs: Annotated[list[str] | None, typer.Argument(help="run names [default: all]")] = None,
    fmt: Annotated[str, typer.Option("--format", help="markdown|json")] = "markdown",
    device: DeviceOpt = None,
    db: DbOpt = None,
    data_root: RootOpt = None,
) -> None:
    """Recompute the gradient-masking audit of evaluated checkpoints (docs/audit.md)."""
    if fmt not in ("markdown", "json"):
        raise ValueError(f"unknown format {fmt!r}; valid: markdown, json")
    if not bdb.db_path(db).exists():
        raise LookupError(f"no database at {bdb.db_path(db)}: run `bench run` first")
    res = baudit.audit_runs(
        bdb.connect(db), runs or None, data_root=data_root, device=device or default_device()
    )
    if fmt == "json":
        typer.echo(baudit.summary_json(res))
        return
    if not res:
        typer.echo("nothing to audit: no evaluations of current checkpoints")
    for (run, tag), checks in res.items():
        flagged = [c.check for c in checks if c.status == baudit.FLAG]
        typer.echo(f"{run} ({tag}): " + (", ".join(flagged) + " FLAGGED" if flagged else "ok"))
        for c in checks:
            typer.echo(f"  {c.check:<22} {c.status:<13} {c.detail}")


@zoo_app.command("ls")
@clean_errors
def zoo_ls(
    pattern: Annotated[str, typer.Argument(help="substring of the name")] = "",
    root: Annotated[str | None, typer.Option("--model-dir", help="[env BENCH_ZOO_DIR]")] = None,
) -> None:
    """CIFAR-10 Linf entries, whether a checkpoint is on disk, and published numbers."""
    from bench import zoo

    for name in zoo.zoo_registry().names():
        if pattern.lower() not in name.lower():
            continue
        pub = ROBUSTBENCH.get(name)
        known = f"clean {pub['clean']:.2f}, AutoAttack {pub['autoattack']:.2f}" if pub else ""
        here = "on disk" if zoo.expected_file(name, root).is_file() else "-"
        typer.echo(f"  {name:<45} {here:<8} {known}")


@zoo_app.command("eval")
@clean_errors
def zoo_eval_cmd(
    name: Annotated[str, typer.Argument(help="RobustBench name, e.g. Wang2020Improving")],
    checkpoint_file: Annotated[
        str | None, typer.Option(help="a local checkpoint (no download)")
    ] = None,
    root: Annotated[str | None, typer.Option("--model-dir", help="[env BENCH_ZOO_DIR]")] = None,
    attack_list: AttacksOpt = "clean,fgsm,pgd20,cw20",
    test_subset: Annotated[int, typer.Option(min=1, help="first N test images")] = 1000,
    dataset: Annotated[
        str | None, typer.Option(help="cifar10, else the offline cifar10-jpeg stand-in")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 256,
    device: DeviceOpt = None,
    db: DbOpt = None,
    data_root: RootOpt = None,
    progress: bool = True,
) -> None:
    """Evaluate a zoo entry with our attack presets; stored as an external run."""
    from bench import zoo

    names = check_attacks(split_list(attack_list))
    run, evs = zoo.zoo_eval(
        bdb.connect(db),
        name,
        attack_names=names,
        checkpoint_file=checkpoint_file,
        root=root,
        dataset=dataset,
        test_subset=test_subset,
        device=device or default_device(),
        data_root=data_root,
        batch_size=batch_size,
        progress=progress,
    )
    typer.echo(run)
    _print_evals(evs)
    pub = ROBUSTBENCH.get(name)
    if pub:
        typer.echo(
            f"published ({ROBUSTBENCH_SOURCE}, full test set): clean {pub['clean']:.2f}, "
            f"AutoAttack {pub['autoattack']:.2f}"
        )
    else:
        typer.echo("published numbers: not in bench/reference.py ROBUSTBENCH")


__all__ = ["audit_cmd", "zoo_app"]
