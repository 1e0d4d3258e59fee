"""Shared fixtures: real MNIST subsets from the offline copy, tiny models, temp databases."""

from __future__ import annotations

import os
from pathlib import Path

import pgserver
import pytest
import torch

from bench import data as bdata

REPO = Path(__file__).resolve().parent.parent
# The offline data lives beside the checkout (shared/datasets); the product knows no such
# path, so the tests point BENCH_DATA_ROOT at it when the caller has not.
_SIBLING = REPO.parent / "shared" / "datasets"
if not os.environ.get(bdata.ENV_ROOT) and _SIBLING.is_dir():
    os.environ[bdata.ENV_ROOT] = str(_SIBLING)


def _mnist_available() -> bool:
    try:
        bdata.load_split("mnist", False)
    except bdata.DataNotFoundError:
        return False
    return True


requires_mnist = pytest.mark.skipif(not _mnist_available(), reason="MNIST data not found")


@pytest.fixture(autouse=True)
def _isolate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never write into the user's results/ from tests."""
    monkeypatch.setenv("BENCH_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("BENCH_DB", str(tmp_path / "bench.sqlite"))
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def mnist_small() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """First 1000 training and 200 test images of MNIST, as float in [0, 1]."""
    x_tr, y_tr = bdata.subset(*bdata.load_split("mnist", True), 1000)
    x_te, y_te = bdata.subset(*bdata.load_split("mnist", False), 200)
    return x_tr.float() / 255, y_tr, x_te.float() / 255, y_te


@pytest.fixture(scope="session")
def trained_linear(mnist_small):
    """A softmax regression trained naturally on real MNIST: accurate, and easy to attack."""
    x_tr, y_tr, _, _ = mnist_small
    g = torch.Generator().manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(300):
        idx = torch.randint(0, len(y_tr), (128,), generator=g)
        loss = torch.nn.functional.cross_entropy(model(x_tr[idx]), y_tr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    return model.eval()


@pytest.fixture(scope="session")
def pg_server():
    """A PostgreSQL server for this test session (tests/pgserver.py), or a skip saying why."""
    reason = pgserver.unavailable()
    if reason is not None:
        pytest.skip(f"PostgreSQL tests skipped: {reason}")
    server = pgserver.Server().start()
    yield server
    server.stop()


BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path):
    """A new empty results database on each backend: a SQLite file, a PostgreSQL database."""
    if request.param == "sqlite":
        yield str(tmp_path / "bench.sqlite")
        return
    server = request.getfixturevalue("pg_server")
    url = server.create_database()
    yield url
    server.drop_database(url)
