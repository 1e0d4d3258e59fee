"""Models bench did not train, evaluated like its own runs: a user's ``--model-def`` and
the RobustBench zoo (bench/jobs/zoo.py) come through here.

An external model is stored as a Run of kind "external": its spec names the model
definition (``bench/models/external.py``: the callable, its arguments, its input
convention), the checkpoint file and its sha256, the data set and eps; it has one
checkpoint tagged ``best`` (the given file). Tables, the audit, the site and ``bench show``
treat it like a trained run, and ``eval_job`` evaluates it, so a repeated call skips what is
stored. The model is built and its weights loaded before anything is stored: a file that
does not fit is refused with nothing written.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

import attacks
from bench import data as bdata
from bench.core import provenance
from bench.core.constants import EVAL_BATCH, RunKind, RunStatus, Tag
from bench.jobs.evaluate import eval_job
from bench.models.external import ModelDef, build
from bench.store.checkpoints import sha256
from bench.store.db import Checkpoint, Evaluation, Run, add_once, find_run

EXTERNAL_DEFENSE = "external"


def spec_key(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def stored_run(
    s: Session, spec: dict[str, Any], row: dict[str, Any], data_root: str | None, device: str
) -> Run:
    """The external run of ``spec`` (made once; its key is the spec's hash). ``row`` holds
    the name, defense, model and preset; the spec names the checkpoint file and its sha256."""
    key = spec_key(spec)

    def find() -> Run | None:
        return s.scalars(select(Run).where(Run.key == key)).first()

    run = find()
    if run is not None:
        return run
    file = Path(spec["checkpoint_file"])
    # robust_acc: the PGD-20 monitor value of our own checkpoints; unknown here, so -1.
    digest = spec["checkpoint_sha256"]
    ckpt = Checkpoint(tag=Tag.BEST.value, epoch=0, path=str(file), sha256=digest, robust_acc=-1.0)
    run = Run(
        key=key,
        **row,
        dataset=spec["dataset"],
        spec=spec,
        seed=0,
        status=RunStatus.DONE.value,
        epochs_done=0,
        run_dir=str(file.parent),
        data_label=bdata.describe(spec["dataset"], data_root),
        provenance=provenance.collect(device),
        checkpoints=[ckpt],
    )
    return add_once(s, run, find)  # two workers adding it at once: one row


def external_spec(mdef: ModelDef, file: Path, dataset: str) -> dict[str, Any]:
    """The spec of a ``--model-def`` run. Its eps is the data set's usual one (0.3, 8/255):
    the model is the same whatever budget it is attacked with (``eval_job``'s ``eps``)."""
    return {
        "kind": RunKind.EXTERNAL.value,
        "source": "model definition (bench eval --model-def)",
        "model_def": mdef.to_spec(),
        "threat_model": "Linf",
        "checkpoint_file": str(file),
        "checkpoint_sha256": sha256(file),
        "dataset": dataset,
        "eps": bdata.DATASETS.get(dataset).eps,
        "epochs": None,
    }


def external_run(
    engine: Engine,
    mdef: ModelDef,
    file: str | Path,
    dataset: str,
    *,
    data_root: str | None = None,
    device: str = "cpu",
) -> str:
    """The run of ``mdef`` with the weights of ``file`` (checked by loading them first)."""
    path = Path(file).expanduser().resolve()
    bdata.DATASETS.get(dataset)
    build(mdef, path)  # refused here, before anything is stored
    spec = external_spec(mdef, path, dataset)
    name = f"ext-{dataset}-{mdef.short_name.lower()}-{spec['checkpoint_sha256'][:6]}"
    with Session(engine, expire_on_commit=False) as s:
        other = find_run(s, name)
        if other is not None and other.key != spec_key(spec):  # same weights, other settings
            name = f"{name}-{spec_key(spec)[:6]}"
        row = {
            "name": name,
            "defense": EXTERNAL_DEFENSE,
            "model": mdef.target,
            "preset": "external",
        }
        return stored_run(s, spec, row, data_root, device).name


def evaluate_external(
    engine: Engine,
    make_run: Callable[[], str],
    attack_names: Iterable[str],
    **settings: Any,
) -> tuple[str, list[Evaluation]]:
    """Evaluate the best checkpoint of the run ``make_run()`` makes; ``settings`` go to
    ``eval_job``. Transfer attacks need a surrogate trained like the model: refused."""
    names = list(attack_names)
    for a in names:
        if attacks.is_transfer(a):
            raise ValueError(f"{a}: transfer attacks need a surrogate run; not for external models")
    run_name = make_run()
    settings.setdefault("batch_size", EVAL_BATCH)
    evs = eval_job(engine, run_name, attack_names=names, checkpoints=(Tag.BEST.value,), **settings)
    return run_name, evs
