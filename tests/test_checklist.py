"""The checklist job (bench/jobs/checklist.py): it evaluates what the probes call for and,
where PGD-20 has not converged, climbs one rung (PGD-100 with 5 restarts)."""

from __future__ import annotations

import pytest
from conftest import requires_mnist
from eval_helpers import trained_run
from sqlalchemy.orm import Session

from bench.eval.checks import LAST_RUNG
from bench.jobs import checklist
from bench.store import db as bdb

pytestmark = requires_mnist


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A natural linear model (eval_helpers.trained_run) at eps 0.3, judged on 100 points."""
    tmp = tmp_path_factory.mktemp("checklist")
    _, spec = trained_run(tmp, "natural", test_subset=100, eps=0.3)
    return str(tmp / "bench.sqlite"), spec.name


def _attacks(db: str, run: str, tag: str) -> set[str]:
    with Session(bdb.connect(db)) as s:
        row = bdb.find_run(s, run)
        return {e.attack for e in row.evaluations if e.checkpoint == tag}


def test_no_rung_is_climbed_where_pgd20_has_converged(trained: tuple[str, str]) -> None:
    """A natural model falls to PGD-20 already: PGD-100 breaks nothing more, so the
    checklist stops at its five attacks and the predicate reads the stored masks so."""
    db, run = trained
    engine = bdb.connect(db)
    found, attack = checklist.adaptive_eval(
        engine, run, data_root=None, device="cpu", progress=False
    )
    assert attack == "pgd20" and not found.masked
    assert _attacks(db, run, "best") == {"clean", "pgd20", "rays", "pgd100"}
    assert not checklist._pgd_short(engine, run, "best")


def test_a_flagged_checkpoint_gets_pgd100_x5_and_only_it(
    trained: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where ``pgd-converged`` flags the best checkpoint (forced here: a tiny model's PGD
    converges in a few steps), PGD-100 x5 is evaluated on it and not on the last one."""
    db, run = trained
    monkeypatch.setattr(checklist, "_pgd_short", lambda engine, name, tag: tag == "best")
    _, attack = checklist.adaptive_eval(
        bdb.connect(db), run, data_root=None, device="cpu", progress=False
    )
    assert attack == f"pgd20, then {LAST_RUNG} on best"
    assert LAST_RUNG in _attacks(db, run, "best")
    assert LAST_RUNG not in _attacks(db, run, "last")
