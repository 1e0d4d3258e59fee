"""RobustBench model-zoo entries evaluated with this harness's attacks, DB, tables and audit.

A zoo model is an external model (bench/jobs/external.py) whose definition is the zoo
entry's architecture (defense ``zoo``, model the zoo name) and whose checkpoint is the
published one. Its weights are loaded by ``bench.models.zoo`` with ``weights_only=True``;
RobustBench's ``benchmark()`` is never called: our attack loop does the evaluation.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bench import data as bdata
from bench.core.constants import (
    DEFAULT_ATTACKS,
    EVAL_BATCH,
    ZOO_DEFENSE,
    ZOO_TEST_SUBSET,
    RunKind,
)
from bench.jobs.external import evaluate_external, stored_run
from bench.models.external import ZOO_TARGET, ModelDef, build
from bench.models.zoo import THREAT_MODEL, ZOO_DATASET, ZOO_EPS, download, zoo_registry
from bench.store.checkpoints import sha256
from bench.store.db import Evaluation, Run


def resolve_file(name: str, checkpoint_file: str | None, root: str | None) -> Path:
    """The file the model is loaded from (downloading it first if needed)."""
    if checkpoint_file is not None:
        return Path(checkpoint_file).expanduser().resolve()
    return download(name, root).resolve()


def get_or_create_zoo_run(
    s: Session, name: str, file: Path, dataset: str, data_root: str | None, device: str
) -> Run:
    spec = {  # its fields predate model_def (ModelDef.from_spec reads zoo_name): same keys
        "kind": RunKind.EXTERNAL.value,
        "source": "RobustBench model zoo (robustbench 1.1.1 load_model)",
        "zoo_name": name,
        "threat_model": THREAT_MODEL,
        "checkpoint_file": str(file),
        "checkpoint_sha256": sha256(file),
        "dataset": dataset,
        "eps": ZOO_EPS,
        "epochs": None,
    }
    row = {
        "name": f"zoo-{dataset}-{name}-{spec['checkpoint_sha256'][:6]}",
        "defense": ZOO_DEFENSE,
        "model": name,
        "preset": "robustbench",
    }
    return stored_run(s, spec, row, data_root, device)


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
    if dataset is None:
        try:
            bdata.load_split(ZOO_DATASET, False, data_root)
            dataset = ZOO_DATASET
        except bdata.DataNotFoundError:
            dataset = "cifar10-jpeg"
    bdata.load_split(dataset, False, data_root)
    file = resolve_file(name, checkpoint_file, root)

    def make_run() -> str:
        build(ModelDef(ZOO_TARGET, {"name": name}), file)  # not its weights: nothing stored
        with Session(engine, expire_on_commit=False) as s:
            return get_or_create_zoo_run(s, name, file, dataset, data_root, device).name

    return evaluate_external(
        engine,
        make_run,
        attack_names,
        test_subset=test_subset,
        device=device,
        data_root=data_root,
        batch_size=batch_size,
        seed=seed,
        progress=progress,
        attack_options=attack_options,
    )
