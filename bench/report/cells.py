"""One table cell of an accuracy, and one formatter per output.

A cell holds what a reader needs to weigh a number: the accuracy (%), its 95% Wilson
interval and the test points it was measured on, the spread over seeds where there are
several, and the paper's value with our difference. The Markdown tables
(bench/report/render.py), the checklist table (bench/report/masking.py), the site's
leaderboards (bench/report/site/leaderboard.py) and its run pages (runpage.py) format it
here, so a cell reads the same wherever it appears. (The export bundle's Markdown,
bench/report/bundle.py, gives the number, interval and paper in columns of their own.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from bench.eval.perpoint import wilson_interval


def fmt_num(v: float | None, nd: int = 2) -> str:
    return "—" if v is None or pd.isna(v) else f"{v:.{nd}f}"


def _value(row: Any, key: str) -> Any:
    value = row.get(key) if hasattr(row, "get") else None
    return None if value is None or pd.isna(value) else value


@dataclass(frozen=True)
class AccuracyCell:
    accuracy: float | None  # % (None: not evaluated)
    ci_low: float | None = None  # % (the 95% Wilson interval)
    ci_high: float | None = None
    n: int | None = None  # test points
    sd: float | None = None  # sample standard deviation over seeds (two or more)
    n_seeds: int = 1
    paper: float | None = None  # the paper's number, and ours minus it
    diff: float | None = None
    correct: int | None = None  # robust test points, where counted (``counted``)

    @classmethod
    def counted(cls, correct: int, n: int) -> AccuracyCell:
        """One evaluation's counts: the accuracy and its 95% Wilson interval."""
        lo, hi = wilson_interval(correct, n)
        return cls(100 * correct / n, 100 * lo, 100 * hi, n, correct=correct)

    @classmethod
    def of(cls, row: Any) -> AccuracyCell:
        """From a frame row (frames.py's columns; any may be missing); None: not evaluated."""
        if row is None:
            return cls(None)
        n, seeds = _value(row, "n"), _value(row, "n_seeds")
        return cls(
            _value(row, "accuracy"),
            _value(row, "ci_low"),
            _value(row, "ci_high"),
            None if n is None else int(n),
            _value(row, "sd"),
            1 if seeds is None else int(seeds),
            _value(row, "paper"),
            _value(row, "diff"),
        )

    def markdown(self, ci: bool, n_row: int = 1) -> str:
        """One seed's number (its interval under ``ci``), or mean ± sd over seeds;
        ``(n=k)`` where fewer seeds than the row's ``n_row`` have this value."""
        if self.accuracy is None:
            return "—"
        text = fmt_num(self.accuracy)
        if self.sd is not None:
            text += f" ± {fmt_num(self.sd)}"
        elif ci:
            text += f" [{fmt_num(self.ci_low, 1)}, {fmt_num(self.ci_high, 1)}]"
        return text + (f" (n={self.n_seeds})" if self.n_seeds != n_row else "")

    def paper_note(self) -> str:
        """`` (paper, ±diff)`` after our number; empty where the paper has none."""
        if self.paper is None:
            return ""
        diff = "" if self.diff is None else f", {self.diff:+.2f}"
        return f" ({fmt_num(self.paper)}{diff})"

    def short(self, ci: bool) -> str:
        """One decimal (and the interval under ``ci``): the checklist table's cells."""
        if self.accuracy is None:
            return "-"
        text = f"{self.accuracy:.1f}"
        return text + (f" [{self.ci_low:.1f}, {self.ci_high:.1f}]" if ci else "")

    def counts_html(self, seconds: float | None = None) -> str:
        """The run page's cell: ours, the interval, robust / test points and the seconds."""
        assert self.accuracy is not None
        secs = "" if seconds is None or pd.isna(seconds) else f", {seconds:.1f} s"
        return (
            f'<span class="v">{self.accuracy:.2f}</span><span class="sub">[{self.ci_low:.1f}, '
            f"{self.ci_high:.1f}] {self.correct}/{self.n}{secs}</span>"
        )

    def html(self, n_row: int) -> str:
        """The leaderboard's cell body: ours (± sd, or the interval and n), the seeds when
        fewer than the row's, the paper and our difference."""
        assert self.accuracy is not None
        html = [f'<span class="v">{self.accuracy:.2f}</span>']
        if self.n_seeds > 1:
            html.append(f'<span class="sub">± {self.sd:.2f}, {self.n_seeds} seeds</span>')
            html.append(f'<span class="sub">n={self.n}</span>')
        elif self.ci_low is not None:
            html.append(
                f'<span class="sub">[{self.ci_low:.1f}, {self.ci_high:.1f}] n={self.n}</span>'
            )
        if self.n_seeds < n_row:
            html.append(f'<span class="sub">{self.n_seeds} of {n_row} seeds</span>')
        if self.paper is not None:
            diff = float("nan") if self.diff is None else self.diff
            sign = "pos" if diff >= 0 else "neg"
            html.append(
                f'<span class="sub">paper {self.paper:.2f} '
                f'<span class="{sign}">{diff:+.2f}</span></span>'
            )
        return "".join(html)
