"""Every number unchanged: the committed fixture database renders the numbers it rendered
before the package redesign (tests/fixtures/golden/, made by the earlier code with
tests/fixtures/render_golden.py).

Exports (CSV/JSON) are compared column by column, exactly. Markdown layouts changed on
purpose (one Table 2 layout with the difference to the paper and an Audit column; names
from each defense's ``display_name``), so Markdown tables are compared cell by cell on
their numbers: ours best / last and the paper's number.
"""

from __future__ import annotations

import io
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import BACKENDS
from sqlalchemy import select

from bench.report.frames import evaluations_frame
from bench.report.render import render_long, render_paper, render_table5
from bench.store import db as bdb

FIXTURES = Path(__file__).resolve().parent / "fixtures"
GOLDEN = FIXTURES / "golden"
NUMBER = re.compile(r"—|-?\d+\.\d+")


@pytest.fixture(scope="module", params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path_factory):
    """The fixture database as it is (SQLite, migrated in place), or its rows copied to
    PostgreSQL: the same numbers must come out of both."""
    copy = tmp_path_factory.mktemp("golden") / "golden.sqlite"
    shutil.copy(FIXTURES / "golden.sqlite", copy)  # connecting writes (WAL, new columns)
    lite = bdb.connect(copy)
    if request.param == "sqlite":
        yield lite
        return
    server = request.getfixturevalue("pg_server")
    url = server.create_database()
    pg = bdb.connect(url)
    with lite.connect() as src, pg.begin() as dst:
        for table in bdb.Base.metadata.sorted_tables:
            rows = [dict(r) for r in src.execute(select(table)).mappings()]
            if rows:
                dst.execute(table.insert(), rows)
    yield pg
    pg.dispose()
    server.drop_database(url)


def _same_frame(ours: pd.DataFrame, golden: pd.DataFrame) -> None:
    """Every golden column, in its order, with the same values; columns added since (new
    provenance, e.g. ``schedule``) may follow them."""
    assert list(ours.columns)[: len(golden.columns)] == list(golden.columns)
    assert len(ours) == len(golden)
    for col in golden.columns:
        if pd.api.types.is_numeric_dtype(golden[col]):
            pd.testing.assert_series_equal(ours[col], golden[col], check_dtype=False, rtol=0)
        else:
            assert (
                ours[col].fillna("").astype(str).tolist()
                == golden[col].fillna("").astype(str).tolist()
            ), col


@pytest.mark.parametrize("table", [2, 3, 4])
@pytest.mark.parametrize("autoattack", [False, True], ids=["plain", "aa"])
def test_paper_exports_are_unchanged(engine, table: int, autoattack: bool) -> None:
    name = f"paper{table}{'_aa' if autoattack else ''}.csv"
    ours = pd.read_csv(io.StringIO(render_paper(engine, table, "csv", autoattack=autoattack)))
    _same_frame(ours, pd.read_csv(GOLDEN / name))


def test_long_export_is_unchanged(engine) -> None:
    ours = pd.read_csv(io.StringIO(render_long(evaluations_frame(engine), "csv")))
    _same_frame(ours, pd.read_csv(GOLDEN / "long.csv"))


def _cells(markdown: str) -> list[tuple[int, list[tuple[str, ...]]]]:
    """Per table row: its number of seeds, and per attack cell the numbers of
    ``best / last (paper ...)``.

    The row's name, its Seeds and Audit columns are left out; a cell's difference to the
    paper, its interval, its sd over seeds and its ``(n=k)`` (all new or optional) are dropped.
    """
    rows = []
    for line in markdown.splitlines():
        if not line.startswith("|") or set(line) <= set("|:- "):
            continue
        cells = [c.strip() for c in line.strip("|").split("|")][1:]
        if not cells or not NUMBER.search(" ".join(cells)):
            continue  # a header row
        seeds = next((int(m.group(1)) for c in cells if (m := re.match(r"n=(\d+) \(", c))), 1)
        out = []
        for cell in cells:
            if "/" not in cell or "checks" in cell or "audited" in cell:
                continue
            cell = re.sub(r"\[[^\]]*\]", "", cell)  # Wilson intervals
            cell = re.sub(r"± \d+\.\d+|\(n=\d+\)", "", cell)  # sd over seeds, seed counts
            cell = re.sub(r"\(([^,)]*),[^)]*\)", r"(\1)", cell)  # "(paper, diff)" -> "(paper)"
            cell = cell.replace("(—)", "")  # no paper number: the old layout said "(—)"
            out.append(tuple(NUMBER.findall(cell)))
        rows.append((seeds, out))
    return rows


def _mean(values: list[str]) -> str:
    nums = [float(v) for v in values if v != "—"]
    return f"{sum(nums) / len(nums):.2f}" if nums else "—"


def _same_cells(ours: list, golden: list) -> None:
    """Ours best / last equal, where several seeds now share a row their mean; every
    reference number shown before is shown again (the plain Table 2 now also shows
    RobustBench's number beside a zoo entry, as Tables 3-4 did)."""
    rows = iter(golden)
    for seeds, row_ours in ours:
        members = [next(rows)[1] for _ in range(seeds)]
        assert [len(r) for r in members] == [len(row_ours)] * seeds
        for i, cell in enumerate(row_ours):
            cells = [m[i] for m in members]
            assert cell[:2] == tuple(_mean([c[k] for c in cells]) for k in range(2))
            if len(cells[0]) > 2:
                assert cell[2:] == cells[0][2:]
    assert next(rows, None) is None  # every old row is accounted for


@pytest.mark.parametrize(
    ("golden", "render"),
    [
        ("paper2.md", lambda e: render_paper(e, 2)),
        ("paper2_ci_aa.md", lambda e: render_paper(e, 2, ci=True, autoattack=True)),
        ("paper3.md", lambda e: render_paper(e, 3)),
        ("paper4.md", lambda e: render_paper(e, 4)),
        ("paper4_ci_aa.md", lambda e: render_paper(e, 4, ci=True, autoattack=True)),
        ("table5.md", render_table5),
    ],
)
def test_markdown_numbers_are_unchanged(engine, golden: str, render) -> None:
    expected = _cells((GOLDEN / golden).read_text())
    assert expected and all(cells for _, cells in expected)  # the fixture fills every table
    _same_cells(_cells(render(engine)), expected)


def test_demo_table_numbers_are_unchanged(engine) -> None:
    demo = [r for r in evaluations_frame(engine)["run"].unique() if "demo-mnist" in r]
    assert len(demo) == 3
    ours = _cells(render_paper(engine, 2, runs=sorted(demo)))
    _same_cells(ours, _cells((GOLDEN / "demo.md").read_text()))
