"""RobustBench model-zoo entries evaluated with this harness's attacks, DB, tables and audit.

A zoo model is stored as a Run of kind "external" (defense ``zoo``, model the zoo name,
spec naming the source and the checkpoint's sha256) with one checkpoint tagged ``best``
(the published one), so Tables 2-4 and the audit treat it like our own runs, and it is
evaluated by the same ``eval_job`` as they are. Its weights are loaded by
``bench.models.zoo`` with ``weights_only=True``; RobustBench's ``benchmark()`` is never
called: our attack loop does the evaluation.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

import attacks
from bench import data as bdata
from bench.core import provenance
from bench.core.constants import (
    DEFAULT_ATTACKS,
    EVAL_BATCH,
    ZOO_TEST_SUBSET,
    RunKind,
    RunStatus,
    Tag,
)
from bench.jobs.evaluate import eval_job
from bench.models.zoo import (
    THREAT_MODEL,
    ZOO_DATASET,
    ZOO_EPS,
    download,
    load_zoo_weights,
    zoo_registry,
)
from bench.store.checkpoints import sha256
from bench.store.db import Checkpoint, Evaluation, Run, add_once


def resolve_file(name: str, checkpoint_file: str | None, root: str | None) -> Path:
    """The file the model is loaded from (downloading it first if needed)."""
    if checkpoint_file is not None:
        return Path(checkpoint_file).expanduser().resolve()
    return download(name, root).resolve()


def get_or_create_zoo_run(
    s: Session, name: str, file: Path, dataset: str, data_root: str | None, device: str
) -> Run:
    digest = sha256(file)
    spec = {
        "kind": RunKind.EXTERNAL.value,
        "source": "RobustBench model zoo (robustbench 1.1.1 load_model)",
        "zoo_name": name,
        "threat_model": THREAT_MODEL,
        "checkpoint_file": str(file),
        "checkpoint_sha256": digest,
        "dataset": dataset,
        "eps": ZOO_EPS,
        "epochs": None,
    }
    key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()

    def find() -> Run | None:
        return s.scalars(select(Run).where(Run.key == key)).first()

    run = find()
    if run is not None:
        return run
    # robust_acc: the PGD-20 monitor value of our own checkpoints; unknown here, so -1.
    ckpt = Checkpoint(tag="best", epoch=0, path=str(file), sha256=digest, robust_acc=-1.0)
    run = Run(
        key=key,
        name=f"zoo-{dataset}-{name}-{digest[:6]}",
        defense="zoo",
        model=name,
        dataset=dataset,
        preset="robustbench",
        spec=spec,
        seed=0,
        status=RunStatus.DONE.value,
        epochs_done=0,
        run_dir=str(file.parent),
        data_label=bdata.describe(dataset, data_root),
        provenance=provenance.collect(device),
        checkpoints=[ckpt],
    )
    return add_once(s, run, find)  # two workers adding it at once: one row


def zoo_eval(
    engine: Engine,
    name: str,
    *,
    attack_names: Iterable[str] = DEFAULT_ATTACKS,
    checkpoint_file: str | None = None,
    root: str | None = None,
    dataset: str | None = None,
    test_subset: int | None = ZOO_TEST_SUBSET,
    device: str = "cpu",
    data_root: str | None = None,
    batch_size: int = EVAL_BATCH,
    seed: int = 0,
    progress: bool = True,
    attack_options: dict[str, dict] | None = None,
) -> tuple[str, list[Evaluation]]:
    """Evaluate a zoo entry with our attack presets; stored evaluations are not redone.

    ``dataset`` defaults to official CIFAR-10, else the offline JPEG stand-in (labelled).
    The checkpoint is loaded (and so checked) before anything is stored. Returns the run
    name and the evaluations.
    """
    zoo_registry().get(name)
    names = list(attack_names)
    for a in names:
        if attacks.is_transfer(a):
            raise ValueError(f"{a}: transfer attacks need a surrogate run; not for zoo models")
    if dataset is None:
        try:
            bdata.load_split(ZOO_DATASET, False, data_root)
            dataset = ZOO_DATASET
        except bdata.DataNotFoundError:
            dataset = "cifar10-jpeg"
    bdata.load_split(dataset, False, data_root)
    file = resolve_file(name, checkpoint_file, root)
    load_zoo_weights(name, file)  # a file that is not this model's weights stores nothing
    with Session(engine, expire_on_commit=False) as s:
        run_name = get_or_create_zoo_run(s, name, file, dataset, data_root, device).name
    evs = eval_job(
        engine,
        run_name,
        attack_names=names,
        checkpoints=(Tag.BEST.value,),
        test_subset=test_subset,
        device=device,
        data_root=data_root,
        batch_size=batch_size,
        seed=seed,
        progress=progress,
        attack_options=attack_options,
    )
    return run_name, evs
