"""Stored checkpoints as plain PyTorch modules: the one "check the hash, then build" path.

A checkpoint is a safetensors file (weights only, cannot run code); the architecture comes
from the run's spec in the database. Loading checks the file's sha256 against the one
recorded with the run, so a module never silently differs from the evaluated one. Every
caller (evaluation, audit, transfer surrogates, pseudo-labellers, ``bench.load_model``)
goes through :func:`checkpoint_model`.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session
from torch import nn

from bench.core.constants import RunKind, is_external, trained_spec
from bench.models import TRANSFORMS
from bench.models.external import ModelDef, build
from bench.models.transforms import Transformed
from bench.spec.run import RunSpec, build_for_spec
from bench.store import db as bdb
from bench.store.checkpoints import load_weights, read_metadata, verified
from bench.store.db import Checkpoint, Run


def checkpoint_model(run: Run, ckpt: Checkpoint) -> nn.Module:
    """The module of a stored checkpoint, in eval mode, on the CPU (file hash checked)."""
    path = verified(Path(ckpt.path), ckpt.sha256, f"checkpoint of run {run.name}")
    if is_external(run.spec):
        return build(ModelDef.from_spec(run.spec), path)
    net = load_weights(build_for_spec(RunSpec.from_dict(trained_spec(run.spec))), path).eval()
    if run.spec.get("kind") == RunKind.TRANSFORMED:  # bench/jobs/transformed.py
        params = dict(run.spec["transform_params"])
        draws = int(params.pop("draws", 1))  # the prediction over draws (bench/jobs/transformed.py)
        transform = TRANSFORMS.get(run.spec["transform"])(**params)
        return Transformed(net, transform, draws).eval()
    return net


def _run_for_path(s: Session, path: Path) -> tuple[Run | None, str]:
    """A checkpoint file names its run in its metadata (bench/train/loop.py); else its folder."""
    name = path.parent.name
    if path.suffix == ".safetensors":
        name = read_metadata(path).get("run", name)
    return bdb.find_run(s, name), name


def load_model(
    run_name_or_path: str | os.PathLike[str],
    checkpoint: str = "best",
    db: str | os.PathLike[str] | None = None,
) -> nn.Module:
    """Load a run's checkpoint as an ``nn.Module`` (eval mode, CPU).

    ``run_name_or_path`` is a run name or key (``bench ls runs``), a run folder
    (``$BENCH_HOME/runs/<run>``) or a ``best``/``last`` ``.safetensors`` file; ``checkpoint`` is
    ``best`` or ``last`` (ignored for a file). The database (``db``, else ``BENCH_DB``, else
    ``$BENCH_HOME/bench.sqlite``) supplies the architecture. Models take images in [0, 1].
    """
    target = Path(run_name_or_path)
    with Session(bdb.connect(db)) as s:
        if target.exists():
            file = target if target.is_file() else target / f"{checkpoint}.safetensors"
            run, name = _run_for_path(s, file)
            if run is None:
                raise LookupError(f"run {name!r} of {file} is not in {bdb.describe_db(db)}")
            ckpt = next(
                (c for c in run.checkpoints if Path(c.path).resolve() == file.resolve()), None
            )
            if ckpt is None:  # a copied file: trust its bytes, build the run's architecture
                return load_weights(build_for_spec(RunSpec.from_dict(run.spec)), file).eval()
            return checkpoint_model(run, ckpt)
        run = bdb.find_run(s, str(run_name_or_path))
        if run is None:
            raise LookupError(
                f"no run or file {str(run_name_or_path)!r} (runs: `bench ls runs`; db "
                f"{bdb.describe_db(db)})"
            )
        ckpt = s.scalars(
            select(Checkpoint).where(Checkpoint.run_id == run.id, Checkpoint.tag == checkpoint)
        ).first()
        if ckpt is None:
            raise LookupError(f"run {run.name} has no {checkpoint!r} checkpoint")
        return checkpoint_model(run, ckpt)
