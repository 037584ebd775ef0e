"""The EventStore contract: what every backend must do."""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from schema import events as ev
from schema.errors import ConcurrencyError, IllegalTransition, JobNotFound, StaleAttempt, StoreBusy
from schema.jobs import JobState
from schema.replay import verify
from schema.sqlite_store import SQLiteEventStore
from schema.store import ANY, EventStore, open_store
from tests.conftest import wait_for
from tests.unit.events_fixtures import started, submitted


def test_append_and_read_back(store: EventStore) -> None:
    recs = store.append("job-j1", [submitted("j1"), started()])
    assert [r.version for r in recs] == [1, 2]
    assert recs[1].position > recs[0].position
    assert [r.event for r in store.read("job-j1")] == [submitted("j1"), started()]
    assert store.read("job-j1", after_version=1)[0].event == started()


def test_projection_is_updated_in_the_same_transaction(store: EventStore) -> None:
    store.append("job-j1", [submitted("j1"), started()])
    job = store.job("j1")
    assert job is not None and job.state is JobState.running and job.pid == 123


def test_expected_version_guards_concurrent_writers(store: EventStore) -> None:
    store.append("job-j1", [submitted("j1")], expected_version=0)
    with pytest.raises(ConcurrencyError, match="is at version 1, not 0"):
        store.append("job-j1", [started()], expected_version=0)
    store.append("job-j1", [started()], expected_version=1)


def test_illegal_transition_rolls_back_the_whole_batch(store: EventStore) -> None:
    store.append("job-j1", [submitted("j1")])
    with pytest.raises(IllegalTransition):
        store.append("job-j1", [started(), ev.JobSucceeded(outputs=[], done_path=None)])
    assert len(store.read("job-j1")) == 1
    job = store.job("j1")
    assert job is not None and job.state is JobState.queued


def test_idempotency_key_makes_a_repeated_append_a_no_op(store: EventStore) -> None:
    first = store.append("job-j1", [submitted("j1"), started()], idempotency_key="k1")
    again = store.append("job-j1", [submitted("j1"), started()], idempotency_key="k1")
    assert [r.position for r in again] == [r.position for r in first]
    assert len(store.read("job-j1")) == 2


def test_read_all_in_global_order_and_by_type(store: EventStore) -> None:
    store.append("job-a", [submitted("a")])
    store.append("job-b", [submitted("b")])
    store.append("job-a", [started()])
    assert [r.stream for r in store.read_all()] == ["job-a", "job-b", "job-a"]
    assert [r.type for r in store.read_all(types=["job.started"])] == ["job.started"]
    assert len(store.read_all(after_position=store.read_all()[0].position)) == 2


def test_follow_tails_new_events(store: EventStore, tmp_path: Path) -> None:
    stop = threading.Event()
    seen: list[str] = []

    def tail() -> None:
        reader = open_store(store.url, store.path)
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


def test_daemon_stream_appends_at_any_version(store: EventStore) -> None:
    store.append(ev.DAEMON_STREAM, [ev.LogsPruned(files=1, bytes=1)], expected_version=ANY)
    store.append(ev.DAEMON_STREAM, [ev.LogsPruned(files=2, bytes=2)])
    assert [r.version for r in store.read(ev.DAEMON_STREAM)] == [1, 2]


def test_find_job_by_prefix(store: EventStore) -> None:
    store.append("job-abc123", [submitted("abc123")])
    store.append("job-abd456", [submitted("abd456")])
    assert store.find_job("abc").id == "abc123"
    with pytest.raises(JobNotFound, match="ambiguous"):
        store.find_job("ab")
    with pytest.raises(JobNotFound, match="no job 'zz'"):
        store.find_job("zz")


def test_jobs_by_state_and_counts(store: EventStore) -> None:
    store.append("job-a", [submitted("a")])
    store.append("job-b", [submitted("b"), started()])
    assert [j.id for j in store.jobs([JobState.running])] == ["b"]
    assert store.count_by_state() == {"queued": 1, "running": 1}


