"""Every number unchanged: the committed fixture database renders the numbers it rendered
before the package redesign (tests/fixtures/golden/, made by the earlier code with
its render script at commit 4e709ff; tests/fixtures/README.md).

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

from bench.core.paper import not_the_papers
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
    """Every number as before, except the paper's number (and ours - paper) in rows whose
    model or preset is not the paper's: those have none now."""
    name = f"paper{table}{'_aa' if autoattack else ''}.csv"
    ours = pd.read_csv(io.StringIO(render_paper(engine, table, "csv", autoattack=autoattack)))
    golden = pd.read_csv(GOLDEN / name)
    keys = ["run", "checkpoint", "attack"]
    ours = ours.set_index(keys).loc[golden.set_index(keys).index].reset_index()
    unlike = [
        bool(not_the_papers(table, r.dataset, r.model, r.preset)) and r.defense != "zoo"
        for r in ours.itertuples()
    ]
    assert all(ours.loc[unlike, "paper"].isna())
    golden.loc[unlike, ["paper", "diff"]] = float("nan")
    _same_frame(ours[[*golden.columns, *(c for c in ours if c not in golden)]], golden)


def test_long_export_is_unchanged(engine) -> None:
    ours = pd.read_csv(io.StringIO(render_long(evaluations_frame(engine), "csv")))
    _same_frame(ours, pd.read_csv(GOLDEN / "long.csv"))


def _cells(markdown: str) -> list[tuple[int, list[tuple[str, ...]], bool]]:
    """Per table row: its number of seeds, and per attack cell the numbers of
    ``best / last (paper ...)``.

    The row's name, its Seeds and Audit columns are left out; a cell's difference to the
    paper, its interval, its sd over seeds and its ``(n=k)`` (all new or optional) are dropped.
    The flag says whether the row's block may show the paper's numbers: a block whose model
    or preset is not the paper's no longer does (the old layout showed ResNet-18's numbers
    beside a WRN row).
    """
    rows, papers = [], True
    for line in markdown.splitlines():
        if line.startswith("### "):  # a block: does it still get the paper's numbers?
            papers = "no paper numbers" not in line
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
        rows.append((seeds, out, papers))
    return rows


def _mean(values: list[str]) -> str:
    nums = [float(v) for v in values if v != "—"]
    return f"{sum(nums) / len(nums):.2f}" if nums else "—"


def _same_cells(ours: list, golden: list) -> None:
    """Ours best / last equal, where several seeds now share a row their mean; every
    reference number shown before is shown again (the plain Table 2 now also shows
    RobustBench's number beside a zoo entry, as Tables 3-4 did).

    Rows are matched, not compared in order: tables are now split by data set, eps, model
    and preset, which moves rows between blocks. A row of k seeds matches k consecutive
    old rows (the old layout listed a defense's seeds one after another)."""
    used = [False] * len(golden)

    def matches(row_ours: list, members: list) -> bool:
        if any(len(m) != len(row_ours) for m in members):
            return False
        for i, cell in enumerate(row_ours):
            cells = [m[i] for m in members]
            if cell[:2] != tuple(_mean([c[k] for c in cells]) for k in range(2)):
                return False
            if len(cells[0]) > 2 and cell[2:] != cells[0][2:]:
                return False
        return True

    for seeds, row_ours, papers in ours:
        for start in range(len(golden) - seeds + 1):
            span = range(start, start + seeds)
            members = [golden[j][1] if papers else [c[:2] for c in golden[j][1]] for j in span]
            if not any(used[j] for j in span) and matches(row_ours, members):
                for j in span:
                    used[j] = True
                break
        else:
            raise AssertionError(f"no old row (or run of {seeds}) matches {row_ours}")
    assert all(used), "every old row is accounted for"


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
    assert expected and all(cells for _, cells, _ in expected)  # the fixture fills every table
    _same_cells(_cells(render(engine)), expected)


def test_demo_table_numbers_are_unchanged(engine) -> None:
    demo = [r for r in evaluations_frame(engine)["run"].unique() if "demo-mnist" in r]
    assert len(demo) == 3
    ours = _cells(render_paper(engine, 2, runs=sorted(demo)))
    _same_cells(ours, _cells((GOLDEN / "demo.md").read_text()))
