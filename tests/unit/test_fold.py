"""The job state machine: every transition, table-driven; illegal ones rejected with a clear message."""

from __future__ import annotations

import pytest

from schema import events as ev
from schema.errors import IllegalTransition
from schema.jobs import TRANSITIONS, Job, JobState, apply, fold
from tests.unit.events_fixtures import AT, SAMPLES, failed, started, submitted, succeeded, transcribed


def job_in(state: JobState) -> Job:
    """Reach ``state`` through real events, so fixtures cannot drift from the fold."""
    paths: dict[JobState, list[ev.Event]] = {
        JobState.queued: [submitted()],
        JobState.running: [submitted(), started()],
        JobState.retry_wait: [submitted(), started(), failed(final=False)],
        JobState.publishing: [submitted(), started(), transcribed()],
        JobState.succeeded: [submitted(), started(), transcribed(), succeeded()],
        JobState.failed: [submitted(), started(), failed(final=True)],
        JobState.cancelled: [submitted(), ev.JobCancelled(failed_path="x")],
    }
    job = fold([(e, AT) for e in paths[state]])
    assert job is not None and job.state is state
    return job


EXPECTED = {
    ("job.started", JobState.queued): JobState.running,
    ("job.started", JobState.retry_wait): JobState.running,
    ("job.probed", JobState.running): JobState.running,
    ("job.heartbeat", JobState.running): JobState.running,
    ("job.progress", JobState.running): JobState.running,
    ("job.segments", JobState.running): JobState.running,
    ("job.transcribed", JobState.running): JobState.publishing,
    ("job.duplicate", JobState.running): JobState.publishing,
    ("job.succeeded", JobState.publishing): JobState.succeeded,
    ("job.failed", JobState.queued): JobState.retry_wait,
    ("job.failed", JobState.running): JobState.retry_wait,
    ("job.failed", JobState.retry_wait): JobState.retry_wait,
    ("job.failed", JobState.publishing): JobState.retry_wait,
    ("job.retry_scheduled", JobState.retry_wait): JobState.retry_wait,
    ("job.orphaned", JobState.running): JobState.running,
    ("job.adopted", JobState.publishing): JobState.publishing,
    ("job.cancelled", JobState.queued): JobState.cancelled,
    ("job.cancelled", JobState.running): JobState.cancelled,
    ("job.cancelled", JobState.retry_wait): JobState.cancelled,
    ("job.cancelled", JobState.publishing): JobState.cancelled,  # a held transcript is dropped
    ("job.requeued", JobState.failed): JobState.queued,
    ("job.requeued", JobState.cancelled): JobState.queued,
    ("job.input_changed", JobState.running): JobState.retry_wait,
    ("job.input_changed", JobState.retry_wait): JobState.retry_wait,
    ("job.input_changed", JobState.queued): JobState.retry_wait,
    ("job.input_changed", JobState.publishing): JobState.retry_wait,
    **{("job.cancel_requested", s): s for s in JobState},
}


@pytest.mark.parametrize(("event_type", "state"), sorted(EXPECTED, key=str), ids=lambda x: str(getattr(x, "value", x)))
def test_transition(event_type: str, state: JobState) -> None:
    job = apply(job_in(state), SAMPLES[event_type], at=AT, version=99)
    assert job.state is EXPECTED[(event_type, state)]
    assert job.version == 99


ILLEGAL = [(t, s) for t in SAMPLES for s in JobState if (t, s) not in EXPECTED]


@pytest.mark.parametrize(("event_type", "state"), ILLEGAL, ids=lambda x: str(getattr(x, "value", x)))
def test_illegal_transition_names_state_and_allowed(event_type: str, state: JobState) -> None:
    with pytest.raises(IllegalTransition) as info:
        apply(job_in(state), SAMPLES[event_type], at=AT, version=99)
    assert state.value in str(info.value)
    assert "allowed there" in str(info.value)


def test_table_and_expectations_agree() -> None:
    for event_type, allowed in TRANSITIONS.items():
        if allowed is None:
            continue
        assert {s for (t, s) in EXPECTED if t == event_type} == set(allowed), event_type


def test_submit_twice_is_illegal() -> None:
    with pytest.raises(IllegalTransition):
        apply(job_in(JobState.queued), submitted(), at=AT, version=2)


def test_event_before_submit_is_illegal() -> None:
    with pytest.raises(IllegalTransition):
        apply(None, started(), at=AT, version=1)


def test_attempts_count_started_attempts_and_skip_uncounted_failures() -> None:
    job = fold([(e, AT) for e in [submitted(), started(), failed(final=False, counted=False), started(2)]])
    assert job is not None
    assert job.attempts == 1 and job.total_attempts == 2


def test_clean_shutdowns_are_counted_apart_from_other_failures() -> None:
    stop = ev.JobFailed(
        reason="interrupted", message="daemon stopping", retryable=True, final=False, attempt=1, counted=False
    )
    events = [submitted(), started(), stop, started(2), failed(final=False, counted=False), started(3)]
    job = fold([(e, AT) for e in events])
    assert job is not None and job.total_attempts == 3 and job.shutdowns == 1


def test_final_failure_records_where_the_input_went() -> None:
    job = job_in(JobState.failed)
    assert job.failed_path == "meeting.wav" and job.finished_at == AT and job.reason == "engine_error"


def test_requeue_resets_attempts_and_remembers_failed_path() -> None:
    job = apply(job_in(JobState.failed), ev.JobRequeued(from_path="meeting.wav"), at=AT, version=9)
    assert job.attempts == 0 and job.total_attempts == 1 and job.requeued_from == "meeting.wav"


def test_input_changed_discards_checkpoints() -> None:
    job = apply(job_in(JobState.running), SAMPLES["job.segments"], at=AT, version=3)
    assert job.checkpoint_s == 2.0
    job = apply(job, SAMPLES["job.input_changed"], at=AT, version=4)
    assert job.checkpoint_s == 0.0 and job.segments == 0 and job.size == 11 and job.attempts == 0


def test_progress_is_clamped_and_full_when_succeeded() -> None:
    running = apply(job_in(JobState.running), ev.JobProgressed(position_s=9, duration_s=5), at=AT, version=3)
    assert running.progress == 1.0
    assert job_in(JobState.succeeded).progress == 1.0
    assert job_in(JobState.queued).progress == 0.0


def test_cancel_request_on_a_finished_job_changes_nothing() -> None:
    job = apply(job_in(JobState.succeeded), ev.JobCancelRequested(), at=AT, version=9)
    assert job.state is JobState.succeeded and not job.cancel_requested


def test_job_round_trips_through_dict() -> None:
    job = job_in(JobState.succeeded)
    assert Job.from_dict(job.to_dict()) == job


def test_adoption_moves_a_publishing_job_to_its_new_owner() -> None:
    job = apply(job_in(JobState.publishing), SAMPLES["job.adopted"], at=AT, version=99)
    assert (job.worker, job.host, job.instance, job.pid) == ("i2-publish", "h2", "i2", None)
