"""The options several commands take, each declared once as an ``Annotated`` type.

An option only one command takes is declared in that command's signature; a group of
options that builds one setting (executor, training overrides) is a dataclass added by
``bench/cli/groups.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DbOpt = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="SQLite file, or a database URL such as postgresql+psycopg://user@host/bench "
        "[env BENCH_DB; default $BENCH_HOME/bench.sqlite]",
    ),
]
RunsDirOpt = Annotated[
    Path | None,
    typer.Option(help="where checkpoints go [default $BENCH_HOME/runs; BENCH_HOME: results]"),
]
RootOpt = Annotated[
    str | None, typer.Option("--data-root", help="data folder [env BENCH_DATA_ROOT]")
]
DeviceOpt = Annotated[
    str | None, typer.Option(help="cpu, cuda, cuda:1 ... [default: cuda if available]")
]
AttacksOpt = Annotated[
    str, typer.Option("--attacks", help="comma-separated attack presets (bench ls attacks)")
]
AttackParamOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--attack-param",
        help="attack option ATTACK.KEY=VALUE, e.g. autoattack.n_iter=10, "
        "transfer-pgd20.surrogate_model=resnet18 (repeatable)",
    ),
]
PrecisionOpt = Annotated[
    str,
    typer.Option(help="training arithmetic: fp32, bf16 (autocast; CPU or GPU), fp16 (GPU)"),
]
SkipOpt = Annotated[
    bool,
    typer.Option(
        "--skip-wrong/--attack-all",
        help="count points wrong on clean inputs as not robust without attacking them "
        "(AutoAttack's convention; the kept points get exactly the same attack)",
    ),
]
ChannelsLastOpt = Annotated[
    bool,
    typer.Option(
        "--channels-last/--contiguous",
        help="memory format for training convolutions (channels_last is faster here)",
    ),
]
CompileOpt = Annotated[
    bool, typer.Option("--compile", help="torch.compile the training forward (warm-up cost)")
]
ThreadsOpt = Annotated[
    int | None,
    typer.Option(
        min=1, help="CPU threads [default: OMP_NUM_THREADS where set, else the free cores]"
    ),
]
OversubscribeOpt = Annotated[
    bool,
    typer.Option(
        "--oversubscribe",
        "--nproc-oversubscribe",
        help="allow --threads or --nproc (on CPUs) beyond this machine's usable cores",
    ),
]
NprocOpt = Annotated[
    int | None,
    typer.Option(
        help="processes that train each run together, data parallel (gloo on CPUs, NCCL on "
        "GPUs; under torchrun: its WORLD_SIZE) [default: 1]"
    ),
]
ProgressOpt = Annotated[
    bool,
    typer.Option(
        "--progress/--no-progress",
        " /--quiet",
        help="progress bars and one line per finished epoch (--quiet: neither)",
    ),
]
SeedsOpt = Annotated[
    str | None,
    typer.Option(help="comma-separated seeds, e.g. 0,1,2: one run each (replaces --seed)"),
]
MonitorOpt = Annotated[
    int | None,
    typer.Option(
        min=1, help="first N test images for the per-epoch monitor that picks 'best' [default: all]"
    ),
]
ValOpt = Annotated[
    int | None,
    typer.Option(
        min=1,
        help="hold the last N training images out of training and keep a 'best-val' "
        "checkpoint chosen on them (never on the test set)",
    ),
]
BatchOpt = Annotated[int, typer.Option(min=1, help="test points per attack batch")]
TrainSubOpt = Annotated[int | None, typer.Option(min=1, help="first N training images")]
TestSubOpt = Annotated[int | None, typer.Option(min=1, help="first N test images")]
UnlabOpt = Annotated[
    str | None,
    typer.Option(
        help="semi-supervised: unlabelled images from a folder, .npy/.pt, or "
        "heldout:DATASET:START:STOP"
    ),
]
StatusOpt = Annotated[
    bool,
    typer.Option(
        "--status", help="each job's progress and, if placed, its engine's state; run nothing"
    ),
]
