"""The store refuses a write at the instant a worker reports (RELIABILITY #29), on both backends.

The refusal is injected exactly there (``SPOOL_STORE_FAULT``, see ``schema/store_faults.py``): SQLite
fails as with a lock held past the retry deadline, PostgreSQL has the daemon's own session terminated
just before the statement (or just after a commit, so its acknowledgement is lost).  Whatever it is,
each input ends exactly once, no job is left running on a worker that moved on, and the daemon lives.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from schema import events as ev
from schema.jobs import JobState
from tests.conftest import Spool, script, wait_for
from tests.fleet.conftest import FleetSpool
from tests.pg import pg_url  # noqa: F401 - a fixture
from tests.spoolcheck import batch, problems

BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def any_spool(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Spool]:
    if request.param == "postgres":
        s: Spool = FleetSpool(tmp_path / "spool", request.getfixturevalue("pg_url"))
        s.config["SPOOL_STATE_DIR"] = str(tmp_path / "state")
    else:
        s = Spool(tmp_path / "spool")
    yield s
    s.cleanup()


def stream(spool: Spool, job_id: str) -> list[ev.Event]:
    s = spool.store()
    try:
        return [r.event for r in s.read(ev.job_stream(job_id))]
    finally:
        s.close()


def log_events(d: object, name: str) -> list[dict[str, object]]:
    out = []
    for line in d.output().splitlines():  # type: ignore[attr-defined]
        if line.startswith("{") and f'"{name}"' in line:
            rec = json.loads(line)
            if rec.get("event") == name:
                out.append(rec)
    return out


def run_batch(spool: Spool, fault: str, good: int = 4, bad: int = 1) -> tuple[object, list[str], list[str]]:
    goods, bads = batch(spool, good, bad, "r")
    d = spool.start(SPOOL_STORE_FAULT=fault)
    spool.wait_terminal(good + bad, timeout=60)
    wait_for(lambda: all(j.state.terminal for j in spool.jobs()), 30, what="every job terminal")
    assert d.alive(), d.output()[-2000:]
    assert d.stop() == 0  # the moves after the last event are done once it has stopped cleanly
    found = problems(spool, goods, bads)
    assert not found, found
    return d, goods, bads


@pytest.mark.parametrize(
    "fault",
    [
        "job.transcribed:refuse:3",  # the result itself, three refusals in a row
        "job.segments:refuse:2",  # the attempt's last segments, flushed with its outcome
        "job.succeeded:refuse:2",  # the publication, after the files were moved
    ],
)
def test_a_refused_outcome_is_kept_and_recorded_once_the_store_accepts(any_spool: Spool, fault: str) -> None:
    d, _, _ = run_batch(any_spool, fault)
    refusals = len(log_events(d, "store.error")) + len(log_events(d, "store.write_deferred"))
    assert refusals >= int(fault.rsplit(":", 1)[1])
    for job in any_spool.jobs():
        events = stream(any_spool, job.id)
        types = [e.type for e in events]
        assert types.count(ev.JobStarted.type) == 1, (job.source, types)  # recorded, not run again
        if job.state is JobState.succeeded:
            assert types.count(ev.JobTranscribed.type) == 1 and types.count(ev.JobSucceeded.type) == 1
            segments = [s for e in events if isinstance(e, ev.JobSegments) for s in e.segments]
            assert [s["start"] for s in segments] == [0.0, 1.0], segments  # each once, in order
    assert not log_events(d, "job.stale") and not log_events(d, "job.reconciled")


@pytest.mark.parametrize("fault", ["job.transcribed:lost_ack:2", "job.succeeded:lost_ack:2", "job.failed:lost_ack:1"])
def test_an_outcome_committed_without_acknowledgement_is_not_recorded_twice(any_spool: Spool, fault: str) -> None:
    d, _, bads = run_batch(any_spool, fault)
    for job in any_spool.jobs():
        types = [e.type for e in stream(any_spool, job.id)]
        assert types.count(ev.JobTranscribed.type) <= 1 and types.count(ev.JobFailed.type) <= 1, types
    assert log_events(d, "job.outcome_confirmed") or fault.startswith("job.transcribed")
    failed = json.loads((any_spool.layout.failed / f"{bads[0]}.error.json").read_text())
    assert failed["reason"] == "bad_input"


def test_a_failure_refused_at_the_workers_report_still_quarantines_the_input(any_spool: Spool) -> None:
    _, _, bads = run_batch(any_spool, "job.failed:refuse:3", good=2, bad=2)
    for name in bads:
        assert json.loads((any_spool.layout.failed / f"{name}.error.json").read_text())["reason"] == "bad_input"


def test_a_start_recorded_without_the_daemon_knowing_is_reconciled_not_left_running(any_spool: Spool) -> None:
    """The claim commits but its acknowledgement is lost: the store says running on an idle worker.

    The daemon's own view is checked against the store: the job is failed as ``unrecorded`` (not
    counted) and runs again at once.  The orphan sweep, running every 0.2 s with a 1 s stall limit,
    never judges this daemon's own worker "left by a previous daemon": it is not killed, no orphan.
    """
    any_spool.config.update({"SPOOL_SWEEP_S": "0.2", "SPOOL_STALL_S": "1"})
    any_spool.drop("lost.wav", script(duration=2, segments=2, n="lost"))
    d = any_spool.start(SPOOL_STORE_FAULT="job.started:lost_ack:1")
    (job,) = any_spool.wait_terminal(1, timeout=30)
    assert job.state is JobState.succeeded
    events = stream(any_spool, job.id)
    failures = [e for e in events if isinstance(e, ev.JobFailed)]
    assert [f.reason for f in failures] == ["unrecorded"] and not failures[0].counted
    assert not [e for e in events if isinstance(e, ev.JobOrphaned)]
    assert len(log_events(d, "job.reconciled")) == 1
    assert len(log_events(d, "worker.ready")) == 1  # the one warm worker lived throughout
    assert d.stop() == 0
    assert not problems(any_spool, ["lost.wav"], [])


def test_a_finishing_job_never_dispatches_the_next_inside_its_own_attempt(spool: Spool) -> None:
    """Job A finishes while job B's retry is due and B's input has changed meanwhile.

    Dispatching B happens when A's worker is released; B's ``job.input_changed`` must be recorded
    under no attempt's fence (it was once recorded under A's, refused as stale, and A's result lost).
    """
    spool.config.update({"SPOOL_RETRY_BACKOFF_S": "0.3", "SPOOL_WORKERS": "1"})
    spool.drop("b.wav", script(duration=1, segments=1, n="b", attempts={"1": {"mode": "error"}}))
    d = spool.start()
    b = wait_for(lambda: next((j for j in spool.jobs() if j.state is JobState.retry_wait), None), 30, what="B waits")
    spool.drop("a.wav", script(duration=4, segments=4, delay_s=0.5, n="a"))
    wait_for(lambda: any(j.source == "a.wav" and j.state is JobState.running for j in spool.jobs()), 30, what="A runs")
    with open(spool.layout.job_dir(b.id) / "b.wav", "ab") as fh:  # B's producer appends while B waits
        fh.write(b"\nmore bytes")
    jobs = spool.wait_terminal(2, timeout=60)
    assert {j.source: j.state for j in jobs} == {"a.wav": JobState.succeeded, "b.wav": JobState.succeeded}
    a = next(j for j in jobs if j.source == "a.wav")
    types = [e.type for e in stream(spool, a.id)]
    assert types.count(ev.JobStarted.type) == 1 and types.count(ev.JobSucceeded.type) == 1, types
    assert ev.JobInputChanged.type in [e.type for e in stream(spool, b.id)]
    assert not log_events(d, "job.stale")
