"""The EventStore contract: what every backend must do."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from schema import events as ev
from schema.errors import ConcurrencyError, IllegalTransition, JobNotFound, StoreBusy
from schema.jobs import JobState
from schema.replay import verify
from schema.sqlite_store import SQLiteEventStore
from schema.store import ANY
from tests.conftest import wait_for
from tests.unit.events_fixtures import started, submitted


def test_append_and_read_back(store: SQLiteEventStore) -> None:
    recs = store.append("job-j1", [submitted("j1"), started()])
    assert [r.version for r in recs] == [1, 2]
    assert recs[1].position > recs[0].position
    assert [r.event for r in store.read("job-j1")] == [submitted("j1"), started()]
    assert store.read("job-j1", after_version=1)[0].event == started()


def test_projection_is_updated_in_the_same_transaction(store: SQLiteEventStore) -> None:
    store.append("job-j1", [submitted("j1"), started()])
    job = store.job("j1")
    assert job is not None and job.state is JobState.running and job.pid == 123


def test_expected_version_guards_concurrent_writers(store: SQLiteEventStore) -> None:
    store.append("job-j1", [submitted("j1")], expected_version=0)
    with pytest.raises(ConcurrencyError, match="is at version 1, not 0"):
        store.append("job-j1", [started()], expected_version=0)
    store.append("job-j1", [started()], expected_version=1)


def test_illegal_transition_rolls_back_the_whole_batch(store: SQLiteEventStore) -> None:
    store.append("job-j1", [submitted("j1")])
    with pytest.raises(IllegalTransition):
        store.append("job-j1", [started(), ev.JobSucceeded(outputs=[], done_path=None)])
    assert len(store.read("job-j1")) == 1
    job = store.job("j1")
    assert job is not None and job.state is JobState.queued


def test_idempotency_key_makes_a_repeated_append_a_no_op(store: SQLiteEventStore) -> None:
    first = store.append("job-j1", [submitted("j1"), started()], idempotency_key="k1")
    again = store.append("job-j1", [submitted("j1"), started()], idempotency_key="k1")
    assert [r.position for r in again] == [r.position for r in first]
    assert len(store.read("job-j1")) == 2


def test_read_all_in_global_order_and_by_type(store: SQLiteEventStore) -> None:
    store.append("job-a", [submitted("a")])
    store.append("job-b", [submitted("b")])
    store.append("job-a", [started()])
    assert [r.stream for r in store.read_all()] == ["job-a", "job-b", "job-a"]
    assert [r.type for r in store.read_all(types=["job.started"])] == ["job.started"]
    assert len(store.read_all(after_position=store.read_all()[0].position)) == 2


def test_follow_tails_new_events(store: SQLiteEventStore, tmp_path: Path) -> None:
    stop = threading.Event()
    seen: list[str] = []

    def tail() -> None:
        reader = SQLiteEventStore(store.path)
        for rec in reader.follow(0, poll_s=0.02, stop=stop):
            seen.append(rec.stream)
            if len(seen) == 2:
                stop.set()
        reader.close()

    t = threading.Thread(target=tail)
    t.start()
    store.append("job-a", [submitted("a")])
    store.append("job-b", [submitted("b")])
    t.join(10)
    assert seen == ["job-a", "job-b"]


def test_daemon_stream_appends_at_any_version(store: SQLiteEventStore) -> None:
    store.append(ev.DAEMON_STREAM, [ev.LogsPruned(files=1, bytes=1)], expected_version=ANY)
    store.append(ev.DAEMON_STREAM, [ev.LogsPruned(files=2, bytes=2)])
    assert [r.version for r in store.read(ev.DAEMON_STREAM)] == [1, 2]


def test_find_job_by_prefix(store: SQLiteEventStore) -> None:
    store.append("job-abc123", [submitted("abc123")])
    store.append("job-abd456", [submitted("abd456")])
    assert store.find_job("abc").id == "abc123"
    with pytest.raises(JobNotFound, match="ambiguous"):
        store.find_job("ab")
    with pytest.raises(JobNotFound, match="no job 'zz'"):
        store.find_job("zz")


def test_jobs_by_state_and_counts(store: SQLiteEventStore) -> None:
    store.append("job-a", [submitted("a")])
    store.append("job-b", [submitted("b"), started()])
    assert [j.id for j in store.jobs([JobState.running])] == ["b"]
    assert store.count_by_state() == {"queued": 1, "running": 1}


def test_replay_verify_detects_a_tampered_projection(store: SQLiteEventStore) -> None:
    store.append("job-a", [submitted("a"), started()])
    assert verify(store).ok
    store._conn.execute("UPDATE jobs SET doc = json_set(doc, '$.attempts', 7) WHERE id = 'a'")
    report = verify(store)
    assert not report.ok and report.differ == {"a": ["attempts"]}


def test_a_writer_holding_the_lock_delays_but_loses_nothing(store: SQLiteEventStore) -> None:
    """Another process holds BEGIN IMMEDIATE for 1.5 s; our append waits and then succeeds."""
    store.append("job-a", [submitted("a")])
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "c.execute('BEGIN IMMEDIATE')\n"
            "print('locked', flush=True)\n"
            "time.sleep(1.5)\n"
            "c.execute('COMMIT')\n",
            str(store.path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    t0 = time.monotonic()
    store.append("job-a", [started()])  # busy_timeout + our retry cover the wait
    assert time.monotonic() - t0 >= 0.5
    assert holder.wait(10) == 0
    holder.stdout.close()
    assert len(store.read("job-a")) == 2


def _locked(path: Path) -> bool:
    probe = sqlite3.connect(str(path), isolation_level=None, timeout=0)
    try:
        probe.execute("BEGIN IMMEDIATE")
        probe.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError as e:
        return "locked" in str(e)
    finally:
        probe.close()


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="needs the sqlite3 command-line shell")
def test_a_lock_held_past_the_deadline_is_a_clear_error(tmp_path: Path) -> None:
    """RELIABILITY #9: an external sqlite3 shell holds a write lock beyond our deadline."""
    s = SQLiteEventStore(tmp_path / "x.db", create=True, busy_timeout_s=0.2, retry_deadline_s=0.5)
    shell = subprocess.Popen(["sqlite3", str(s.path)], stdin=subprocess.PIPE, text=True)
    assert shell.stdin is not None
    shell.stdin.write("BEGIN IMMEDIATE;\n")
    shell.stdin.flush()
    wait_for(lambda: _locked(s.path), 10, what="sqlite3 shell to hold the lock")
    with pytest.raises(StoreBusy, match="stayed locked"):
        s.append("job-a", [submitted("a")])
    shell.stdin.write("COMMIT;\n.quit\n")
    shell.stdin.close()
    shell.wait(5)
    s.append("job-a", [submitted("a")])  # nothing was half-written
    assert len(s.read("job-a")) == 1
    s.close()


def test_a_full_disk_is_a_store_error_and_nothing_is_half_written(tmp_path: Path) -> None:
    """SQLITE_FULL at COMMIT surfaces as StoreFull (not a raw sqlite3 error); the log is unchanged."""
    from schema.errors import StoreFull

    s = SQLiteEventStore(tmp_path / "x.db", create=True)
    s.append("job-a", [submitted("a")])
    s._conn.execute("PRAGMA max_page_count = 1")  # the database may not grow: as if the disk were full
    big = submitted("b")
    import dataclasses

    big = dataclasses.replace(big, options={"initial_prompt": "x" * 200_000})
    with pytest.raises(StoreFull, match="disk full"):
        s.append("job-b", [big])
    assert [r.stream for r in s.read_all()] == ["job-a"]
    s.close()