def test_replay_verify_detects_a_tampered_projection(store: EventStore) -> None:
    store.append("job-a", [submitted("a"), started()])
    assert verify(store).ok
    with store.transaction() as x:  # tamper with the projection behind the log's back
        if store.dialect.name == "sqlite":
            x.execute("UPDATE jobs SET doc = json_set(doc, '$.attempts', 7) WHERE id = 'a'")
        else:
            x.execute("""UPDATE jobs SET doc = (doc::jsonb || '{"attempts": 7}'::jsonb)::text WHERE id = 'a'""")
    report = verify(store)
    assert not report.ok and report.differ == {"a": ["attempts"]}


def test_a_writer_holding_the_lock_delays_but_loses_nothing(sqlite_store: SQLiteEventStore) -> None:
    store = sqlite_store  # SQLite's own locking
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
            "time.sleep(1.5)\n"  # the injected fault: how long the lock is held, not a wait for anything
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
    s._raw.execute("PRAGMA max_page_count = 1")  # the database may not grow: as if the disk were full
    big = submitted("b")
    import dataclasses

    big = dataclasses.replace(big, options={"initial_prompt": "x" * 200_000})
    with pytest.raises(StoreFull, match="disk full"):
        s.append("job-b", [big])
    assert [r.stream for r in s.read_all()] == ["job-a"]
    s.close()


def test_a_stale_attempt_cannot_record_anything(store: EventStore) -> None:
    """Fencing: once a job moved to another worker, the old attempt's appends are refused."""
    store.append("job-a", [submitted("a"), started()])  # on worker w1
    store.append("job-a", [ev.JobProbed(sha256="x", duration_s=1.0)], attempt_of="w1")
    with pytest.raises(StaleAttempt, match="is stale"):
        store.append("job-a", [ev.JobProbed(sha256="x", duration_s=1.0)], attempt_of="w2")
    store.append(
        "job-a",
        [
            ev.JobOrphaned(reason="dead", pid=1, killed=False),
            ev.JobFailed(reason="daemon_died", message="m", retryable=True, final=False, attempt=1, counted=False),
        ],
    )
    with pytest.raises(StaleAttempt):
        store.append(
            "job-a",
            [ev.JobTranscribed(out_stem="a", outputs=[], language="en", duration_s=1, elapsed_s=1)],
            attempt_of="w1",
        )
    assert store.job("a").state.value == "retry_wait"  # type: ignore[union-attr]


def test_only_one_claim_wins(store: EventStore) -> None:
    store.append("job-a", [submitted("a")])
    job = store.job("a")
    assert job is not None
    first = store.claim(job, started())
    second = store.claim(job, started())  # the same version seen by a second host
    assert first is not None and first.state.value == "running" and second is None
    assert [r.type for r in store.read("job-a")] == ["job.submitted", "job.started"]


def test_one_unfinished_job_per_dropped_file(store: EventStore) -> None:
    from schema.errors import AlreadySubmitted

    store.append("job-a", [submitted("a", "x.wav")])
    with pytest.raises(AlreadySubmitted):
        store.append("job-b", [submitted("b", "x.wav")])  # another host noticed the same file
    assert store.job("b") is None and len(store.read_all()) == 1
    store.append("job-a", [ev.JobCancelled(failed_path="x.wav")])
    store.append("job-c", [submitted("c", "x.wav")])  # the file dropped again after the first ended


@pytest.mark.parametrize("first", ["rename", "looks", "mtime", "scan"])
@pytest.mark.parametrize("second", ["rename", "looks", "mtime", "scan"])
def test_one_file_is_one_job_however_each_host_settled_it(store: EventStore, first: str, second: str) -> None:
    """One host saw the rename, another only saw the file stand still: the two notices still meet."""
    from schema.errors import AlreadySubmitted

    store.append("job-a", [dataclasses.replace(submitted("a", "x.wav"), settled_by=first)])
    with pytest.raises(AlreadySubmitted):
        store.append("job-b", [dataclasses.replace(submitted("b", "x.wav"), settled_by=second)])
    assert store.job("b") is None and len(store.read_all()) == 1


