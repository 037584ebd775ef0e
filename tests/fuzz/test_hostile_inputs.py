"""Whatever lands in the inbox, the daemon lives and every input ends in exactly one terminal place.

Hypothesis draws batches of drops: names as raw bytes (non-UTF-8, control characters, leading
dashes, up to 255 bytes), kinds (audio, garbage, empty, symlink, FIFO, a folder named like audio),
hand-over by rename or in place, and sidecars of arbitrary bytes, JSON of arbitrary values, or a
symlink/FIFO in a sidecar's name.  One real daemon takes every batch; the invariants:

* the daemon is alive after each batch;
* every drop whose name makes it an input ends as exactly one terminal job, the input in done/ or
  in failed/ beside its error.json (never both, never lost), and never with ``internal_error``;
* a job refused for its options never reached a worker (0 engine attempts);
* names the daemon ignores (temp, dot and OS junk files) are left where they are.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from schema import events as ev
from spool import names
from tests.conftest import Spool, script, wait_for
from tests.fuzz import examples

KINDS = ("audio", "garbage", "empty", "symlink", "fifo", "folder")


@dataclass(frozen=True)
class Drop:
    name: bytes
    kind: str
    in_place: bool
    sidecar: bytes | None
    sidecar_kind: str  # regular | symlink | fifo


def _valid_name(b: bytes) -> bool:
    return b not in (b".", b"..") and b"/" not in b and b"\x00" not in b


name_bytes = st.one_of(
    st.binary(min_size=1, max_size=60),
    st.text(st.characters(codec="utf-8", exclude_characters="/\x00"), min_size=1, max_size=40).map(str.encode),
    st.sampled_from([b"-rf.wav", b"Thumbs.db", b".hidden.wav", b"x.part", b"a\nb.wav", b"\x1b[31mred.wav"]),
    st.integers(200, 250).map(lambda n: b"L" * n + b".wav"),
).filter(_valid_name)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=10), inner, max_size=3),
    max_leaves=8,
)
sidecar_bytes = st.one_of(
    st.binary(max_size=200),
    st.dictionaries(
        st.sampled_from(["language", "task", "formats", "beam_size", "initial_prompt", "word_timestamps", "x"]),
        json_values,
        max_size=4,
    ).map(lambda d: json.dumps(d).encode()),
    st.just(b'{"beam_size": ' + b"9" * 5000 + b"}"),  # an integer literal the JSON parser refuses
    st.just(b'{"initial_prompt": "\\ud800"}'),  # valid JSON, text no engine can take
)
drops = st.builds(
    Drop,
    name=name_bytes,
    kind=st.sampled_from(KINDS),
    in_place=st.booleans(),
    sidecar=st.none() | sidecar_bytes,
    sidecar_kind=st.sampled_from(["regular", "regular", "regular", "symlink", "fifo"]),
)


def place(spool: Spool, folder: Path, i: int, d: Drop) -> bytes | None:
    """Put one drop into the inbox; the inbox-relative path (bytes) if it is an input, else None."""
    where = folder / f"d{i}"
    where.mkdir(parents=True)
    base = os.fsencode(where)
    target = base + b"/" + d.name
    decoded = os.fsdecode(d.name)
    if d.sidecar is not None and len(d.name) <= 250:
        side = target + b".json"
        if d.sidecar_kind == "symlink":
            os.symlink(b"/etc/hostname", side)
        elif d.sidecar_kind == "fifo":
            os.mkfifo(side)
        else:
            with open(side, "wb") as fh:
                fh.write(d.sidecar)
    if d.kind == "folder":
        os.mkdir(target)
        return None  # a folder is walked into, never an input
    if d.kind == "symlink":
        os.symlink(b"/etc/hostname", target)
    elif d.kind == "fifo":
        os.mkfifo(target)
    else:
        data = {"audio": script(duration=1, segments=1, n=secrets.token_hex(4)), "empty": b""}.get(
            d.kind, b"\x00garbage" + secrets.token_bytes(64)
        )
        tmp = base + b"/.drop-" + secrets.token_hex(4).encode()
        with open(target if d.in_place else tmp, "wb") as fh:
            fh.write(data)
        if not d.in_place:
            os.rename(tmp, target)
    if not names.is_candidate(decoded):
        return None
    return os.path.relpath(target, os.fsencode(spool.inbox))


def check(spool: Spool, inputs: list[bytes], ignored: list[bytes]) -> list[str]:
    """Every broken invariant for one batch (empty when all hold)."""
    wrong: list[str] = []
    by_source = {}
    for job in spool.jobs():
        by_source.setdefault(job.source.encode("utf-8", "surrogateescape"), []).append(job)
    store = spool.store()
    try:
        for rel in inputs:
            jobs = [j for j in by_source.get(rel, []) if j.state.terminal]
            if len(jobs) != 1:
                wrong.append(f"{rel!r}: {len(jobs)} terminal jobs")
                continue
            job = jobs[0]
            if job.reason == "internal_error":
                wrong.append(f"{rel!r}: internal_error: {job.message}")
            done = job.done_path and os.path.lexists(os.fsencode(spool.layout.done) + b"/" + os.fsencode(job.done_path))
            failed = job.failed_path and os.path.lexists(
                os.fsencode(spool.layout.failed) + b"/" + os.fsencode(job.failed_path)
            )
            if job.state.value == "succeeded" and not done:
                wrong.append(f"{rel!r}: succeeded but not in done/")
            if job.state.value != "succeeded":
                error = os.fsencode(spool.layout.failed) + b"/" + os.fsencode(job.failed_path or "") + b".error.json"
                if not failed or not os.path.exists(error):
                    wrong.append(f"{rel!r}: {job.state.value} ({job.reason}) but not in failed/ with its error.json")
            if job.reason == "invalid_options":
                started = [r for r in store.read(ev.job_stream(job.id)) if r.type == ev.JobStarted.type]
                if started:
                    wrong.append(f"{rel!r}: invalid options, yet {len(started)} engine attempts")
    finally:
        store.close()
    for rel in ignored:
        if not os.path.lexists(os.fsencode(spool.inbox) + b"/" + rel):
            wrong.append(f"{rel!r}: an ignored name was taken from the inbox")
    return wrong


def test_hostile_drops_never_stop_the_daemon_and_each_input_ends_once(spool: Spool) -> None:
    d = spool.start()
    batch_no = [0]

    @given(st.lists(drops, min_size=1, max_size=6))
    @settings(
        max_examples=examples(15),
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
        phases=[Phase.explicit, Phase.generate],  # a real daemon per step: report the example, do not shrink it
    )
    def batch(items: list[Drop]) -> None:
        batch_no[0] += 1
        folder = spool.inbox / f"ex{batch_no[0]}"
        inputs, ignored = [], []
        for i, drop in enumerate(items):
            rel = place(spool, folder, i, drop)
            if rel is not None:
                inputs.append(rel)
            elif drop.kind != "folder":
                ignored.append(
                    os.path.relpath(os.fsencode(folder / f"d{i}") + b"/" + drop.name, os.fsencode(spool.inbox))
                )
        found: list[str] = []

        def settled() -> bool:
            found[:] = check(spool, inputs, ignored)
            return not found or not d.alive()

        try:
            wait_for(settled, 60, what="every input of the batch in one terminal place")
        except AssertionError:
            raise AssertionError(found) from None
        assert d.alive(), d.output()[-3000:]
        assert not found, found

    batch()
    assert d.stop() == 0
