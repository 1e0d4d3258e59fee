"""RobustBench model-zoo entries evaluated with this harness's attacks, DB, tables and audit.

A zoo model is stored as a Run of kind "external" (defense ``zoo``, model the zoo name,
spec naming the source and the checkpoint's sha256) with one checkpoint tagged ``best``
(the published one), so Tables 2-4 and the audit treat it like our own runs. Weights are
loaded by RobustBench's own ``load_model`` (its architectures and key fixes), from
``<model_dir>/cifar10/Linf/<Name>.pt``: downloaded there when online, or given as a local
file. RobustBench's ``benchmark()`` is never called: our attack loop does the evaluation.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from torch import nn

import attacks
from bench import data as bdata
from bench import provenance
from bench.checkpoints import sha256
from bench.db import Checkpoint, Evaluation, Run
from bench.loading import EXTERNAL
from bench.registry import Registry

ZOO_DATASET, THREAT_MODEL, ZOO_EPS = "cifar10", "Linf", 8 / 255
ENV_ZOO_DIR = "BENCH_ZOO_DIR"
DEFAULT_ZOO_DIR = "results/zoo"


class ZooCheckpointMissing(LookupError):
    """No checkpoint file and no way to download one: the message says where to put it."""


def _robustbench() -> tuple[object, dict[str, dict]]:
    """robustbench.utils and its CIFAR-10 Linf entries (imported the offline-safe way)."""
    from bench.models import robustbench_architectures

    robustbench_architectures()  # aliases autoattack, silences import notices
    from robustbench import utils
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    return utils, utils.all_models[BenchmarkDataset.cifar_10][ThreatModel.Linf]


def zoo_registry() -> Registry[dict]:
    """The CIFAR-10 Linf entries, so an unknown name fails with "did you mean"."""
    reg: Registry[dict] = Registry("RobustBench CIFAR-10 Linf model")
    for name, entry in _robustbench()[1].items():
        reg.add(name, entry)
    return reg


def model_dir(path: str | os.PathLike[str] | None = None) -> Path:
    return Path(path or os.environ.get(ENV_ZOO_DIR) or DEFAULT_ZOO_DIR)


def expected_file(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """Where RobustBench's ``load_model`` looks for (and downloads) the checkpoint."""
    return model_dir(root) / ZOO_DATASET / THREAT_MODEL / f"{name}.pt"


def load_zoo_model(
    name: str,
    *,
    checkpoint_file: str | os.PathLike[str] | None = None,
    root: str | os.PathLike[str] | None = None,
) -> nn.Module:
    """The zoo entry ``name`` as an ``nn.Module`` (eval mode, CPU).

    With ``checkpoint_file``, that file is loaded (RobustBench's loader sees it through a
    link in a temporary folder, so its key fixes apply); else ``expected_file(name)``,
    downloaded by RobustBench when missing and the machine is online.
    """
    entry = zoo_registry().get(name)
    if isinstance(entry.get("gdrive_id"), list):
        raise ValueError(f"{name} is an ensemble of several files; not supported here")
    utils, _ = _robustbench()
    if checkpoint_file is not None:
        src = Path(checkpoint_file).resolve()
        if not src.is_file():
            raise ZooCheckpointMissing(f"checkpoint file {src} does not exist")
        with tempfile.TemporaryDirectory() as tmp:
            link = Path(tmp) / ZOO_DATASET / THREAT_MODEL / f"{name}.pt"
            link.parent.mkdir(parents=True)
            link.symlink_to(src)
            return utils.load_model(
                name, model_dir=tmp, dataset=ZOO_DATASET, threat_model=THREAT_MODEL
            ).eval()
    path = expected_file(name, root)
    hint = f"put the checkpoint at {path} or pass --checkpoint-file PATH"
    if not path.is_file() and bdata._offline():
        raise ZooCheckpointMissing(f"no checkpoint for {name} and downloads are off; {hint}")
    try:
        return utils.load_model(
            name, model_dir=model_dir(root), dataset=ZOO_DATASET, threat_model=THREAT_MODEL
        ).eval()
    except Exception as e:  # no network surfaces as many exception types (gdown, requests)
        if path.is_file() and path.stat().st_size == 0:
            path.unlink()  # a failed download leaves an empty file behind
        if path.is_file():
            raise
        raise ZooCheckpointMissing(
            f"could not download {name} ({' '.join(str(e).split())[:120]}); {hint}"
        ) from e


