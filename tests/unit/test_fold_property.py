"""Property tests: no sequence of valid events reaches an illegal state; replay equals the live projection."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schema import events as ev
from schema.jobs import TRANSITIONS, Job, JobState, apply
from schema.replay import verify
from schema.sqlite_store import SQLiteEventStore
from tests.unit.events_fixtures import AT, SAMPLES, failed, submitted


def allowed_events(job: Job) -> list[ev.Event]:
    out = [e for t, e in SAMPLES.items() if job.state in (TRANSITIONS[t] or ())]
    if job.state in (TRANSITIONS["job.failed"] or ()):
        out.append(failed(final=True))
    return out


@st.composite
def walks(draw: st.DrawFn, max_len: int = 25) -> list[ev.Event]:
    events: list[ev.Event] = [submitted()]
    job = apply(None, events[0], at=AT, version=1)
    for version in range(2, draw(st.integers(1, max_len)) + 2):
        options = allowed_events(job)
        if not options:
            break
        e = draw(st.sampled_from(options))
        job = apply(job, e, at=AT, version=version)
        events.append(e)
    return events


def check_invariants(job: Job) -> None:
    assert isinstance(job.state, JobState)
    assert 0 <= job.attempts <= job.total_attempts
    assert 0.0 <= job.progress <= 1.0
    if job.state in (JobState.failed, JobState.cancelled):
        assert job.failed_path and job.finished_at and job.reason
    if job.state is JobState.succeeded:
        assert job.finished_at is not None and job.outputs
    if job.state is not JobState.running:
        assert job.pid is None or job.state is JobState.queued


@given(walks())
@settings(max_examples=300, deadline=None)
def test_any_valid_sequence_folds_to_a_legal_state(events: list[ev.Event]) -> None:
    job = None
    for version, e in enumerate(events, start=1):
        job = apply(job, e, at=AT, version=version)
        check_invariants(job)


@given(st.lists(walks(12), min_size=1, max_size=4))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_replay_equals_live_projection(streams: list[list[ev.Event]]) -> None:
    with tempfile.TemporaryDirectory() as d:
        store = SQLiteEventStore(Path(d) / "spool.db", create=True)
        try:
            for i, events in enumerate(streams):
                job_id = f"j{i}"
                events = [submitted(job_id), *events[1:]]
                # interleave: append one event at a time, as the daemon does
                for e in events:
                    store.append(ev.job_stream(job_id), [e])
            report = verify(store)
            assert report.ok, report.lines()
            assert report.jobs == len(streams)
        finally:
            store.close()
