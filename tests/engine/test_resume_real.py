"""Resume with the real engines: kill the worker mid-file; the retry resumes from the checkpoint and
the final transcript has every segment once, in order."""

from __future__ import annotations

import itertools
import json
import os
import signal
from pathlib import Path

import pytest

from schema import events as ev
from schema.jobs import JobState
from tests.conftest import Spool, speech_wav, wait_for, wer

pytestmark = [pytest.mark.engine, pytest.mark.slow]

TEXT = (
    "The harbour was quiet before dawn. Fishermen checked their nets and spoke in low voices. "
    "A gull landed on the rail and watched them work. Far out, a bell buoy rang twice. "
    "By the time the sun rose the first boats were already past the breakwater. "
    "The market opened at seven and the smell of coffee drifted across the square. "
    "Children ran between the stalls while their parents argued about the price of bread. "
    "In the afternoon the wind turned and clouds gathered over the hills to the west. "
    "Everyone agreed that the storm would arrive before nightfall."
)


def events_of(spool: Spool, job_id: str) -> list[ev.Event]:
    s = spool.store()
    try:
        return [r.event for r in s.read(ev.job_stream(job_id))]
    finally:
        s.close()


@pytest.mark.parametrize("engine", ["faster-whisper", "mlx"])
def test_killed_worker_resumes_from_its_checkpoint(spool: Spool, tmp_path: Path, engine: str) -> None:
    speech = speech_wav(tmp_path, TEXT, name="story.wav")
    spool.config.update({"SPOOL_ENGINE": engine, "SPOOL_PROGRESS_S": "0.1", "SPOOL_STALL_S": "120"})
    # one by one, segments are checkpointed as they are decoded; batched, once per window (this file is one
    # window, so its first checkpoint would be its end): the resume from mid-window is what is tested here
    spool.config["SPOOL_BATCH_SIZE"] = "1"
    spool.start()
    os.rename(speech, spool.inbox / "story.wav")
    job = wait_for(lambda: next((j for j in spool.jobs() if j.state is JobState.running), None), 60)
    wait_for(
        lambda: any(isinstance(e, ev.JobSegments) for e in events_of(spool, job.id)),
        120,
        what="a checkpoint before the end of the file",
    )
    started = next(e for e in events_of(spool, job.id) if isinstance(e, ev.JobStarted))
    os.kill(started.pid, signal.SIGKILL)
    (done,) = spool.wait_terminal(1, timeout=300)
    assert done.state is JobState.succeeded
    events = events_of(spool, job.id)
    starts = [e for e in events if isinstance(e, ev.JobStarted)]
    assert len(starts) == 2 and starts[1].resume_from > 0
    failure = next(e for e in events if isinstance(e, ev.JobFailed))
    assert failure.signal == signal.SIGKILL
    doc = json.loads((spool.layout.outbox / "story.json").read_text())
    segments = doc["segments"]
    assert all(a["end"] <= b["start"] + 0.01 for a, b in itertools.pairwise(segments)), "overlap"
    assert wer(TEXT, doc["text"]) <= 0.25, doc["text"]