def resolve_file(name: str, checkpoint_file: str | None, root: str | None) -> Path:
    """The file the model is loaded from (downloading it first if needed)."""
    if checkpoint_file is not None:
        return Path(checkpoint_file).resolve()
    path = expected_file(name, root)
    if not path.is_file():
        load_zoo_model(name, root=root)  # downloads, or raises with the expected path
    return path.resolve()


def get_or_create_zoo_run(
    s: Session, name: str, file: Path, dataset: str, data_root: str | None, device: str
) -> Run:
    digest = sha256(file)
    spec = {
        "kind": EXTERNAL,
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
    run = s.scalars(select(Run).where(Run.key == key)).first()
    if run is not None:
        return run
    run = Run(
        key=key,
        name=f"zoo-{dataset}-{name}-{digest[:6]}",
        defense="zoo",
        model=name,
        dataset=dataset,
        preset="robustbench",
        spec=spec,
        seed=0,
        status="done",
        epochs_done=0,
        run_dir=str(file.parent),
        data_label=bdata.describe(dataset, data_root),
        provenance=provenance.collect(device),
    )
    s.add(run)
    s.flush()
    # robust_acc: the PGD-20 monitor value of our own checkpoints; unknown here, so -1.
    s.add(
        Checkpoint(
            run_id=run.id, tag="best", epoch=0, path=str(file), sha256=digest, robust_acc=-1.0
        )
    )
    s.commit()
    return run


def zoo_eval(
    engine: Engine,
    name: str,
    *,
    attack_names: Iterable[str] = ("clean", "fgsm", "pgd20", "cw20"),
    checkpoint_file: str | None = None,
    root: str | None = None,
    dataset: str | None = None,
    test_subset: int | None = 1000,
    device: str = "cpu",
    data_root: str | None = None,
    batch_size: int = 256,
    seed: int = 0,
    progress: bool = True,
) -> tuple[str, list[Evaluation]]:
    """Evaluate a zoo entry with our attack presets; stored evaluations are not redone.

    ``dataset`` defaults to official CIFAR-10, else the offline JPEG stand-in (labelled).
    Returns the run name and the evaluations.
    """
    from bench.jobs import attack_checkpoint

    zoo_registry().get(name)
    names = list(attack_names)
    for a in names:
        if attacks.PRESETS.get(a).kind == "transfer":
            raise ValueError(f"{a}: transfer attacks need a surrogate run; not for zoo models")
    if dataset is None:
        try:
            split = bdata.load_split(ZOO_DATASET, False, data_root)
            dataset = ZOO_DATASET
        except bdata.DataNotFoundError:
            dataset = "cifar10-jpeg"
            split = bdata.load_split(dataset, False, data_root)
    else:
        split = bdata.load_split(dataset, False, data_root)
    x, y = bdata.subset(*split, test_subset)
    file = resolve_file(name, checkpoint_file, root)
    out: list[Evaluation] = []
    with Session(engine, expire_on_commit=False) as s:
        run = get_or_create_zoo_run(s, name, file, dataset, data_root, device)
        ckpt = run.checkpoints[0]
        get_model = functools.cache(lambda: load_zoo_model(name, checkpoint_file=file).to(device))
        for atk_name in names:
            out.append(
                attack_checkpoint(
                    s,
                    run,
                    ckpt,
                    atk_name,
                    x,
                    y,
                    get_model,
                    eps=ZOO_EPS,
                    dataset=dataset,
                    data_label=run.data_label,
                    batch_size=batch_size,
                    seed=seed,
                    device=device,
                    progress=progress,
                )
            )
        run_name = run.name
    from bench.audit import audit_runs

    audit_runs(engine, [run_name], data_root=data_root, device=device)
    return run_name, out
