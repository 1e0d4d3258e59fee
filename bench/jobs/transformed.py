"""A trained run behind an input transformation, evaluated as a run of its own.

``bench eval RUN --transform bit-depth:bits=1`` evaluates ``Transformed(net, BitDepth(1))``
(bench/models/transforms.py) on RUN's checkpoints. The defended model gets its own run row
(spec kind ``transformed``: the transformation, its settings and the base run's spec), named
``RUN+bit-depth-bits1``, with the base run's checkpoint files; so every evaluation says
which model it attacked (the bare network is RUN, the defended one this run), and tables,
the audit and the site show the two side by side without mixing them.

A random transformation takes ``draws=K`` (``--transform resize-pad:pad=4,draws=10``): the
defended model's prediction is then taken over K draws (the mean softmax;
``Transformed``), a run of its own beside the one-draw model.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bench.core.constants import RunKind, RunStatus, is_external, trained_spec
from bench.models import TRANSFORMS
from bench.models.transforms import check_draws
from bench.spec.evaluation import parse_value
from bench.store.db import Checkpoint, Run, add_once, find_run


def parse_transform(text: str) -> tuple[str, dict[str, Any]]:
    """``bit-depth:bits=1`` -> ("bit-depth", {"bits": 1}), checked by building it."""
    name, _, rest = text.partition(":")
    if name not in TRANSFORMS:
        raise ValueError(f"unknown transform {name!r}; valid: {', '.join(TRANSFORMS.names())}")
    params: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq:
            raise ValueError(f"--transform {text!r}: settings are KEY=VALUE, got {item!r}")
        params[key.strip()] = parse_value(value.strip())
    own = {k: v for k, v in params.items() if k != "draws"}
    try:
        transform = TRANSFORMS.get(name)(**own)
    except TypeError as e:
        raise ValueError(f"--transform {text!r}: {e}") from None
    try:
        draws = check_draws(params.get("draws", 1), transform)  # the prediction over draws
    except ValueError as e:
        raise ValueError(f"--transform {text!r}: {e}") from None
    if draws == 1:
        params.pop("draws", None)  # one draw is the default: the same run as without it
    return name, params


def transformed_run(engine: Engine, base_name: str, text: str) -> str:
    """The run of ``base_name`` behind the transformation ``text`` (made once); its name."""
    name, params = parse_transform(text)
    with Session(engine, expire_on_commit=False) as s:
        base = find_run(s, base_name)
        if base is None:
            raise LookupError(f"no run named {base_name!r} in the database (see `bench ls runs`)")
        if base.status != RunStatus.DONE or is_external(base.spec):
            raise ValueError(f"{base.name}: --transform takes a finished run of ours")
        if base.spec.get("kind") == RunKind.TRANSFORMED:
            raise ValueError(f"{base.name} is already transformed; name its base run")
        spec = {
            "kind": RunKind.TRANSFORMED.value,
            "transform": name,
            "transform_params": params,
            "base_run": base.name,
            "base": trained_spec(base.spec),
            "eps": base.spec["eps"],
            "epochs": base.spec["epochs"],
        }
        key = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()

        def find() -> Run | None:
            return s.scalars(select(Run).where(Run.key == key)).first()

        tag = "".join(f"-{k}{v}" for k, v in sorted(params.items()))
        row = find() or add_once(s, _row(base, spec, key, f"{base.name}+{name}{tag}"), find)
        return row.name


def _row(base: Run, spec: dict, key: str, name: str) -> Run:
    ckpts = [
        Checkpoint(tag=c.tag, epoch=c.epoch, path=c.path, sha256=c.sha256, robust_acc=-1.0)
        for c in base.checkpoints
    ]
    return Run(
        key=key,
        name=name,
        defense=base.defense,
        model=base.model,
        dataset=base.dataset,
        preset=base.preset,
        spec=spec,
        seed=base.seed,
        status=RunStatus.DONE.value,
        epochs_done=base.epochs_done,
        run_dir=base.run_dir,
        data_label=base.data_label,
        provenance=base.provenance,
        checkpoints=ckpts,
    )
