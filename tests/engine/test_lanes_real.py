"""Lanes with the real engine and the real daemon: a long file uses the idle worker's core, gives it back
the moment another file waits, and its transcript is the one a single lane gives, word for word (issue 17)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from bench.common import clip_text
from schema.jobs import JobState
from tests.conftest import Spool, speech_wav, wait_for

pytestmark = [pytest.mark.engine, pytest.mark.slow]


def log_of(spool: Spool, job_id: str) -> str:
    path = spool.layout.job_log(job_id)
    return path.read_text(errors="replace") if path.exists() else ""


def test_a_long_file_borrows_an_idle_core_and_returns_it_with_the_same_transcript(spool: Spool, tmp_path: Path) -> None:
    long = speech_wav(tmp_path, clip_text(1717, 150), name="long.wav")  # two windows and more
    short = speech_wav(tmp_path, clip_text(1718, 6), name="short.wav")
    spool.config.update({"SPOOL_ENGINE": "faster-whisper", "SPOOL_WORKERS": "2", "SPOOL_THREADS": "1"})
    daemon = spool.start()  # lanes: auto (2, one per worker)
    os.link(long, spool.inbox / ".long.wav.part")
    os.rename(spool.inbox / ".long.wav.part", spool.inbox / "long.wav")
    job = wait_for(lambda: next((j for j in spool.jobs() if j.state is JobState.running), None), 60, what="running")
    wait_for(lambda: "lanes 1 -> 2" in log_of(spool, job.id), 60, what="the idle worker's core lent as a lane")
    os.link(short, spool.inbox / ".short.wav.part")
    os.rename(spool.inbox / ".short.wav.part", spool.inbox / "short.wav")
    wait_for(lambda: "lanes 2 -> 1" in log_of(spool, job.id), 60, what="the lane given back to the waiting file")
    done = spool.wait_terminal(2, timeout=300)
    assert all(j.state is JobState.succeeded for j in done), [(j.source, j.reason) for j in done]
    laned = json.loads((spool.layout.outbox / "long.json").read_text())
    assert laned["spoolscribe"]["engine_info"]["windows_ahead"] >= 1
    assert daemon.stop() == 0

    one = Spool(tmp_path / "one-lane")
    try:
        one.config.update({"SPOOL_ENGINE": "faster-whisper", "SPOOL_WORKERS": "1", "SPOOL_THREADS": "2"})
        one.config["SPOOL_LANES"] = "1"
        one.start()
        os.link(long, one.inbox / ".long.wav.part")
        os.rename(one.inbox / ".long.wav.part", one.inbox / "long.wav")
        (single,) = one.wait_terminal(1, timeout=300)
        assert single.state is JobState.succeeded
        plain = json.loads((one.layout.outbox / "long.json").read_text())
    finally:
        one.cleanup()
    assert plain["spoolscribe"]["engine_info"]["windows_ahead"] == 0
    assert [(s["start"], s["end"], s["text"]) for s in laned["segments"]] == [
        (s["start"], s["end"], s["text"]) for s in plain["segments"]
    ]
    assert laned["segments"] == plain["segments"]  # word times and scores too


def test_speech_to_the_last_sample_of_an_odd_length_decodes_in_batches(tmp_path: Path) -> None:
    """The clips are rounded to the millisecond: the last one may end past the samples (it once raised)."""
    import wave

    import numpy as np

    from processor.worker import models
    from processor.worker.engines.faster import FasterWhisperEngine

    speech = speech_wav(tmp_path, clip_text(1719, 45), name="odd.wav")  # over 30 s: in pieces
    with wave.open(str(speech)) as w:
        frames = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    odd = tmp_path / "odd-length.wav"
    with wave.open(str(odd), "wb") as w:  # speech to the end; 16000 x s + 9 samples: rounds up
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(frames[: (len(frames) // 16000) * 16000 + 9].tobytes())
    info = models.resolve("tiny.en", tmp_path / "models", engine="faster-whisper")
    path = models.for_engine(info, "faster-whisper", tmp_path / "models")
    engine = FasterWhisperEngine("tiny.en", str(path), 1, batch=8)
    engine.load()
    with open(odd, "rb") as fh:
        got = engine.transcribe(
            fh,
            engine.probe(fh),
            {"word_timestamps": True, "vad": True},
            resume_from=0.0,
            on_progress=lambda _p: None,
            on_segments=lambda _s, _u: None,
        )
    assert got.segments and got.segments[-1]["end"] <= engine_len(odd) + 1e-3


def engine_len(path: Path) -> float:
    import wave

    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()
