"""Tables from a database filled by hand: which evaluations are shown, and the layout."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bench.report import frames, notes, render
from bench.report.site import leaderboard
from bench.spec.presets import schedule_note
from bench.spec.run import resolve
from bench.store import db as bdb


def fill(path: Path) -> Engine:
    engine = bdb.connect(path)
    spec = resolve("mart", "smallcnn", "mnist", "paper-4.2-mnist", test_subset=4)
    with Session(engine) as s:
        run = bdb.Run(
            key=spec.key,
            name=spec.name,
            defense="mart",
            model="smallcnn",
            dataset="mnist",
            preset=spec.preset,
            spec=spec.to_dict(),
            seed=0,
            run_dir="x",
            data_label="mnist: test",
            status="done",
            n_train=100,
        )
        s.add(run)
        s.flush()
        s.add(
            bdb.Checkpoint(
                run_id=run.id, tag="last", epoch=3, path="p", sha256="new", robust_acc=0.5
            )
        )
        for i, (sha, correct) in enumerate([("old", 4), ("new", 1), ("new", 2)]):
            mask = np.arange(4) < correct
            s.add(
                bdb.Evaluation(
                    key=f"k{i}",
                    run_id=run.id,
                    checkpoint="last",
                    checkpoint_epoch=3,
                    checkpoint_sha256=sha,
                    attack="pgd20",
                    attack_params={"eps": 0.3},
                    dataset="mnist",
                    n=4,
                    correct=correct,
                    accuracy=correct / 4,
                    seconds=1.0,
                    seed=0,
                    robust_mask=bdb.pack_mask(mask),
                )
            )
        s.commit()
    return engine


def test_only_current_checkpoint_and_newest_evaluation_are_shown(tmp_path: Path) -> None:
    df = frames.evaluations_frame(fill(tmp_path / "t.sqlite"))
    assert len(df) == 1
    assert df.loc[0, "checkpoint_sha256"] == "new" and df.loc[0, "accuracy"] == 50.0


def test_robust_mask_round_trip(tmp_path: Path) -> None:
    engine = fill(tmp_path / "t.sqlite")
    with Session(engine) as s:
        ev = s.query(bdb.Evaluation).filter_by(key="k2").one()
        assert ev.robust().tolist() == [True, True, False, False]


def test_table2_shows_paper_number_only_at_paper_eps(tmp_path: Path) -> None:
    engine = fill(tmp_path / "t.sqlite")
    # The paper's Table 2 numbers are for the best checkpoint (Table 2 has one layout now,
    # render_paper's): store the checkpoint and its evaluations as "best".
    with Session(engine) as s:
        for c in s.query(bdb.Checkpoint):
            c.tag = "best"
        for e in s.query(bdb.Evaluation):
            e.checkpoint = "best"
        s.commit()
    text = render.render_paper(engine, 2)
    assert "50.00 / — (96.48, -46.48)" in text  # ours - paper where eps is the paper's
    with Session(engine) as s:
        for e in s.query(bdb.Evaluation):
            e.attack_params = {"eps": 0.1}
        s.commit()
    # an evaluation off its run's budget (bench eval --eps) is a number of its own: only
    # the long table shows it, never a paper table
    assert "No evaluations for Table 2" in render.render_paper(engine, 2)
    assert 0.1 in set(frames.evaluations_frame(engine, all_budgets=True)["eps"])
    with Session(engine) as s:
        for r in s.query(bdb.Run):
            r.spec = {**r.spec, "eps": 0.1}  # a run trained and evaluated at eps 0.1
        s.commit()
    text = render.render_paper(engine, 2)
    assert "50.00 / —" in text and "96.48" not in text  # another eps: no paper number


def test_a_smaller_later_evaluation_does_not_replace_a_fuller_one(tmp_path: Path) -> None:
    engine = fill(tmp_path / "t.sqlite")
    with Session(engine) as s:
        full = s.query(bdb.Evaluation).filter_by(key="k2").one()
        row = {c.name: getattr(full, c.name) for c in bdb.Evaluation.__table__.columns}
        row.update(id=None, key="k3", n=2, correct=0, accuracy=0.0, created_at=None)
        row["robust_mask"] = bdb.pack_mask(np.zeros(2, dtype=bool))
        s.add(bdb.Evaluation(**{k: v for k, v in row.items() if v is not None}))
        s.commit()
    df = frames.evaluations_frame(engine)
    assert len(df) == 1 and df.loc[0, "n"] == 4 and df.loc[0, "accuracy"] == 50.0


def test_points_names_attacks_run_on_fewer_test_points() -> None:
    import pandas as pd

    evs = pd.DataFrame({"n": [500, 500, 100, 100], "attack": ["clean", "pgd20", "square", "fab-t"]})
    assert notes.points(evs) == "500 test points (100 for fab-t, square)"
    assert notes.points(evs[evs["n"] == 500]) == "500 test points"


def test_a_run_shorter_than_its_preset_says_its_schedules_were_cut(tmp_path: Path) -> None:
    engine = fill(tmp_path / "t.sqlite")
    assert "schedule cut" not in render.render_paper(engine, 2)  # 50 of 50 epochs
    with Session(engine) as s:
        run = s.query(bdb.Run).one()
        run.spec = {**run.spec, "epochs": 4}
        s.commit()
    assert (
        "schedule cut: 4 of the preset's 50 epochs; lr decay at epoch 20, 40 never reached"
        in render.render_paper(engine, 2)
    )


def test_schedule_note_names_a_compressed_fosc_schedule() -> None:
    spec = resolve("dynamic", "smallcnn", "mnist", "paper-4.2-mnist", overrides={"epochs": 12})
    note = schedule_note(spec.to_dict())
    assert note.startswith("12 of the preset's 50 epochs; lr decay at epoch 20, 40 never")
    assert note.endswith("FOSC schedule compressed: c_t reaches 0 at epoch 10, not 41.7")
    full = resolve("dynamic", "smallcnn", "mnist", "paper-4.2-mnist")
    assert schedule_note(full.to_dict()) == ""


def _add(engine: Engine, preset: str, eps: float, model: str = "smallcnn") -> str:
    spec = resolve("mart", model, "mnist", preset, test_subset=4, overrides={"eps": eps})
    with Session(engine) as s:
        run = bdb.Run(
            key=spec.key,
            name=spec.name,
            defense="mart",
            model=model,
            dataset="mnist",
            preset=preset,
            spec=spec.to_dict(),
            seed=0,
            run_dir="x",
            status="done",
            data_label="mnist: test",
            n_train=100,
        )
        s.add(run)
        s.flush()
        s.add(
            bdb.Checkpoint(
                run_id=run.id, tag="best", epoch=3, path="p", sha256=spec.key, robust_acc=0.5
            )
        )
        for i, atk in enumerate(("clean", "pgd20")):
            s.add(
                bdb.Evaluation(
                    key=f"{spec.key}{i}",
                    run_id=run.id,
                    checkpoint="best",
                    checkpoint_epoch=3,
                    checkpoint_sha256=spec.key,
                    attack=atk,
                    attack_params={"eps": eps, "steps": 20, "step_size": eps / 10},
                    dataset="mnist",
                    n=4,
                    correct=2,
                    accuracy=0.5,
                    seconds=1.0,
                    seed=0,
                    robust_mask=bdb.pack_mask(np.arange(4) < 2),
                )
            )
        s.commit()
    return spec.name


def test_tables_never_mix_threat_models_models_or_presets(tmp_path: Path) -> None:
    """eps 0.1 (demo preset), eps 0.3 (the paper's), and a tiny model at 0.3: three blocks,
    each with its own attack settings; the paper's numbers only where all is the paper's."""
    engine = bdb.connect(tmp_path / "m.sqlite")
    demo, paper, tiny = (
        _add(engine, "demo-mnist", 0.1),
        _add(engine, "paper-4.2-mnist", 0.3),
        _add(engine, "paper-4.2-mnist", 0.3, "tiny-cnn"),
    )
    text = render.render_paper(engine, 2)
    blocks = {b.split("\n", 1)[0]: b for b in text.split("### ")[1:]}
    assert len(blocks) == 3, list(blocks)
    by_run = {
        run: next(b for b in blocks.values() if f"`{run}`" in b) for run in (demo, paper, tiny)
    }
    assert "L-inf eps 0.1, smallcnn, preset demo-mnist" in by_run[demo]
    assert "step_size 0.01," in by_run[demo] and "step_size 0.03" not in by_run[demo]
    assert "L-inf eps 0.3, smallcnn, preset paper-4.2-mnist" in by_run[paper]
    assert "(96.48, " in by_run[paper] and "96.48" not in by_run[demo]
    assert "no paper numbers: model tiny-cnn" in by_run[tiny] and "96.48" not in by_run[tiny]
    csv = pd.read_csv(io.StringIO(render.render_paper(engine, 2, "csv")))
    assert sorted(csv.groupby("run")["eps"].first().round(3)) == [0.1, 0.3, 0.3]
    assert csv[csv["model"] == "tiny-cnn"]["paper"].isna().all()
    boards = leaderboard.boards(frames.paper_frame(engine, 2))
    assert [round(eps, 3) for _, eps, _ in boards] == [0.1, 0.3]  # the site: one board per eps
