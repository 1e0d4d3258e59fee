"""Leaderboard pages: one per (data set, eps), a sortable table per checkpoint (best, last).

Rows are settings aggregated over seeds (bench/report/seeds.py: aggregate_seeds): a
single seed shows its number with its 95% Wilson interval, several seeds their mean ±
sample sd. Every cell names its test points and, where our eps is the paper's, the
paper's number and ours - paper; its tooltip says how it was obtained. A row with an
audit flag is highlighted, never hidden.
"""

from __future__ import annotations

import re

import pandas as pd

import attacks
from bench.core.constants import CHECKPOINTS, L2, LINF, external_source
from bench.core.paper import FAMILY, ROBUSTBENCH_SOURCE, SOURCE, TABLE4_SOURCE
from bench.eval.checks import FLAG
from bench.report.boards import BOARD_ATTACKS, BOARD_ATTACKS_L2, TRANSFER
from bench.report.cells import AccuracyCell
from bench.report.notes import audit_detail, audit_notes, eval_notes
from bench.report.render import display_name
from bench.report.seeds import aggregate_seeds
from bench.report.site.html import Cell, Col, cell, data_badges, esc, notes, table
from bench.report.text import attack_label as preset_label
from bench.report.text import count, settings_text

Flags = dict[tuple[str, str], list[dict]]


def safe(name: str) -> str:
    """A file-name-safe version of a run or data-set name."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def run_file(run: str) -> str:
    return f"run-{safe(run)}.html"


def board_norm(sub: pd.DataFrame) -> str:
    """A leaderboard's threat model (its rows share one)."""
    return str(sub["norm"].iloc[0]) if "norm" in sub else LINF


def board_attacks(norm: str) -> tuple[str, ...]:
    return BOARD_ATTACKS_L2 if norm == L2 else BOARD_ATTACKS


def board_file(dataset: str, eps: float, norm: str = LINF) -> str:
    tag = "" if norm == LINF else f"-{norm}"
    return f"board-{safe(dataset)}{tag}-eps{eps:.6g}.html"


def board_title(dataset: str, eps: float, norm: str = LINF) -> str:
    return f"{FAMILY.get(dataset, dataset)} ({dataset}), {attacks.NORM_LABELS[norm]} eps {eps:.4g}"


def attack_label(attack: str) -> str:
    if attack == TRANSFER:
        return "Transfer (worst)"
    return preset_label(attack)


def boards(frame: pd.DataFrame) -> list[tuple[str, float, pd.DataFrame]]:
    """The leaderboards in a frame: (data set, eps, its rows), by data set then eps."""
    if frame.empty:
        return []
    key = frame["eps"].round(6)
    by = ["dataset", "norm", "_eps"] if "norm" in frame else ["dataset", "_eps"]
    return [
        (str(keys[0]), float(sub["eps"].iloc[0]), sub.drop(columns="_eps"))
        for keys, sub in frame.assign(_eps=key).groupby(by, sort=True)
    ]


LEGEND = (
    "Each cell: accuracy (%) on the first n test points. One seed: its 95% Wilson interval "
    "[low, high]; several seeds: their mean ± sample sd. <i>paper</i>: the paper's number and "
    f"ours − paper, only where our eps is the paper's ({esc(TABLE4_SOURCE)} for WRN-34-10 "
    f"on CIFAR-10, else {esc(SOURCE)}, best checkpoint; RobustBench entries: the "
    f"{esc(ROBUSTBENCH_SOURCE)}). "
    "AutoAttack: stored, or the per-point worst case of its four stored parts. Transfer: the "
    "per-point worst case over every stored transfer attack (black-box; the paper has one "
    "number per transfer attack, so none is shown). '—': not evaluated. Rows with an audit "
    "flag are highlighted, not hidden (docs/audit.md). Hover a cell for how it was obtained; "
    "click a column header to sort."
)


def board_page(sub: pd.DataFrame, groups: dict[str, tuple[str, int]], flags: Flags) -> str:
    """The body of one leaderboard page."""
    first = sub.iloc[0]
    dataset, eps = str(first["dataset"]), float(first["eps"])
    runs = list(dict.fromkeys(sub["run"]))
    grouped = aggregate_seeds(sub, {r: groups.get(r, (r, 0)) for r in runs})
    labels = sorted(set(sub["data_label"]))
    parts = [
        f"<h1>Leaderboard: {esc(board_title(dataset, eps, board_norm(sub)))}</h1>",
        "".join(f"<div>{data_badges(label)}</div>" for label in labels),
        f'<p class="lede">{LEGEND}</p>',
    ]
    for tag in CHECKPOINTS:
        g = grouped[grouped["checkpoint"] == tag]
        if g.empty:
            continue
        what = "highest monitor PGD-20 accuracy" if tag == "best" else "end of training"
        parts.append(f"<h2>{tag.title()} checkpoint <span class='sub'>({what})</span></h2>")
        parts.append(_board_table(g, sub, flags, tag))
    parts.append("<h2>How these numbers were obtained</h2>")
    parts.append(notes(eval_notes(sub) + audit_notes(flags, runs)))
    return "\n".join(parts)


