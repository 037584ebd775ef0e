"""Stored rows <-> events: every catalogue entry round-trips; unknown and old shapes are handled."""

from __future__ import annotations

import dataclasses
import json

import pytest

from schema import events as ev
from schema import mapper
from schema.errors import UnknownEvent
from tests.unit.events_fixtures import SAMPLES, submitted

DAEMON_SAMPLES = [
    ev.DaemonStarted(pid=1, host="h", instance="i", version="0"),
    ev.DaemonStopped(pid=1, instance="i", reason="SIGTERM"),
    ev.AlertRaised(rule="r", level="warning", metric="m", value=1.0, threshold=0.0, message="x"),
    ev.AlertResolved(rule="r", value=0.0),
    ev.LogsPruned(files=1, bytes=2),
    ev.ReportWritten(path="p", status="ok"),
    ev.EventsCompacted(jobs=1, removed=2),
    ev.NotificationQueued(key="k", target="t", payload={"a": 1}),
    ev.NotificationDelivered(key="k", attempts=1),
    ev.NotificationFailed(key="k", attempts=1, error="e", final=False),
]


@pytest.mark.parametrize("event", [submitted(), *SAMPLES.values(), *DAEMON_SAMPLES], ids=lambda e: e.type)
def test_round_trip(event: ev.Event) -> None:
    type_, version, data = mapper.encode(event)
    assert mapper.decode(type_, version, data) == event
    assert json.loads(data)  # plain JSON


def test_catalogue_covers_every_event_class() -> None:
    classes = {c for c in vars(ev).values() if isinstance(c, type) and issubclass(c, ev.Event) and c is not ev.Event}
    assert set(ev.CATALOGUE.values()) == classes


def test_non_utf8_names_survive_the_round_trip() -> None:
    name = b"caf\xe9 \xff.wav".decode("utf-8", "surrogateescape")
    event = dataclasses.replace(submitted(), source=name)
    type_, version, data = mapper.encode(event)
    data.encode("ascii")  # stored text is plain ASCII
    assert mapper.decode(type_, version, data).source.encode("utf-8", "surrogateescape") == b"caf\xe9 \xff.wav"


def test_unknown_type_is_a_clear_error() -> None:
    with pytest.raises(UnknownEvent, match="newer version"):
        mapper.decode("job.teleported", 1, "{}")


def test_newer_class_version_is_refused() -> None:
    with pytest.raises(UnknownEvent):
        mapper.decode("job.submitted", 99, "{}")


def test_upcaster_brings_old_rows_forward(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pretend JobCancelRequested is now at version 2 and v1 rows lacked "by".
    monkeypatch.setattr(ev.JobCancelRequested, "class_version", 2)
    monkeypatch.setitem(mapper.UPCASTERS, ("job.cancel_requested", 1), lambda d: {**d, "by": "upcast"})
    assert mapper.decode("job.cancel_requested", 1, "{}") == ev.JobCancelRequested(by="upcast")


def test_job_submitted_v1_rows_load_without_a_ticket() -> None:
    """Rows written before hand-over tickets (class_version 1) load as v2 with ticket None."""
    v1 = {k: v for k, v in json.loads(mapper.encode(submitted())[2]).items() if k != "ticket"}
    event = mapper.decode("job.submitted", 1, json.dumps(v1))
    assert isinstance(event, ev.JobSubmitted) and event.ticket is None and event == submitted()
    assert mapper.encode(dataclasses.replace(submitted(), ticket="ab" * 16))[1] == 2
