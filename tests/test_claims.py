"""Claims (bench/store/claims.py) on both backends, in one process: one owner at a time,
waiting, heartbeats, expiry and take-over, fencing of a worker that lost its claim."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bench.jobs.experiments import STALLED, job_status
from bench.spec.experiments import Job
from bench.spec.run import resolve
from bench.store import claims
from bench.store import db as bdb
from bench.store.claims import Busy, LeaseLost, hold


def _attempts(engine, key: str) -> int:
    with Session(engine) as s:
        return s.get_one(bdb.Claim, key).attempts


def _stop_heartbeat(lease: claims.Lease) -> None:
    """What kill -9 does to a worker's lease: nobody renews it any more."""
    lease._stop.set()
    lease._thread.join()


def test_a_claim_has_one_owner_until_released(db_url: str) -> None:
    engine = bdb.connect(db_url)
    first = hold(engine, "run:a", claims.RUN)
    with pytest.raises(Busy) as err:
        hold(engine, "run:a", claims.RUN, wait=False)
    assert err.value.holder.owner == first.owner
    assert claims.holder(engine, "run:a").owner == first.owner
    other = hold(engine, "run:b", claims.RUN, wait=False)  # another key is free
    other.release()
    first.release()
    assert claims.holder(engine, "run:a") is None
    with hold(engine, "run:a", claims.RUN, wait=False) as again:
        assert again.owner != first.owner and again.owner.count(":") == 2  # host:pid@t:uuid
    assert _attempts(engine, "run:a") == 2


def test_heartbeat_keeps_a_claim_past_its_lease(db_url: str, monkeypatch) -> None:
    monkeypatch.setenv(claims.ENV_LEASE, "1")
    engine = bdb.connect(db_url)
    with hold(engine, "eval:x", claims.EVAL) as lease:
        time.sleep(2.5)
        with pytest.raises(Busy):
            hold(engine, "eval:x", claims.EVAL, wait=False)
        lease.check()  # still ours


def test_an_expired_claim_is_taken_over_and_the_old_owner_fenced(db_url, monkeypatch) -> None:
    monkeypatch.setenv(claims.ENV_LEASE, "1")
    engine = bdb.connect(db_url)
    dead = hold(engine, "run:k", claims.RUN)
    _stop_heartbeat(dead)
    time.sleep(1.2)
    assert claims.holder(engine, "run:k") is None  # expired: shown as free
    with hold(engine, "run:k", claims.RUN, wait=False) as heir:
        with pytest.raises(LeaseLost):
            dead.check()
        with Session(engine) as s, pytest.raises(LeaseLost):
            dead.fence(s)  # the old owner's write would not commit
        with Session(engine) as s:
            heir.fence(s)
            s.commit()
        dead.release()  # releasing a claim that is not ours any more leaves it alone
        assert claims.holder(engine, "run:k").owner == heir.owner
    assert _attempts(engine, "run:k") == 2


def test_a_waiting_worker_gets_the_claim_when_it_is_released(db_url: str, monkeypatch) -> None:
    monkeypatch.setenv(claims.ENV_LEASE, "2")
    engine = bdb.connect(db_url)
    first = hold(engine, "run:w", claims.RUN)
    threading.Timer(0.8, first.release).start()
    seen: list[str] = []
    t0 = time.monotonic()
    with hold(engine, "run:w", claims.RUN, on_wait=lambda h, _poll: seen.append(h.owner)):
        waited = time.monotonic() - t0
    assert seen == [first.owner]  # told once who it waits for
    assert 0.7 < waited < 2.0


def test_threads_racing_for_one_claim_get_it_one_at_a_time(db_url: str, monkeypatch) -> None:
    monkeypatch.setenv(claims.ENV_LEASE, "1.2")  # waiters look again every 0.2 s
    engine = bdb.connect(db_url)
    inside, overlaps, lock = [0], [0], threading.Lock()

    def worker() -> None:
        for _ in range(3):
            with hold(engine, "run:race", claims.RUN):
                with lock:
                    inside[0] += 1
                    overlaps[0] += inside[0] > 1
                time.sleep(0.02)
                with lock:
                    inside[0] -= 1

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps[0] == 0
    assert _attempts(engine, "run:race") == 12


def test_a_run_left_running_by_a_dead_worker_shows_as_stalled(db_url: str) -> None:
    engine = bdb.connect(db_url)
    spec = resolve("standard", "tiny-cnn", "mnist", None, train_subset=64, test_subset=16)
    with Session(engine) as s:
        s.add(
            bdb.Run(
                key=spec.key,
                name=spec.name,
                defense=spec.defense,
                model=spec.model,
                dataset=spec.dataset,
                preset=spec.preset,
                spec=spec.to_dict(),
                seed=0,
                run_dir="/nowhere",
                status="running",
            )
        )
        s.commit()
    job = Job(spec, ("clean",), ())
    assert job_status(engine, job).status == STALLED  # no live claim: resumable
    with hold(engine, claims.run_key(spec.key), claims.RUN):
        assert job_status(engine, job).status == "running"
    with Session(engine) as s:
        assert s.scalars(select(bdb.Run.status)).one() == "running"


@pytest.mark.parametrize("value", ["abc", "0", "-3", "nan"])
def test_a_bad_lease_setting_is_one_clear_error(monkeypatch, value: str) -> None:
    monkeypatch.setenv(claims.ENV_LEASE, value)
    with pytest.raises(ValueError, match="BENCH_LEASE_SECONDS must be seconds"):
        claims.lease_seconds()


HOLD_AND_SLEEP = """
import sys, time
from bench.store import claims, db
lease = claims.hold(db.connect(sys.argv[1]), "run:dead", claims.RUN, wait=False)
print(lease.owner, flush=True)
time.sleep(600)
"""


def test_a_killed_process_on_this_host_is_taken_over_without_waiting(db_url, capsys) -> None:
    """kill -9 leaves a live lease (an hour here); the rerun on the same host sees that its
    owner's process is gone and takes the claim at once, saying so."""
    env = {**os.environ, claims.ENV_LEASE: "3600"}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_AND_SLEEP, db_url], stdout=subprocess.PIPE, text=True, env=env
    )
    owner = proc.stdout.readline().strip()
    engine = bdb.connect(db_url)
    assert claims.holder(engine, "run:dead").owner == owner
    with pytest.raises(Busy):  # alive: its claim is respected
        hold(engine, "run:dead", claims.RUN, wait=False)
    proc.kill()
    proc.wait()
    t0 = time.monotonic()
    with hold(engine, "run:dead", claims.RUN, wait=False) as lease:
        assert lease.owner != owner
    assert time.monotonic() - t0 < 10  # not the hour of its lease
    assert (
        f"its holder {owner} was a process on this host that has exited" in capsys.readouterr().err
    )


def test_a_reused_pid_or_another_host_does_not_fool_the_dead_owner_check() -> None:
    me = claims.new_owner()
    host, pid_start, tag = me.split(":")
    pid, start = pid_start.split("@")
    assert int(pid) == os.getpid() and start  # this process, with its start time
    assert claims.owner_pid(me) == os.getpid() and claims.owner_pid("h:12:abc") == 12
    assert not claims.dead_here(me)
    assert claims.dead_here(f"{host}:{pid}@{int(start) + 1}:{tag}")  # same pid, another process
    assert not claims.dead_here(f"elsewhere-{host}:{pid}@{int(start) + 1}:{tag}")  # not judged
    code = "import os; print(os.getpid())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert claims.dead_here(f"{host}:{done.stdout.strip()}@1:{tag}")