def _board_table(g: pd.DataFrame, sub: pd.DataFrame, flags: Flags, tag: str) -> str:
    norm = board_norm(sub)
    cols = [
        Col("Defense", "display name; model, preset, epochs, training images; the run(s)"),
        Col("Seeds", "number of seeds (runs differing only in the seed)", num=True),
        Col("Epoch", "the checkpoint's epoch (per seed)", num=True),
        *(Col(attack_label(a), f"{a}: accuracy %", num=True) for a in board_attacks(norm)),
        Col("Audit", "gradient-masking audit of this checkpoint (docs/audit.md)"),
    ]
    rows, attrs = [], []
    for group in dict.fromkeys(g["group"]):
        r = g[g["group"] == group].set_index("attack")
        first = r.iloc[0]
        members = [str(m) for m, _ in first["members"]]
        mine = sub[sub["run"].isin(members) & (sub["checkpoint"] == tag)]
        flagged = sorted(
            {f["check"] for m in members for f in flags.get((m, tag), []) if f["status"] == FLAG}
        )
        epochs = mine.groupby("run", sort=False)["checkpoint_epoch"].first()
        n_row = len(first["seeds"])
        cells = [
            _attack_cell(r.loc[a] if a in r.index else None, a, tag, mine, n_row)
            for a in board_attacks(norm)
        ]
        rows.append(
            [
                _defense_cell(first, str(group).split("|")[0], first["members"]),
                cell(len(first["seeds"]), sort=float(len(first["seeds"])), cls="num"),
                cell(", ".join(map(str, epochs)), sort=float(epochs.mean()), cls="num"),
                *cells,
                _audit_cell(first["members"], mine, flags, flagged),
            ]
        )
        attrs.append({"class": "flagged" if flagged else "", "data-runs": " ".join(members)})
    return table(cols, rows, attrs=attrs, table_id=f"board-{tag}")


def _defense_cell(first: pd.Series, label: str, members: list) -> Cell:
    """The defense's name, its training setting, and links to its runs' pages."""
    name = display_name(str(first["defense"]), str(first["model"]), bool(first["external"]))
    setting = (
        f"{first['model']} · {first['preset']} · {count(first['epochs'], 'epoch')} · "
        f"{count(first['train_subset'], 'training image')}"
    )
    if first["external"]:
        _, what, weights = external_source(str(first["defense"]))
        setting = f"{what} ({weights})"
    if len(members) == 1:
        run = str(members[0][0])
        links = f'<a href="{esc(run_file(run))}">{esc(run)}</a>'
    else:
        seeds = " · ".join(f'<a href="{esc(run_file(str(m)))}">seed {s}</a>' for m, s in members)
        links = f"{esc(label)}<br>{seeds}"
    return Cell(
        f"<b>{esc(name)}</b><span class='note'>{esc(setting)}</span>"
        f"<span class='note'>{links}</span>",
        sort=name,
        cls="name",
    )


def _attack_cell(row: pd.Series | None, atk: str, tag: str, mine: pd.DataFrame, n_row: int) -> Cell:
    """Ours (± sd or [interval]), test points, seeds when fewer than the row's, the paper."""
    if row is None or pd.isna(row["accuracy"]):
        return Cell("—", title=f"{atk}: not evaluated on the {tag} checkpoint", cls="num missing")
    acc = float(row["accuracy"])
    per_seed = mine[mine["attack"] == atk]
    seeds = "; ".join(
        f"{p.run}: {p.accuracy:.2f} ({p.correct}/{p.n})" for p in per_seed.itertuples()
    )
    how = (
        f"{attack_label(atk)} on the {tag} checkpoint; {seeds}; the first {int(row['n'])} test "
        f"points of {row['data_label']}; preset {row['preset']}; attack: "
        f"{settings_text(str(row['attack_params']))}"
    )
    return Cell(AccuracyCell.of(row).html(n_row), sort=acc, title=how, cls="num")


def _audit_cell(members: list, mine: pd.DataFrame, flags: Flags, flagged: list[str]) -> Cell:
    texts = []
    for run, seed in members:
        text = audit_detail(mine[mine["run"] == run], flags, str(run))
        texts.append((f"seed {seed}: " if len(members) > 1 else "") + text)
    mark = f'<span class="flag">⚠ {esc(", ".join(flagged))}</span><br>' if flagged else ""
    body = f"{mark}<span class='note'>{esc('; '.join(texts))}</span>"
    return Cell(body, sort=", ".join(flagged), title="; ".join(texts), cls="audit")