def test_a_held_name_admits_one_job_whatever_the_file_became(store: EventStore) -> None:
    from schema.errors import AlreadySubmitted

    store.append("job-a", [dataclasses.replace(submitted("a", "x.wav"), settled_by="looks")])
    held = store.holder("x.wav")
    assert held is not None and held.id == "a" and store.holder("y.wav") is None
    grown = dataclasses.replace(submitted("b", "x.wav"), settled_by="looks", size=99)  # its writer went on
    with pytest.raises(AlreadySubmitted):
        store.append("job-b", [grown])
    store.append("job-c", [dataclasses.replace(submitted("c", "x.wav"), settled_by="rename", size=99)])
    store.append("job-a", [ev.JobCancelled(failed_path="x.wav")])
    assert store.holder("x.wav") is None
    store.append("job-d", [dataclasses.replace(submitted("d", "x.wav"), settled_by="looks", size=7)])


def test_leases_are_projected(store: EventStore) -> None:
    store.append(ev.DAEMON_STREAM, [ev.DaemonLeaseRenewed(instance="i1", host="h1", pid=7, until="2030-01-01")])
    store.append(ev.DAEMON_STREAM, [ev.DaemonLeaseRenewed(instance="i1", host="h1", pid=7, until="2031-01-01")])
    (lease,) = store.leases()
    assert (lease["instance"], lease["host"], lease["until"]) == ("i1", "h1", "2031-01-01")
    assert verify(store).ok


def test_compaction_keeps_replay_exact(store: EventStore) -> None:
    store.append("job-a", [submitted("a"), started()])
    for i in range(6):
        store.append("job-a", [ev.JobHeartbeat(cpu_percent=float(i), rss_bytes=i, position_s=0.0)])
    store.append("job-a", [ev.JobCancelled(failed_path="a.wav")])
    before = store.job("a")
    assert store.compact_heartbeats("9999") == (1, 4)
    assert store.job("a") == before and verify(store).ok
    assert sum(1 for r in store.read("job-a") if r.type == "job.heartbeat") == 2


def test_concurrent_writers_never_reorder_positions_for_a_follower(store: EventStore) -> None:
    """Two writers (two connections) append at once; a follower reading by position sees every event."""
    other = open_store(store.url, store.path)
    seen: list[int] = []
    stop = threading.Event()

    def tail() -> None:
        cursor = 0
        while not stop.is_set() or cursor < store.last_position():
            for rec in store.read_all(cursor, limit=1000):
                cursor = rec.position
                seen.append(rec.position)

    def write(s: EventStore, prefix: str) -> None:
        for i in range(60):
            s.append(f"{prefix}-{i}", [ev.LogsPruned(files=i, bytes=i)])

    threads = [
        threading.Thread(target=tail),
        threading.Thread(target=write, args=(store, "a")),
        threading.Thread(target=write, args=(other, "b")),
    ]
    for t in threads:
        t.start()
    threads[1].join(60)
    threads[2].join(60)
    stop.set()
    threads[0].join(60)
    other.close()
    everything = [r.position for r in store.read_all()]
    assert len(everything) == 120 and sorted(set(seen)) == everything


def run_together(*fns: Callable[[], None], timeout: float = 120) -> list[BaseException]:
    """Run ``fns`` in threads at once; the exceptions they raised."""
    errors: list[BaseException] = []

    def guarded(fn: Callable[[], None]) -> None:
        try:
            fn()
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=guarded, args=(fn,)) for fn in fns]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not any(t.is_alive() for t in threads), "a thread hung (a deadlock?)"
    return errors


def test_racing_claimers_take_each_job_once_while_jobs_are_cancelled(store: EventStore) -> None:
    """Two hosts claim from one queue while a third writer cancels: no job twice, no deadlock, no error."""
    n = 40
    for i in range(n):
        store.append(f"job-q{i}", [submitted(f"q{i}")])
    hosts = [open_store(store.url, store.path), open_store(store.url, store.path)]
    won: list[list[str]] = [[], []]

    def claimer(h: int) -> None:
        while queued := hosts[h].jobs([JobState.queued]):
            won[h] += [job.id for job in queued if hosts[h].claim(job, started()) is not None]

    def canceller() -> None:
        for i in range(0, n, 4):
            job = store.job(f"q{i}")
            if job is not None and job.state is JobState.queued:
                with contextlib.suppress(ConcurrencyError):  # a claimer started it meanwhile
                    store.append(f"job-q{i}", [ev.JobCancelled(failed_path=job.source)], expected_version=job.version)

    errors = run_together(lambda: claimer(0), lambda: claimer(1), canceller)
    for h in hosts:
        h.close()
    assert not errors, errors
    claimed = won[0] + won[1]
    assert len(claimed) == len(set(claimed))
    assert all(sum(r.type == "job.started" for r in store.read(f"job-{j.id}")) <= 1 for j in store.jobs())
    states = [j.state for j in store.jobs()]
    assert states.count(JobState.running) == len(claimed) and JobState.queued not in states


