"""Requests the model cannot serve fail before decoding; shaped subtitles; what the manifest records.

One daemon with faster-whisper and the bundled English-only tiny.en takes four
files, each with its sidecar: German, a translation, subtitles cut to 16
characters, highlighted words.  Then hotwords, on the clip faster-whisper's own
tests use for them (tiny.en hears "comfy eye" unless told "ComfyUI").
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from schema import events as ev
from schema.jobs import JobState
from tests.conftest import SHARED_AUDIO, Spool, reference_speech

pytestmark = pytest.mark.engine

SIDECARS = {
    "german": {"language": "de"},
    "translated": {"task": "translate"},
    "shaped": {"max_line_width": 16, "max_line_count": 2, "formats": ["srt", "json"]},
    "highlighted": {"highlight_words": True, "formats": ["vtt"]},
}


def test_english_only_model_requests_and_shaped_output(spool: Spool, tmp_path: Path) -> None:
    audio, _reference, _allowed = reference_speech(tmp_path)
    spool.config.update({"SPOOL_ENGINE": "faster-whisper", "SPOOL_DUPLICATES": "rerun", "HF_HUB_OFFLINE": "1"})
    for stem, options in SIDECARS.items():  # sidecars first, then the audio (the hand-over contract)
        spool.drop(f"{stem}{audio.suffix}.json", json.dumps(options).encode())
    spool.start()
    for stem in SIDECARS:
        staged = tmp_path / f"{stem}{audio.suffix}"
        shutil.copyfile(audio, staged)
        staged.rename(spool.inbox / staged.name)
    jobs = {Path(j.source).stem: j for j in spool.wait_terminal(len(SIDECARS), timeout=180)}

    for stem, reason, asked in (("german", "language_unsupported", "'de'"), ("translated", "task_unsupported", "")):
        job = jobs[stem]
        assert (job.state, job.reason, job.attempts) == (JobState.failed, reason, 1), job
        error = json.loads((spool.layout.failed / f"{stem}{audio.suffix}.error.json").read_text())
        assert error["reason"] == reason and "tiny.en is English-only" in error["message"] and asked in error["message"]
        store = spool.store()
        types = {type(r.event) for r in store.read(ev.job_stream(job.id))}
        store.close()
        assert not types & {ev.JobProbed, ev.JobProgressed, ev.JobSegments}  # refused before any decoding

    assert jobs["shaped"].state is JobState.succeeded and jobs["highlighted"].state is JobState.succeeded
    srt = (spool.layout.outbox / "shaped.srt").read_text()
    cues = [c.splitlines()[2:] for c in srt.strip().split("\n\n")]
    assert len(cues) > 2 and all(1 <= len(lines) <= 2 for lines in cues), srt
    assert all(len(line) <= 16 for lines in cues for line in lines if " " in line), srt  # a longer word stands alone
    doc = json.loads((spool.layout.outbox / "shaped.json").read_text())
    assert doc["segments"] and all(s["words"] for s in doc["segments"])  # json keeps segments and words
    manifest = doc["spoolscribe"]
    assert (manifest["device"], manifest["compute_type"], manifest["language"]) == ("cpu", "int8", "en")
    assert manifest["language_detected"] is False and manifest["language_probability"] is None  # tiny.en: en, always
    assert manifest["options"]["max_line_width"] == 16
    vtt = (spool.layout.outbox / "highlighted.vtt").read_text()
    assert re.search(r"<u>\s*\w+</u>", vtt), vtt


def test_hotwords_reach_the_decoder(spool: Spool, tmp_path: Path) -> None:
    clip = SHARED_AUDIO / "hotwords.mp3"
    if not clip.exists():
        pytest.skip("../shared/audio/hotwords.mp3 is not here")
    spool.config.update({"SPOOL_ENGINE": "faster-whisper", "SPOOL_FORMATS": "txt", "HF_HUB_OFFLINE": "1"})
    spool.drop("hinted.mp3.json", json.dumps({"hotwords": "ComfyUI"}).encode())
    spool.start()
    for stem in ("hinted", "plain"):  # the same bytes: hotwords make it another transcript, not a duplicate
        shutil.copyfile(clip, tmp_path / f"{stem}.mp3")
        (tmp_path / f"{stem}.mp3").rename(spool.inbox / f"{stem}.mp3")
    jobs = spool.wait_terminal(2, timeout=120)
    assert all(j.state is JobState.succeeded and j.duplicate_of is None for j in jobs), jobs
    assert "ComfyUI" in (spool.layout.outbox / "hinted.txt").read_text()
    assert "ComfyUI" not in (spool.layout.outbox / "plain.txt").read_text()  # tiny.en hears "comfy eye"
