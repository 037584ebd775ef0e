"""Long recordings through the spool with the real engine: every passage kept, silence gives nothing.

Issue 13: on a recording mixing English, German and repeated JFK clips only 1 of 4 passages
survived, and two hours of silence gave 290 lines of "you".
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from schema.jobs import JobState
from tests.conftest import SHARED_AUDIO, Spool, have

pytestmark = pytest.mark.engine

RATE = 16_000
PASSAGE = "ask not what your country can do for you"
GERMAN = "Der Hafen war vor der Morgendämmerung still. Die Fischer prüften ihre Netze und sprachen leise miteinander."


def write_wav(path: Path, samples: np.ndarray) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def german(tmp_path: Path) -> np.ndarray:
    if not (have("espeak-ng") and have("sox")):
        pytest.skip("espeak-ng and sox are needed for the German stretch (apt-get install espeak-ng sox)")
    raw, out = tmp_path / "de-raw.wav", tmp_path / "de.wav"
    subprocess.run(["espeak-ng", "-v", "de", "-s", "130", "-w", str(raw), "--", GERMAN], check=True)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(out)], check=True)
    with wave.open(str(out)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768


def chord(seconds: float) -> np.ndarray:
    """Music-like: three sines at a speaking level."""
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.08 * sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6))).astype(np.float32)


def deliver(spool: Spool, tmp_path: Path, name: str, samples: np.ndarray) -> dict:
    staged = write_wav(tmp_path / f".{name}", samples)
    os.rename(staged, spool.inbox / name)  # complete on arrival
    (job,) = spool.wait_terminal(1, timeout=240)
    assert job.state is JobState.succeeded, job
    return json.loads((spool.layout.outbox / Path(name).with_suffix(".json")).read_text())


def test_repeated_passages_after_silence_german_and_music_are_all_kept(spool: Spool, tmp_path: Path) -> None:
    jfk_path = SHARED_AUDIO / "jfk.flac"
    if not jfk_path.exists():
        pytest.skip("../shared/audio/jfk.flac is not here")
    from processor.worker import audio

    with open(jfk_path, "rb") as fh:
        jfk = audio.decode(fh)
    silence = np.zeros(8 * RATE, dtype=np.float32)
    mix = np.concatenate([jfk, silence, german(tmp_path), jfk, chord(8), jfk, silence])
    spool.config.update({"SPOOL_ENGINE": "faster-whisper", "SPOOL_STALL_S": "120"})
    spool.start()
    doc = deliver(spool, tmp_path, "mix.wav", mix)
    said = " ".join(re.findall(r"[a-z']+", doc["text"].lower()))
    assert said.count(PASSAGE) == 3, doc["text"]
    segments = doc["segments"]
    assert all(a["end"] <= b["start"] for a, b in itertools.pairwise(segments))
    assert segments[0]["start"] >= 0 and segments[-1]["end"] <= len(mix) / RATE
    assert doc["spoolscribe"]["options"]["vad"] is True


def test_silence_gives_an_empty_valid_transcript_in_every_format(spool: Spool, tmp_path: Path) -> None:
    spool.config.update({"SPOOL_ENGINE": "faster-whisper", "SPOOL_STALL_S": "120"})
    spool.start()
    doc = deliver(spool, tmp_path, "quiet.wav", np.zeros(150 * RATE, dtype=np.float32))  # two windows
    assert doc["segments"] == [] and doc["text"] == ""
    assert doc["spoolscribe"]["duration_s"] == 150.0
    out = spool.layout.outbox
    assert (out / "quiet.txt").read_text().strip() == ""
    assert (out / "quiet.srt").read_text().strip() == ""
    assert (out / "quiet.vtt").read_text().startswith("WEBVTT")