@pytest.mark.postgres
def test_a_claim_skips_a_job_another_host_is_claiming(pg_store: EventStore, pg_url: str) -> None:
    """FOR UPDATE SKIP LOCKED: a row locked by another claimer is passed over at once, not waited for."""
    import psycopg

    store = pg_store
    store.append("job-a", [submitted("a")])
    job = store.job("a")
    assert job is not None
    with psycopg.connect(pg_url) as other, other.transaction():
        other.execute("SELECT 1 FROM jobs WHERE id = 'a' FOR UPDATE")
        t0 = time.monotonic()
        assert store.claim(job, started()) is None
        assert time.monotonic() - t0 < 2.0
    claimed = store.claim(job, started())  # released: now it is ours
    assert claimed is not None and claimed.state is JobState.running


def test_a_healthy_store_passes_its_checks(store: EventStore) -> None:
    store.append("job-a", [submitted("a"), started()])
    assert store.quick_check() == "ok" and store.integrity_check() == "ok"


@pytest.mark.postgres
def test_postgres_integrity_check_finds_a_job_row_without_events(pg_store: EventStore) -> None:
    from schema.base_store import write_job

    store = pg_store
    store.append("job-a", [submitted("a")])
    job = store.job("a")
    assert job is not None
    with store.transaction() as x:
        write_job(x, dataclasses.replace(job, id="ghost", source="ghost.wav"))
    assert store.integrity_check() == "1 job rows without events"


def test_lease_compaction_keeps_each_daemons_last_renewal(store: EventStore) -> None:
    for i in range(5):
        for instance in ("i1", "i2"):
            store.append(
                ev.DAEMON_STREAM, [ev.DaemonLeaseRenewed(instance=instance, host="h", pid=1, until=f"2030-01-0{i + 1}")]
            )
    before = store.leases()
    assert store.compact_leases("9999") == 8
    assert store.leases() == before and verify(store).ok
    assert store.compact_leases("9999") == 0


def test_a_snapshot_sees_one_moment_while_another_daemon_writes(store: EventStore) -> None:
    """``replay --verify`` runs while a fleet renews leases: log and projection must be read together."""
    other = open_store(store.url, store.path)
    lease = ev.DaemonLeaseRenewed(instance="i1", host="h", pid=1, until="2030-01-01")
    try:
        store.append(ev.DAEMON_STREAM, [lease])
        with store.snapshot():
            position, leases = store.last_position(), store.leases()
            other.append(ev.DAEMON_STREAM, [dataclasses.replace(lease, until="2030-01-02")])
            assert (store.last_position(), store.leases()) == (position, leases)
            assert verify(store).ok
        assert store.last_position() > position and store.leases() != leases
        assert verify(store).ok
    finally:
        other.close()


# --- every method of every role, on both backends ---------------------------------------------


def finished(store: EventStore, job_id: str, source: str, *, sha: str = "s1", stem: str | None = None) -> None:
    """A job run to success, with its content hash, duration and transcript name."""
    store.append(ev.job_stream(job_id), [submitted(job_id, source), started()])
    store.append(ev.job_stream(job_id), [ev.JobProbed(sha256=sha, duration_s=12.5)])
    store.append(
        ev.job_stream(job_id),
        [
            ev.JobTranscribed(
                out_stem=stem or job_id, outputs=["x.txt"], language="en", duration_s=12.5, elapsed_s=1.0
            ),
            ev.JobSucceeded(outputs=[f"{stem or job_id}.txt"], done_path=source),
        ],
    )


