"""HTML building blocks of the static site: escaping, the page frame, sortable tables, and
the small Markdown subset the paper tables are written in (headings, pipe tables, lists).

Every piece of text that comes from the database goes through ``esc`` (html.escape).
Pages need no server and no network: one stylesheet beside them, no fonts to download,
and the only script (column sorting) is inlined in the page.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

# What data labels (bench/data/datasets.py: data_label) say about unofficial copies.
STAND_IN, PARTIAL = "stand-in", "partial copy"

CSS = """\
:root { --fg: #1d2330; --muted: #5b6473; --line: #dde2ea; --head: #f2f4f8;
  --accent: #2458c6; --flag: #fff4d6; --flagline: #d99a00; --good: #1a7f37; --bad: #b42318; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--fg); background: #fff;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,
  sans-serif; }
header.top { background: #1d2330; padding: 10px 24px; display: flex; gap: 6px 16px;
  align-items: baseline; flex-wrap: wrap; }
header.top a { color: #c9d3e6; text-decoration: none; font-size: 13px; }
header.top a.here { color: #fff; font-weight: 600; }
header.top a.brand { color: #fff; font-weight: 700; font-size: 15px; margin-right: 10px; }
main { padding: 14px 24px 36px; }
h1 { font-size: 22px; margin: 6px 0 4px; word-break: break-all; }
h2 { font-size: 18px; margin: 28px 0 8px; padding-bottom: 4px;
  border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 20px 0 6px; }
p, li { max-width: 1100px; }
.lede { color: var(--muted); margin: 2px 0 12px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 12px;
  background: #e8eefc; color: #24427f; margin: 0 4px 4px 0; }
.badge.standin { background: #fde6e4; color: #8a1c1c; }
.badge.warn { background: var(--flag); color: #7a4d00; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 6px 0 14px; font-size: 12.5px; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 7px; text-align: left;
  vertical-align: top; }
th { background: var(--head); font-weight: 600; white-space: nowrap; }
table.sortable th { cursor: pointer; user-select: none; }
table.sortable th::after { content: " \\2195"; color: #9aa3b2; font-size: 11px; }
table.sortable th[aria-sort=ascending]::after { content: " \\25B2"; color: var(--accent); }
table.sortable th[aria-sort=descending]::after { content: " \\25BC"; color: var(--accent); }
th.num, td.num { text-align: right; }
td.num .v { font-weight: 600; font-variant-numeric: tabular-nums; }
td.missing { color: #a0a7b4; text-align: center; }
.sub { display: block; color: var(--muted); font-size: 11px; white-space: nowrap; }
.note { display: block; color: var(--muted); font-size: 11px; max-width: 620px; }
td.name { min-width: 170px; max-width: 220px; }
td.name .note { overflow-wrap: anywhere; }
td.audit { min-width: 140px; max-width: 210px; }
.pos { color: var(--good); } .neg { color: var(--bad); }
tr.flagged td { background: var(--flag); }
tr.flagged td:first-child { box-shadow: inset 4px 0 0 var(--flagline); }
.flag { color: #8a5a00; font-weight: 600; }
td.status-flag { color: #8a5a00; font-weight: 600; }
td.status-ok { color: var(--good); }
td.status-not-evaluated { color: var(--muted); }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 12px; }
a { color: var(--accent); }
figure { margin: 10px 0 18px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 12px; max-width: 1100px; }
ul.notes { color: var(--muted); font-size: 12.5px; padding-left: 18px; }
details { margin: 6px 0 12px; } details summary { cursor: pointer; color: var(--accent); }
pre { background: var(--head); padding: 8px; font-size: 12px; overflow-x: auto; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(280px, 1fr));
  gap: 10px; max-width: 1300px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; }
footer { color: var(--muted); font-size: 12px; padding: 10px 24px;
  border-top: 1px solid var(--line); }
"""

# Click a header to sort by it (numbers by data-v, missing values last); again to reverse.
SORT_JS = """\
(function () {
  function key(td) {
    var v = td.getAttribute('data-v');
    if (v === null) { v = td.textContent.trim(); }
    if (v === '' || v === '\\u2014') { return null; }
    return /^-?[0-9.]+(e-?[0-9]+)?$/i.test(v) ? parseFloat(v) : v.toLowerCase();
  }
  function sortBy(table, th, col) {
    var now = th.getAttribute('aria-sort');
    var desc = now ? now === 'ascending' : th.classList.contains('num');
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[col]), y = key(b.cells[col]);
      if (x === null || y === null) { return (x === null) - (y === null); }
      var c = typeof x === typeof y ? (x < y ? -1 : (x > y ? 1 : 0))
                                    : (typeof x === 'number' ? -1 : 1);
      return desc ? -c : c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    table.querySelectorAll('th').forEach(function (h) { h.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', desc ? 'descending' : 'ascending');
  }
  document.querySelectorAll('table.sortable').forEach(function (table) {
    table.querySelectorAll('thead th').forEach(function (th, col) {
      th.tabIndex = 0;
      th.addEventListener('click', function () { sortBy(table, th, col); });
      th.addEventListener('keydown', function (e) {
        if (e.key === 'Enter') { sortBy(table, th, col); }
      });
    });
  });
})();
"""


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def inline(text: str) -> str:
    """Escaped text with `code` spans (the notes under the paper tables use them)."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", esc(text))


@dataclass(frozen=True)
class Col:
    label: str
    title: str = ""  # tooltip: how the column's numbers were obtained
    num: bool = False


@dataclass(frozen=True)
class Cell:
    html: str  # already escaped
    sort: float | str | None = None  # data-v: what the column sorts by
    title: str = ""
    cls: str = ""


def cell(value: object, **kw: object) -> Cell:
    """A cell of plain text (escaped)."""
    return Cell(esc(value), **kw)  # type: ignore[arg-type]


def table(
    cols: list[Col],
    rows: list[list[Cell]],
    *,
    sortable: bool = True,
    attrs: list[dict[str, str]] | None = None,
    table_id: str = "",
) -> str:
    """A table; ``attrs`` gives each row's attributes (class, data-*), escaped here."""
    head = "".join(
        f"<th{_attr('class', 'num' if c.num else '')}{_attr('title', c.title)}>{esc(c.label)}</th>"
        for c in cols
    )
    body = []
    for i, row in enumerate(rows):
        extra = "".join(_attr(k, v) for k, v in ((attrs or [{}] * len(rows))[i]).items())
        tds = "".join(
            f"<td{_attr('class', c.cls)}{_attr('data-v', _sort_text(c.sort))}"
            f"{_attr('title', c.title)}>{c.html}</td>"
            for c in row
        )
        body.append(f"<tr{extra}>{tds}</tr>")
    cls = _attr("class", "sortable" if sortable else "")
    tid = _attr("id", table_id)
    rows_html = "\n".join(body)
    return (
        f'<div class="scroll"><table{tid}{cls}><thead><tr>{head}</tr></thead>\n'
        f"<tbody>\n{rows_html}\n</tbody></table></div>"
    )


def _sort_text(v: float | str | None) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if v != v else repr(v)  # NaN: missing
    return str(v)


def _attr(name: str, value: str) -> str:
    return f' {name}="{esc(value)}"' if value != "" else ""


def notes(lines: list[str]) -> str:
    """Markdown-style note lines ("- text with `code`") as a list."""
    items = "".join(f"<li>{inline(line.removeprefix('- '))}</li>" for line in lines)
    return f'<ul class="notes">{items}</ul>' if items else ""


def data_badges(label: str) -> str:
    """The data set's label, marked when it is an offline stand-in for the official data."""
    badge = ""
    if STAND_IN in label:
        badge = '<span class="badge standin">offline stand-in data, not official</span>'
    elif PARTIAL in label:
        badge = '<span class="badge warn">partial copy of the data set</span>'
    return f"{badge}<span class='note'>{esc(label)}</span>"


def page(title: str, body: str, nav: list[tuple[str, str]], here: str, sort: bool = True) -> str:
    """A whole page: the top bar (``nav``: file, label), the body, the sorting script."""
    links = "".join(
        f'<a href="{esc(href)}"{_attr("class", "here" if href == here else "")}>{esc(label)}</a>'
        for href, label in nav
    )
    script = f"<script>\n{SORT_JS}</script>\n" if sort else ""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<title>{esc(title)}</title>\n<link rel="icon" href="data:,">\n'
        '<link rel="stylesheet" href="style.css">\n</head>\n<body>\n'
        f'<header class="top"><a class="brand" href="index.html">bench results</a>{links}'
        f"</header>\n<main>\n{body}\n</main>\n"
        "<footer>Built by <code>bench report</code> from the results database; every number "
        "says how it was obtained (hover a cell, and see the notes under each table).</footer>\n"
        f"{script}</body>\n</html>\n"
    )


def markdown(text: str) -> str:
    """The Markdown that ``bench table --paper`` prints, as HTML: ### headings, pipe tables,
    "- " lists and paragraphs (nothing else appears in it)."""
    out = []
    for block in re.split(r"\n\s*\n", text.strip()):
        lines = block.splitlines()
        if lines[0].startswith("#"):
            level = min(len(lines[0]) - len(lines[0].lstrip("#")), 4)
            out.append(f"<h{level}>{inline(lines[0].lstrip('#').strip())}</h{level}>")
            lines = lines[1:]
        if not lines:
            continue
        if lines[0].startswith("|"):
            out.append(_pipe_table(lines))
        elif lines[0].startswith("- "):
            out.append(notes(lines))
        else:
            out.append(f"<p>{inline(' '.join(lines))}</p>")
    return "\n".join(out)


def _pipe_table(lines: list[str]) -> str:
    def split(line: str) -> list[str]:
        return [c.strip() for c in line.strip().strip("|").split("|")]

    cols = [Col(c) for c in split(lines[0])]
    rows = [[Cell(inline(c)) for c in split(line)] for line in lines[2:] if line.startswith("|")]
    return table(cols, rows, sortable=False)
