"""The real engines, end to end through the spool: real speech in, the reference text out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from schema.jobs import JobState
from tests.conftest import Spool, reference_speech, wer

pytestmark = pytest.mark.engine


@pytest.mark.parametrize("engine", ["faster-whisper", "mlx"])
def test_reference_speech_transcribed_with_word_timestamps(spool: Spool, tmp_path: Path, engine: str) -> None:
    audio, reference, allowed = reference_speech(tmp_path)
    spool.config.update({"SPOOL_ENGINE": engine, "SPOOL_STALL_S": "120"})
    spool.start()
    staged = tmp_path / f"staged{audio.suffix}"
    shutil.copyfile(audio, staged)
    staged.rename(spool.inbox / f"speech{audio.suffix}")  # mv into the inbox: complete on arrival
    (job,) = spool.wait_terminal(1, timeout=180)
    assert job.state is JobState.succeeded, job
    text = (spool.layout.outbox / "speech.txt").read_text()
    assert wer(reference, text) <= allowed, text
    doc = json.loads((spool.layout.outbox / "speech.json").read_text())
    words = [w for s in doc["segments"] for w in s["words"]]
    assert len(words) >= len(reference.split()) - 2
    assert all(0 <= w["start"] <= w["end"] <= doc["spoolscribe"]["duration_s"] + 0.5 for w in words)
    assert doc["spoolscribe"]["engine"] == engine and doc["spoolscribe"]["model"] == "tiny.en"
    srt = (spool.layout.outbox / "speech.srt").read_text()
    assert srt.startswith("1\n00:00:0") and "-->" in srt
    assert (spool.layout.outbox / "speech.vtt").read_text().startswith("WEBVTT")
