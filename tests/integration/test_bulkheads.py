"""Bulkheads (RELIABILITY #26): whatever one input raises, that input ends in failed/ and the daemon goes on.

``SPOOL_FAULT_RAISE=point:N`` raises an unexpected exception at a named step (a bug nobody foresaw,
exactly there); the hostile sidecars are the ones that once stopped the daemon for good.
"""

from __future__ import annotations

import json

import pytest

from schema import events as ev
from schema.jobs import JobState
from tests.conftest import Spool, script


def error_of(spool: Spool, name: str) -> dict[str, object]:
    return json.loads((spool.layout.failed / f"{name}.error.json").read_text())


def attempts(spool: Spool, job_id: str) -> int:
    s = spool.store()
    try:
        return sum(r.type == ev.JobStarted.type for r in s.read(ev.job_stream(job_id)))
    finally:
        s.close()


@pytest.mark.parametrize(
    ("point", "skip"),
    [
        ("claim", 0),  # intake, as the file is taken
        ("rename", 0),  # the publication
        ("append", 0),  # the first event written: a job.submitted
        ("append", 3),  # some later event of some job: a start, a probe, segments
        ("append", 6),
    ],
)
def test_an_exception_for_one_input_fails_that_input_and_nothing_else(spool: Spool, point: str, skip: int) -> None:
    d = spool.start(SPOOL_FAULT_RAISE=f"{point}:1:{skip}")
    names = [f"b{i}.wav" for i in range(4)]
    for i, name in enumerate(names):
        spool.drop(name, script(duration=1, segments=1, n=f"{point}{i}"))
    jobs = spool.wait_terminal(len(names), timeout=60)
    assert d.alive(), d.output()[-2000:]
    broken = [j for j in jobs if j.state is JobState.failed]
    assert len(broken) == 1 and broken[0].reason == "internal_error", [(j.source, j.reason) for j in jobs]
    assert sum(j.state is JobState.succeeded for j in jobs) == len(names) - 1
    err = error_of(spool, broken[0].source)
    assert err["reason"] == "internal_error" and "InjectedFault: injected fault at" in str(err["message"])
    assert (spool.layout.failed / broken[0].source).exists()  # the input itself is kept, beside its reason
    assert "Traceback" in d.output() or '"exception"' in d.output()  # the stack is in the daemon log
    late = spool.drop("after.wav", script(duration=1, segments=1, n=f"after-{point}"))
    assert late.name == "after.wav"
    assert spool.wait_terminal(len(names) + 1, timeout=30)[-1].state is JobState.succeeded
    assert d.stop() == 0


@pytest.mark.parametrize(
    "sidecar",
    [
        b'{"beam_size": ' + b"9" * 5000 + b"}",  # the JSON parser refuses the integer: once stopped the daemon
        b'{"initial_prompt": "\\ud800 hello"}',  # valid JSON; text no engine can encode
        b'{"language": "\\u65e5\\u672c"}',  # letters, but not a language code
        b"\xff\xfe{}",  # not UTF-8
        b"[" * 100_000,  # nested beyond the parser
    ],
)
def test_a_hostile_sidecar_is_invalid_options_with_no_engine_attempt(spool: Spool, sidecar: bytes) -> None:
    d = spool.start()
    (spool.inbox / "h.wav.json").write_bytes(sidecar)
    spool.drop("h.wav", script(duration=1, segments=1, n="h"))
    spool.drop("ok.wav", script(duration=1, segments=1, n="ok"))
    jobs = {j.source: j for j in spool.wait_terminal(2, timeout=30)}
    assert d.alive()
    assert jobs["h.wav"].reason == "invalid_options" and attempts(spool, jobs["h.wav"].id) == 0
    assert jobs["ok.wav"].state is JobState.succeeded
    assert error_of(spool, "h.wav")["reason"] == "invalid_options"
    assert d.stop() == 0
    again = spool.start()  # and it starts again: nothing left behind that stops it
    assert again.alive() and again.stop() == 0
