"""The static site in a real browser: headless Chromium through selenium.

The site is built by `bench report` from the golden fixture database (five MNIST runs at
eps 0.3: two seeds of MART, and rows the audit flags) and opened from file://. Checked:
the leaderboard's rows and numbers against the database frames, sorting by a column,
that every image loads, and that no page logs a console error. Screenshots are kept in
$BENCH_TEST_ARTIFACTS (or the test's temporary folder) to look at.

Needs the Debian packages `chromium` and `chromium-driver` and the `selenium` package
(dev dependency); skipped with a one-line reason where any is missing. The test installs
nothing itself: .ci/run installs the browser where apt can.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.cli import app
from bench.eval.audit import FLAG
from bench.report.frames import audit_flags, paper_frame
from bench.report.runframes import seed_groups
from bench.store import db as bdb

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
Service = pytest.importorskip("selenium.webdriver.chrome.service").Service
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    BROWSER is None or DRIVER is None,
    reason="headless browser test: needs Debian packages chromium and chromium-driver",
)

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "golden.sqlite"
RUNS = [
    "mnist-smallcnn-standard-paper-4.2-mnist-e50-s0-b609c1",
    "mnist-smallcnn-mma-paper-4.2-mnist-e50-s0-a45ab8",
    "mnist-smallcnn-dynamic-paper-4.2-mnist-e50-s0-aa3631",
    "mnist-smallcnn-mart-paper-4.2-mnist-e50-s0-5eb2ad",
    "mnist-smallcnn-mart-paper-4.2-mnist-e50-s1-077f90",
]
BOARD = "board-mnist-eps0.3.html"
COLUMNS = {
    "Natural": "clean",
    "FGSM": "fgsm",
    "PGD-20": "pgd20",
    "CW-inf": "cw20",
    "AutoAttack": "autoattack",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("site")
    db = tmp / "g.sqlite"
    shutil.copy(FIXTURE, db)
    runs = [a for r in RUNS for a in ("--run", r)]
    res = CliRunner().invoke(
        app, ["report", "--out", str(tmp / "site"), "--db", str(db), "--no-progress", *runs]
    )
    assert res.exit_code == 0, res.output
    return tmp / "site", db


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = os.environ.get("BENCH_TEST_ARTIFACTS")
    out = Path(folder) if folder else tmp_path_factory.mktemp("artifacts")
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="module")
def driver():
    opts = webdriver.ChromeOptions()
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        "--disable-gpu",
    ):
        opts.add_argument(arg)
    opts.binary_location = BROWSER
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(DRIVER), options=opts)  # no Selenium Manager
    drv.set_page_load_timeout(60)
    yield drv
    drv.quit()


def _open(driver, path: Path) -> list[dict]:
    """Load a page; returns what it logged to the console while loading."""
    driver.get_log("browser")  # drop what earlier pages left
    driver.get(path.as_uri())
    driver.execute_script("return document.readyState")
    return driver.get_log("browser")


def _column(driver, table: str, label: str) -> list[float | None]:
    return driver.execute_script(
        """const t = document.getElementById(arguments[0]);
        const i = [...t.tHead.rows[0].cells].findIndex(th => th.textContent === arguments[1]);
        return [...t.tBodies[0].rows].map(r => {
            const v = r.cells[i].getAttribute('data-v');
            return v === null ? null : parseFloat(v); });""",
        table,
        label,
    )


def test_leaderboard_rows_and_numbers_match_the_database(site, driver, artifacts) -> None:
    root, db = site
    assert _open(driver, root / BOARD) == []
    driver.save_screenshot(str(artifacts / "leaderboard.png"))
    engine = bdb.connect(db)
    groups = seed_groups(engine, RUNS)
    expected = {tuple(sorted(r for r in RUNS if groups[r][0] == g)) for g, _ in groups.values()}
    rows = driver.execute_script(
        "return [...document.querySelectorAll('#board-best tbody tr')].map(r => "
        "[r.getAttribute('data-runs'), r.className, "
        "[...r.cells].map(c => [c.getAttribute('data-v'), c.querySelector('.v') ? "
        "c.querySelector('.v').textContent : c.textContent.trim()])])"
    )
    assert {tuple(sorted(r[0].split())) for r in rows} == expected and len(rows) == len(expected)
    heads = driver.execute_script(
        "return [...document.querySelectorAll('#board-best thead th')].map(h => h.textContent)"
    )
    frame = paper_frame(engine, 2, RUNS, autoattack=True)
    best = frame[frame["checkpoint"] == "best"].set_index(["run", "attack"])["accuracy"]
    flags = audit_flags(engine, RUNS)
    for runs, cls, cells in rows:
        members = runs.split()
        for label, attack in COLUMNS.items():
            sort, text = cells[heads.index(label)]
            values = best[[(m, attack) for m in members]].dropna()
            if values.empty:
                assert sort is None and text == "—"
                continue
            assert float(sort) == pytest.approx(values.mean(), abs=1e-9)
            assert text == f"{values.mean():.2f}"
        flagged = any(f["status"] == FLAG for m in members for f in flags.get((m, "best"), []))
        assert ("flagged" in cls.split()) == flagged
    assert any("flagged" in r[1] for r in rows)  # the fixture has flagged rows: shown


def test_clicking_a_header_sorts_by_it(site, driver) -> None:
    root, _ = site
    _open(driver, root / BOARD)
    header = driver.find_element("xpath", "//table[@id='board-best']//th[text()='PGD-20']")
    header.click()
    down = _column(driver, "board-best", "PGD-20")
    present = [v for v in down if v is not None]
    assert header.get_attribute("aria-sort") == "descending"
    assert present == sorted(present, reverse=True) and down[: len(present)] == present
    assert len(set(present)) > 1  # the order was a real test
    header.click()
    up = [v for v in _column(driver, "board-best", "PGD-20") if v is not None]
    assert header.get_attribute("aria-sort") == "ascending" and up == sorted(up)
    name = driver.find_element("xpath", "//table[@id='board-best']//th[text()='Defense']")
    name.click()
    names = driver.execute_script(
        "return [...document.querySelectorAll('#board-best tbody tr td:first-child b')]"
        ".map(b => b.textContent.toLowerCase())"
    )
    assert names == sorted(names)


def test_every_page_loads_its_images_without_console_errors(site, driver, artifacts) -> None:
    root, _ = site
    pages = sorted(root.glob("*.html"))
    assert len(pages) == len(RUNS) + 4  # runs, one leaderboard, index, paper, figures
    n_images = 0
    for page in pages:
        logs = _open(driver, page)
        assert [x for x in logs if x["level"] in ("SEVERE", "WARNING")] == [], page.name
        images = driver.execute_script(
            "return [...document.images].map(i => [i.getAttribute('src'), i.complete, "
            "i.naturalWidth])"
        )
        for src, complete, width in images:
            assert complete and width > 0, f"{page.name}: {src} did not load"
        n_images += len(images)
        if page.name == f"run-{RUNS[3]}.html":
            height = driver.execute_script("return document.body.scrollHeight")
            driver.set_window_size(1400, min(height + 50, 6000))
            driver.save_screenshot(str(artifacts / "run-page.png"))
            driver.set_window_size(1400, 1000)
    assert n_images == 2 * len(RUNS)  # training curves and attack ladder per run
