"""Recorders writing into the inbox in place (RELIABILITY #28): one job, one transcript of the final bytes.

Real recorders point at hot folders: one open handle appending with pauses longer than ``settle_s``,
a writer that reopens the file by name and appends per chunk, one that pauses almost ``recent_s``,
one that replaces the file under its name.  The test engine decodes these real WAV files with PyAV
and makes one segment per second of audio, so the transcript says how much of the file it saw.
"""

from __future__ import annotations

import io
import struct
import wave
from collections.abc import Callable
from pathlib import Path

import pytest

from schema import events as ev
from schema.jobs import JobState
from tests.conftest import Spool, wait_for, writer_pause
from tests.spoolcheck import problems

RATE = 16_000
CHUNKS = 5


def pcm(seconds: float) -> bytes:
    n = int(RATE * seconds)
    return b"".join(struct.pack("<h", (i * 37) % 2000 - 1000) for i in range(n))


def header(data_bytes: int) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.setnframes(data_bytes // 2)
    raw = buf.getvalue()
    return raw[:4] + struct.pack("<I", 36 + data_bytes) + raw[8:40] + struct.pack("<I", data_bytes)


def one_handle(path: Path, pause: float) -> None:
    """Header patched after every chunk (as Python's wave and many encoders do), one open file."""
    with open(path, "wb") as fh:
        written = 0
        for i in range(CHUNKS):
            chunk = pcm(1.0)
            fh.seek(0, 2)
            fh.write(chunk if i else header(0) + chunk)
            written += len(chunk)
            fh.seek(0)
            fh.write(header(written))
            fh.flush()
            if i < CHUNKS - 1:
                writer_pause(pause)


def reopen_and_append(path: Path, pause: float) -> None:
    """Every chunk: open by name, append, patch the header, close."""
    written = 0
    for i in range(CHUNKS):
        chunk = pcm(1.0)
        with open(path, "ab" if i else "wb") as fh:
            fh.write(chunk if i else header(0) + chunk)
        written += len(chunk)
        with open(path, "r+b") as fh:
            fh.write(header(written))
        if i < CHUNKS - 1:
            writer_pause(pause)


def replace_by_rename(path: Path, pause: float) -> None:
    """Every chunk: the whole file so far saved elsewhere and renamed over the name (a "safe save").

    The temp file is outside the inbox: under the rename convention (a temp name *in* the inbox)
    each rename would declare a complete file, and each would rightly be a job of its own.
    """
    body = b""
    for i in range(CHUNKS):
        body += pcm(1.0)
        tmp = path.parent.parent / f"{path.name}.saving"  # same filesystem, not in the inbox
        tmp.write_bytes(header(len(body)) + body)
        tmp.replace(path)
        if i < CHUNKS - 1:
            writer_pause(pause)


def transcript_segments(spool: Spool, job_id: str) -> list[dict[str, object]]:
    s = spool.store()
    try:
        return [
            seg
            for r in s.read(ev.job_stream(job_id))
            if isinstance(r.event, ev.JobSegments)
            for seg in r.event.segments
        ]
    finally:
        s.close()


@pytest.mark.parametrize("writer", [one_handle, reopen_and_append, replace_by_rename])
@pytest.mark.parametrize("pause_of_recent", [0.8])  # shorter pauses too under make reliability (row 28)
def test_a_recorder_writing_in_place_gives_one_job_and_one_transcript_of_the_final_bytes(
    spool: Spool, writer: Callable[[Path, float], None], pause_of_recent: float
) -> None:
    """Pauses longer than settle_s (0.3 s) and up to most of recent_s (3 s) between chunks."""
    recent = 3.0
    spool.config.update({"SPOOL_RECENT_S": str(recent), "SPOOL_TRUST_MTIME": "true"})
    d = spool.start()
    target = spool.inbox / "recording.wav"
    writer(target, recent * pause_of_recent)
    final = target.read_bytes()
    (job,) = spool.wait_terminal(1, timeout=60)
    assert job.state is JobState.succeeded, (job.reason, job.message)
    assert len(spool.jobs()) == 1 and not spool.failed_files()
    text = (spool.layout.outbox / "recording.txt").read_text()
    assert text.splitlines()[-1] == f"segment {CHUNKS} of {CHUNKS}.", text  # every second of it, once
    assert (spool.layout.done / "recording.wav").read_bytes() == final
    assert not target.exists()
    assert d.stop() == 0
    assert not problems(spool, ["recording.wav"], [])


def test_a_renamed_file_still_leaves_its_name_free_at_once(spool: Spool) -> None:
    """The rename convention is unchanged: the file is moved at once and the name can be used again."""
    spool.start()
    spool.drop("first.wav", header(len(pcm(1.0))) + pcm(1.0))
    wait_for(lambda: not (spool.inbox / "first.wav").exists(), 20, what="the renamed file taken away")
    (job,) = spool.wait_terminal(1)
    assert job.state is JobState.succeeded and job.settled_by == "rename"
