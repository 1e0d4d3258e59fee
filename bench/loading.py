"""Our checkpoints as plain PyTorch modules: ``bench.load_model("RUN_NAME")``.

A checkpoint is a safetensors file (weights only, cannot run code); the architecture comes
from the run's spec in the database. Loading checks the file's sha256 against the one
recorded with the run, so a module never silently differs from the evaluated one.
"""

from __future__ import annotations

import os
from pathlib import Path

from safetensors import safe_open
from sqlalchemy import select
from sqlalchemy.orm import Session
from torch import nn

from bench import db as bdb
from bench.checkpoints import load_weights, sha256
from bench.db import Checkpoint, Run

EXTERNAL = "external"  # Run.spec["kind"] of a model we did not train (bench/zoo.py)


def checkpoint_model(run: Run, ckpt: Checkpoint) -> nn.Module:
    """The module of a stored checkpoint, in eval mode, on the CPU (file hash checked)."""
    path = Path(ckpt.path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint file {path} of run {run.name} is missing")
    if sha256(path) != ckpt.sha256:
        raise RuntimeError(f"checkpoint {path} changed since it was recorded")
    if run.spec.get("kind") == EXTERNAL:
        from bench.zoo import load_zoo_model

        return load_zoo_model(run.model, checkpoint_file=path).eval()
    from bench.specs import RunSpec
    from bench.train import build_for_spec

    return load_weights(build_for_spec(RunSpec.from_dict(run.spec)), path).eval()


def _run_for_path(s: Session, path: Path) -> tuple[Run | None, str]:
    """A checkpoint file names its run in its metadata (bench/train.py); else its folder."""
    name = path.parent.name
    if path.suffix == ".safetensors":
        with safe_open(str(path), framework="pt") as f:
            name = (f.metadata() or {}).get("run", name)
    return bdb.find_run(s, name), name


def load_model(
    run_name_or_path: str | os.PathLike[str],
    checkpoint: str = "best",
    db: str | os.PathLike[str] | None = None,
) -> nn.Module:
    """Load a run's checkpoint as an ``nn.Module`` (eval mode, CPU).

    ``run_name_or_path`` is a run name or key (``bench ls runs``), a run folder
    (``results/runs/<run>``) or a ``best``/``last`` ``.safetensors`` file; ``checkpoint`` is
    ``best`` or ``last`` (ignored for a file). The database (``db``, else ``BENCH_DB``, else
    ``results/bench.sqlite``) supplies the architecture. Models take images in [0, 1].
    """
    target = Path(run_name_or_path)
    with Session(bdb.connect(db)) as s:
        if target.exists():
            file = target if target.is_file() else target / f"{checkpoint}.safetensors"
            run, name = _run_for_path(s, file)
            if run is None:
                raise LookupError(f"run {name!r} of {file} is not in {bdb.db_path(db)}")
            ckpt = next(
                (c for c in run.checkpoints if Path(c.path).resolve() == file.resolve()), None
            )
            if ckpt is None:  # a copied file: trust its bytes, build the run's architecture
                from bench.specs import RunSpec
                from bench.train import build_for_spec

                return load_weights(build_for_spec(RunSpec.from_dict(run.spec)), file).eval()
            return checkpoint_model(run, ckpt)
        run = bdb.find_run(s, str(run_name_or_path))
        if run is None:
            raise LookupError(
                f"no run or file {str(run_name_or_path)!r} (runs: `bench ls runs`; db "
                f"{bdb.db_path(db)})"
            )
        ckpt = s.scalars(
            select(Checkpoint).where(Checkpoint.run_id == run.id, Checkpoint.tag == checkpoint)
        ).first()
        if ckpt is None:
            raise LookupError(f"run {run.name} has no {checkpoint!r} checkpoint")
        return checkpoint_model(run, ckpt)
