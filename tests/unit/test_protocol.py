"""The worker protocol: every message type round-trips, and a line that is not a whole message is dropped."""

from __future__ import annotations

import json
from typing import Any, get_type_hints

from hypothesis import given
from hypothesis import strategies as st

from processor import protocol

SAMPLES: dict[str, dict[str, Any]] = {
    "job": {
        "type": "job",
        "job": "abc",
        "attempt": 1,
        "total_attempt": 1,
        "input": "/w/abc/a.wav",
        "stage": "/w/abc/out/a1",
        "options": {"formats": ["txt"]},
        "resume_from": 0.0,
        "prior_segments": [],
        "source": "a.wav",
        "lanes": 2,
    },
    "go": dict(protocol.go()),
    "lanes": dict(protocol.lanes("abc", 2)),
    "skip": dict(protocol.skip()),
    "shutdown": dict(protocol.shutdown()),
    "ready": {"type": "ready", "pid": 7, "engine": "test", "model": "m", "load_s": 0.1, "info": {}},
    "fatal": dict(protocol.fatal("x failed to load")),
    "idle": dict(protocol.idle()),
    "probe": {"type": "probe", "job": "abc", "sha256": "00", "duration_s": 3},
    "progress": {"type": "progress", "job": "abc", "position_s": 1.5, "duration_s": 3.0},
    "segments": {"type": "segments", "job": "abc", "segments": [{"start": 0, "end": 1, "text": "a"}], "upto_s": 1.0},
    "result": dict(
        protocol.result("abc", ["a.txt"], {"language": "en", "duration_s": 3.0, "elapsed_s": 0.5, "sha256": "00"})
    ),
    "error": dict(protocol.error("abc", "engine_error", "boom", retryable=True)),
}


def line(msg: dict[str, Any]) -> bytes:
    return (json.dumps(msg) + "\n").encode()


def test_every_message_type_has_a_sample_and_round_trips() -> None:
    assert set(SAMPLES) == set(protocol._TYPES)
    for msg in SAMPLES.values():
        assert protocol.decode(protocol.encode(msg)) == msg  # type: ignore[arg-type]


@given(st.sampled_from(sorted(SAMPLES)), st.data())
def test_a_message_missing_a_field_or_with_a_wrong_type_is_dropped(kind: str, data: st.DataObject) -> None:
    msg = dict(SAMPLES[kind])
    fields = [k for k in get_type_hints(protocol._TYPES[kind]) if k != "type"]
    if not fields:
        assert protocol.decode(line({"type": "nonsense"})) is None
        return
    key = data.draw(st.sampled_from(fields))
    if data.draw(st.booleans()):
        del msg[key]
    else:
        wrong = {str: 1, int: "1", float: "1.0", bool: "yes", list: {}, dict: []}
        hint = get_type_hints(protocol._TYPES[kind])[key]
        msg[key] = wrong.get(getattr(hint, "__origin__", hint))
    assert protocol.decode(line(msg)) is None


@given(st.binary(max_size=200))
def test_stray_output_is_never_a_message_unless_it_is_one(raw: bytes) -> None:
    msg = protocol.decode(raw)
    assert msg is None or (isinstance(msg, dict) and msg.get("type") in protocol._TYPES)
