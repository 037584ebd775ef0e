"""The orphan sweep with a fake clock and real processes: dead, hung, slow (never killed), PID reused."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import psutil
import pytest

from processor import orphans
from processor.clock import FakeClock
from processor.policy import Verdict
from processor.supervisor import kill_recorded
from schema import events as ev
from schema.sqlite_store import SQLiteEventStore
from tests.conftest import wait_for


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[SQLiteEventStore]:
    s = SQLiteEventStore(tmp_path / "spool.db", create=True, clock=clock.wall)
    yield s
    s.close()


@pytest.fixture
def sleepers() -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(5)


def running(store: SQLiteEventStore, job_id: str, pid: int, create_time: float) -> None:
    store.append(
        ev.job_stream(job_id),
        [
            ev.JobSubmitted(job_id=job_id, source=f"{job_id}.wav", size=1, mtime_ns=1),
            ev.JobStarted(attempt=1, worker="old-w1", pid=pid, create_time=create_time, engine="test", model="m"),
        ],
    )


def sleeper(procs: list[subprocess.Popen[bytes]]) -> tuple[int, float]:
    p = subprocess.Popen(["sleep", "300"], start_new_session=True)
    procs.append(p)
    return p.pid, psutil.Process(p.pid).create_time()


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_each_verdict(store: SQLiteEventStore, clock: FakeClock, sleepers: list[subprocess.Popen[bytes]]) -> None:
    # dead: its process has exited and been reaped
    gone = subprocess.Popen(["true"])
    gone.wait()
    running(store, "dead", gone.pid, 12345.0)
    # pid reused: a live process, but not the one recorded (different create_time)
    other_pid, other_ct = sleeper(sleepers)
    running(store, "reused", other_pid, other_ct - 1000)
    # hung: alive, recorded identity, no progress for longer than stall_s
    hung_pid, hung_ct = sleeper(sleepers)
    running(store, "hung", hung_pid, hung_ct)
    # slow: started long ago but still progressing
    slow_pid, slow_ct = sleeper(sleepers)
    running(store, "slow", slow_pid, slow_ct)
    clock.advance(3 * 3600)  # everything started three hours ago...
    store.append(ev.job_stream("slow"), [ev.JobProgressed(position_s=100.0, duration_s=99999.0)])
    clock.advance(30)  # ...and slow advanced 30 s ago

    orphaned: list[tuple[str, str, bool]] = []
    findings = orphans.sweep_jobs(
        orphans.judge_running(store, set(), clock.wall(), stall_s=120.0),
        grace_s=1.0,
        act=lambda job, verdict, killed: orphaned.append((job.id, verdict, killed)),
        kill=kill_recorded,
    )
    verdicts = {f.job.id: f.verdict for f in findings}
    assert verdicts == {
        "dead": Verdict.dead,
        "reused": Verdict.pid_mismatch,
        "hung": Verdict.hung,
        "slow": Verdict.alive,
    }
    assert sorted(orphaned) == [("dead", "dead", False), ("hung", "hung", True), ("reused", "pid_mismatch", False)]
    wait_for(lambda: not alive(hung_pid), 5, what="the hung worker to be killed")
    assert alive(slow_pid), "a slow but progressing job must never be killed"
    assert alive(other_pid), "a process that merely reuses a recorded pid must never be signalled"


def test_jobs_of_this_daemon_are_left_to_its_supervisor(store: SQLiteEventStore, clock: FakeClock) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    running(store, "mine", gone.pid, 1.0)
    clock.advance(timedelta(hours=1).total_seconds())
    assert orphans.judge_running(store, {"mine"}, clock.wall(), stall_s=120) == []
