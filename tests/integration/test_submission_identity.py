"""Submission identity with the real daemon: a hand-over's ticket becomes its job; stale or bad tickets cost only the id."""

from __future__ import annotations

import io
from pathlib import Path

from schema.jobs import JobState
from spool import handover, tickets
from tests.conftest import Spool, script, wait_for


def first_event(spool: Spool, job_id: str) -> object:
    store = spool.store()
    try:
        return store.read(f"job-{job_id}")[0].event
    finally:
        store.close()


def job(spool: Spool, job_id: str) -> object:
    return next((j for j in spool.jobs() if j.id == job_id), None)


def test_a_handed_over_file_becomes_the_job_its_ticket_names(spool: Spool) -> None:
    spool.start()
    t = handover.hand_over(spool.inbox, io.BytesIO(script(duration=1, segments=1)), "talk.wav")
    done = wait_for(lambda: (j := job(spool, t.job)) and j.state.terminal and j, 30, what="the ticket's job")
    assert done.state is JobState.succeeded and done.source == "talk.wav"
    submitted = first_event(spool, t.job)
    assert submitted.ticket == t.nonce  # type: ignore[attr-defined]
    assert not tickets.path_for(spool.inbox, "talk.wav").exists()  # taken with its file
    assert spool.outbox_files() == ["talk.json", "talk.srt", "talk.txt", "talk.vtt"]


def test_stale_and_malformed_tickets_get_a_fresh_id_and_are_reported(spool: Spool) -> None:
    spool.start()
    first = handover.hand_over(spool.inbox, io.BytesIO(script(duration=1, segments=1, n=1)), "a.wav")
    wait_for(lambda: (j := job(spool, first.job)) and j.state.terminal, 30, what="the first job")
    # A ticket naming a job that exists (a leftover of a crash, or forged) and one that is not JSON.
    stale = tickets.Ticket(first.job, "0" * 32, "b.wav")
    tickets.write(spool.inbox, stale)
    tickets.path_for(spool.inbox, "c.wav").write_bytes(b"not json")
    spool.drop("b.wav", script(duration=1, segments=1, n=2))
    spool.drop("c.wav", script(duration=1, segments=1, n=3))
    jobs = spool.wait_terminal(3, timeout=30)
    by_source = {j.source: j for j in jobs}
    assert by_source["b.wav"].id != first.job and by_source["c.wav"].id not in (first.job, stale.job)
    assert all(j.state is JobState.succeeded for j in jobs)
    assert first_event(spool, by_source["b.wav"].id).ticket is None  # type: ignore[attr-defined]
    out = spool.daemons[0].output()
    assert "intake.ticket_refused" in out and "exists already" in out and "is not JSON" in out
    assert sorted(p.name for p in spool.inbox.iterdir()) == []  # refused tickets are cleared with their file