def waiting(store: EventStore, job_id: str, not_before: str) -> None:
    store.append(ev.job_stream(job_id), [submitted(job_id), started()])
    store.append(
        ev.job_stream(job_id),
        [
            ev.JobFailed(reason="engine_error", message="m", retryable=True, final=False, attempt=1),
            ev.JobRetryScheduled(attempt=2, not_before=not_before, delay_s=1.0),
        ],
    )


def test_dispatchable_is_queued_and_due_retries_oldest_first(store: EventStore) -> None:
    store.append("job-q1", [submitted("q1")])
    waiting(store, "later", "2999-01-01T00:00:00.000000+00:00")
    waiting(store, "due", "2000-01-01T00:00:00.000000+00:00")
    store.append("job-q2", [submitted("q2")])
    now = "2026-01-01T00:00:00.000000+00:00"
    assert [j.id for j in store.dispatchable(now, 10)] == ["q1", "due", "q2"]
    assert [j.id for j in store.dispatchable(now, 2)] == ["q1", "due"]
    assert store.earliest_retry() == "2000-01-01T00:00:00.000000+00:00"
    assert store.count_by_state() == {"queued": 2, "retry_wait": 2}


def test_earliest_retry_is_none_without_waiting_jobs(store: EventStore) -> None:
    store.append("job-q1", [submitted("q1")])
    assert store.earliest_retry() is None


def test_a_duplicate_is_a_succeeded_job_of_the_same_content_and_options(store: EventStore) -> None:
    finished(store, "a", "a.wav", sha="same")
    store.append("job-b", [submitted("b", "b.wav"), started()])
    store.append("job-b", [ev.JobProbed(sha256="same", duration_s=12.5)])
    dup = store.find_duplicate("same", "k", exclude="b")
    assert dup is not None and dup.id == "a"
    assert store.find_duplicate("same", "k", exclude="a") is None  # b has not succeeded
    assert store.find_duplicate("same", "other-options", exclude="b") is None
    assert store.find_duplicate("different", "k", exclude="b") is None


def test_out_key_owners_meet_across_case_and_normalisation(store: EventStore) -> None:
    from schema.base_store import out_key

    finished(store, "a", "a.wav", stem="Caf\u00e9")
    owners = store.out_key_owners(out_key("cafe\u0301".upper()) or b"")  # NFD, upper case: the same name
    assert [j.id for j in owners] == ["a"]
    assert store.out_key_owners(out_key("other") or b"") == []


def test_submitted_between_is_newest_first_over_every_state(store: EventStore, tmp_path: Path) -> None:
    store.append("job-a", [submitted("a")])
    finished(store, "b", "b.wav")
    stamps = {j.id: j.submitted_at for j in store.jobs()}
    found = store.submitted_between(min(stamps.values()), max(stamps.values()))
    assert [j.id for j in found] == sorted(stamps, key=lambda i: stamps[i], reverse=True)
    assert store.submitted_between("2999-01-01", "2999-12-31") == []


def test_stored_jobs_and_stream_version(store: EventStore) -> None:
    store.append("job-a", [submitted("a"), started()])
    assert set(store.stored_jobs()) == {"a"} and store.stored_jobs()["a"].state is JobState.running
    assert store.stream_version("job-a") == 2 and store.stream_version("job-none") == 0


def test_window_counts_and_first_event(store: EventStore) -> None:
    assert store.first_event_at() is None
    finished(store, "a", "a.wav")
    waiting(store, "w", "2999-01-01T00:00:00.000000+00:00")
    since = store.first_event_at()
    assert since is not None
    counts = store.window_counts(since)
    assert counts["finished"] == {"succeeded": 1}
    assert counts["attempt_failures"] == 1 and counts["final_failures"] == 0
    assert counts["audio_s"] == 12.5 and counts["submitted"] == 2
    assert counts["oldest_queued_at"] == store.job("w").submitted_at  # type: ignore[union-attr]
    assert store.window_counts("2999-01-01")["submitted"] == 0


