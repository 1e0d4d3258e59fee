"""``bench zoo ls|eval``: RobustBench model-zoo entries, evaluated like our own runs."""

from __future__ import annotations

from typing import Annotated

import typer

from bench.cli.common import DEFAULT_ATTACK_LIST, app, clean_errors, parse_attacks, print_evals
from bench.cli.deferred import model_zoo, provenance, zoo_jobs
from bench.cli.options import (
    AttackParamOpt,
    AttacksOpt,
    BatchOpt,
    DbOpt,
    DeviceOpt,
    ProgressOpt,
    RootOpt,
)
from bench.core.constants import EVAL_BATCH, ZOO_TEST_SUBSET
from bench.core.paper import ROBUSTBENCH, ROBUSTBENCH_SOURCE
from bench.store import db as bdb

zoo_app = typer.Typer(
    no_args_is_help=True,
    help="RobustBench model-zoo entries (CIFAR-10 Linf)",
    rich_markup_mode=None,
)
app.add_typer(zoo_app, name="zoo")


@zoo_app.command("ls")
@clean_errors
def zoo_ls(
    pattern: Annotated[str, typer.Argument(help="substring of the name")] = "",
    root: Annotated[str | None, typer.Option("--model-dir", help="[env BENCH_ZOO_DIR]")] = None,
) -> None:
    """CIFAR-10 Linf entries, whether a checkpoint is on disk, and published numbers."""
    typer.echo(f"  {'name':<45} {'file':<8} published (RobustBench, full test set)")
    for name in model_zoo.zoo_registry().names():
        if pattern.lower() not in name.lower():
            continue
        pub = ROBUSTBENCH.get(name)
        known = f"clean {pub['clean']:.2f}, AutoAttack {pub['autoattack']:.2f}" if pub else ""
        here = "on disk" if model_zoo.expected_file(name, root).is_file() else "-"
        typer.echo(f"  {name:<45} {here:<8} {known}")


@zoo_app.command("eval")
@clean_errors
def zoo_eval_cmd(
    name: Annotated[str, typer.Argument(help="RobustBench name, e.g. Wang2020Improving")],
    checkpoint_file: Annotated[
        str | None, typer.Option(help="a local checkpoint (no download)")
    ] = None,
    root: Annotated[str | None, typer.Option("--model-dir", help="[env BENCH_ZOO_DIR]")] = None,
    attack_list: AttacksOpt = DEFAULT_ATTACK_LIST,
    attack_param: AttackParamOpt = None,
    test_subset: Annotated[int, typer.Option(min=1, help="first N test images")] = ZOO_TEST_SUBSET,
    dataset: Annotated[
        str | None, typer.Option(help="cifar10, else the offline cifar10-jpeg stand-in")
    ] = None,
    batch_size: BatchOpt = EVAL_BATCH,
    device: DeviceOpt = None,
    db: DbOpt = None,
    data_root: RootOpt = None,
    progress: ProgressOpt = True,
) -> None:
    """Evaluate a zoo entry with our attack presets; stored as an external run."""
    names, options = parse_attacks(attack_list, attack_param)
    device = provenance.check_device(device)
    run, evs = zoo_jobs.zoo_eval(
        bdb.connect(db),
        name,
        attack_names=names,
        checkpoint_file=checkpoint_file,
        root=root,
        dataset=dataset,
        test_subset=test_subset,
        device=device,
        data_root=data_root,
        batch_size=batch_size,
        progress=progress,
        attack_options=options,
    )
    typer.echo(run)
    print_evals(evs)
    pub = ROBUSTBENCH.get(name)
    if pub:
        typer.echo(
            f"published ({ROBUSTBENCH_SOURCE}, full test set): clean {pub['clean']:.2f}, "
            f"AutoAttack {pub['autoattack']:.2f}"
        )
    else:
        typer.echo("published numbers: not in bench/core/paper.py ROBUSTBENCH")