def test_alerts_are_projected_and_firing_ones_listed(store: EventStore) -> None:
    raised = ev.AlertRaised(rule="r1", level="warning", metric="m", value=2.0, threshold=1.0, message="high")
    store.append(ev.DAEMON_STREAM, [raised, dataclasses.replace(raised, rule="r2", level="critical")])
    store.append(ev.DAEMON_STREAM, [ev.AlertResolved(rule="r1", value=0.0)])
    assert [a["rule"] for a in store.alerts()] == ["r1", "r2"]
    assert [(a["rule"], a["level"]) for a in store.firing_alerts()] == [("r2", "critical")]
    assert verify(store).ok


def test_notifications_are_queued_retried_and_delivered(store: EventStore) -> None:
    assert store.max_notified_position() is None
    store.append(
        ev.DAEMON_STREAM,
        [
            ev.NotificationQueued(key="n1", target="hook", payload={"position": 7, "x": 1}),
            ev.NotificationQueued(key="n2", target="hook", payload={"position": 9}),
        ],
    )
    assert [n["key"] for n in store.due_notifications("2000-01-01")] == ["n1", "n2"]
    assert store.max_notified_position() == 9
    later = "2999-01-01T00:00:00.000000+00:00"
    store.append(
        ev.DAEMON_STREAM, [ev.NotificationFailed(key="n1", attempts=1, error="e", final=False, not_before=later)]
    )
    store.append(ev.DAEMON_STREAM, [ev.NotificationDelivered(key="n2", attempts=1)])
    assert store.due_notifications("2026-01-01") == []
    assert [n["key"] for n in store.due_notifications("3000-01-01")] == ["n1"]
    one = store.notification("n1")
    assert one is not None and one["payload"] == {"position": 7, "x": 1} and store.notification("nope") is None
    assert verify(store).ok


def test_projection_snapshot_holds_every_daemon_level_projection(store: EventStore) -> None:
    store.append(ev.DAEMON_STREAM, [ev.DaemonLeaseRenewed(instance="i1", host="h1", pid=7, until="2030-01-01")])
    snap = store.projection_snapshot()
    assert set(snap) == {"alerts", "notifications", "leases"}
    assert len(snap["leases"]) == 1 and snap["alerts"] == snap["notifications"] == []


def test_the_store_knows_its_version_size_and_position(store: EventStore) -> None:
    store.append("job-a", [submitted("a")])
    assert store.schema_version() == store.known_version() >= 1
    assert store.size_bytes() > 0
    assert store.high_water() >= store.last_position() >= 1
    store.checkpoint()  # a no-op or a WAL checkpoint: either way the log is intact afterwards
    assert store.quick_check() == "ok" and [r.stream for r in store.read_all()] == ["job-a"]


def test_fleet_services_of_a_lone_or_shared_store(store: EventStore) -> None:
    store.identify("host-a", "abc123")
    assert store.try_lead() is True  # alone, or the first session asking: the leader
    leader = store.leader_session()
    if store.fleet:
        assert leader is not None and leader.instance == "abc123"
        assert store.end_session(leader.pid) is True
        wait_for(lambda: store.try_lead(), 10, what="leadership taken again on a new session")
    else:
        assert leader is None and store.end_session(1) is False
    assert datetime.fromisoformat(store.db_now()).tzinfo is not None


def test_listen_wakes_on_a_commit_where_the_backend_can(store: EventStore) -> None:
    stop = threading.Event()
    woken = threading.Event()
    thread = store.listen(woken.set, stop)
    try:
        if thread is None:
            assert not store.fleet  # one daemon alone polls its own file: nothing to listen for
            return
        other = open_store(store.url, store.path)
        try:
            other.append("job-l", [submitted("l")])
            assert woken.wait(10), "a commit by another session woke no listener"
        finally:
            other.close()
    finally:
        stop.set()
        if thread is not None:
            thread.join(10)


def test_the_contract_covers_every_method() -> None:
    """Each method of each role of the port is exercised by a test in this file (on both backends)."""
    import inspect
    import re

    from schema import store as port

    text = Path(__file__).read_text()
    roles = (port.EventLog, port.JobReads, port.FleetServices, port.OpsReads, port.Maintenance)
    methods = {n for r in roles for n, _ in inspect.getmembers(r, inspect.isfunction) if not n.startswith("_")}
    missing = sorted(m for m in methods if not re.search(rf"\.{m}\(", text))
    assert missing == []
