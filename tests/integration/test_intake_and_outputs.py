"""Drop -> event -> worker -> outbox, with the real daemon, real watcher, real SQLite (test engine)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import struct
import subprocess
import sys
import wave
from pathlib import Path

from schema import events as ev
from schema.jobs import JobState
from schema.replay import verify
from tests.conftest import DaemonProc, Spool, drop, script, survivors, wait_for, writer_pause


def sine_wav(path: Path, seconds: float, rate: int = 16000) -> bytes:
    n = int(seconds * rate)
    frames = b"".join(struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate))) for i in range(n))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames)
    return path.read_bytes()


def event_types(spool: Spool, job_id: str) -> list[str]:
    s = spool.store()
    try:
        return [r.type for r in s.read(ev.job_stream(job_id))]
    finally:
        s.close()


def test_drop_to_transcript_with_every_format(spool: Spool) -> None:
    spool.start()
    spool.drop("meeting.wav", script(duration=4, segments=2))
    (job,) = spool.wait_terminal(1)
    assert job.state is JobState.succeeded, job
    assert spool.outbox_files() == ["meeting.json", "meeting.srt", "meeting.txt", "meeting.vtt"]
    assert (spool.layout.outbox / "meeting.txt").read_text() == "segment 1 of 2.\nsegment 2 of 2.\n"
    manifest = json.loads((spool.layout.outbox / "meeting.json").read_text())["spoolscribe"]
    assert manifest["job"] == job.id and manifest["sha256"] == job.sha256 and manifest["engine"] == "test"
    assert (spool.layout.done / "meeting.wav").exists()
    assert not any(spool.layout.work.iterdir())
    types = event_types(spool, job.id)
    assert types[:3] == ["job.submitted", "job.started", "job.heartbeat"]
    assert "job.probed" in types and "job.segments" in types
    assert types[-2:] == ["job.transcribed", "job.succeeded"]
    s = spool.store()
    assert verify(s).ok
    s.close()


def test_subfolders_are_mirrored_and_collisions_never_overwrite(spool: Spool) -> None:
    spool.start()
    spool.drop("team/a/call.wav", script(duration=1, segments=1, text="x"))
    spool.wait_terminal(1)
    spool.drop("team/a/call.mp3", script(duration=2, segments=2))
    spool.wait_terminal(2)
    spool.drop("team/a/CALL.ogg", script(duration=1, segments=1))  # a case twin: one file on macOS
    spool.wait_terminal(3)
    assert spool.outbox_files() == sorted(
        [f"team/a/call.{e}" for e in ("json", "srt", "txt", "vtt")]
        + [f"team/a/call (2).{e}" for e in ("json", "srt", "txt", "vtt")]
        + [f"team/a/CALL (3).{e}" for e in ("json", "srt", "txt", "vtt")]
    )
    assert "2 of 2" in (spool.layout.outbox / "team/a/call (2).txt").read_text()
    assert "1 of 1" in (spool.layout.outbox / "team/a/call.txt").read_text()


def test_bad_inputs_are_quarantined_with_reasons_beside_a_good_file(spool: Spool, tmp_path: Path) -> None:
    spool.start()
    full = sine_wav(tmp_path / "full.wav", 10.0)
    spool.drop("empty.wav", b"")
    # fixed noise: about 1 random blob in 200 parses as a container without audio (reason no_audio)
    spool.drop("noise.wav", random.Random(7).randbytes(50_000))
    spool.drop("truncated.wav", full[: len(full) // 5])
    spool.drop("notes.txt", b"just some text, not audio\n")
    spool.drop("good.wav", sine_wav(tmp_path / "good.wav", 2.0))
    jobs = {j.source: j for j in spool.wait_terminal(5, timeout=90)}
    assert jobs["good.wav"].state is JobState.succeeded
    reasons = {name: jobs[name].reason for name in ("empty.wav", "noise.wav", "truncated.wav", "notes.txt")}
    assert reasons == {
        "empty.wav": "empty",
        "noise.wav": "bad_input",
        "truncated.wav": "truncated",
        "notes.txt": "bad_input",
    }
    for name in reasons:
        err = json.loads((spool.layout.failed / f"{name}.error.json").read_text())
        assert err["reason"] == reasons[name] and err["job"] == jobs[name].id and err["attempts"] == 1
        assert err["message"]
        assert (spool.layout.failed / name).exists()
    assert "truncated" in json.loads((spool.layout.failed / "truncated.wav.error.json").read_text())["message"]
    assert spool.daemons[0].alive()


def test_a_slowly_written_file_is_not_taken_before_it_settles(spool: Spool) -> None:
    spool.config["SPOOL_SETTLE_S"] = "1.0"
    spool.start()
    path = spool.inbox / "slow.wav"
    body = script(duration=1, segments=1)
    with open(path, "wb") as fh:  # written in place, not renamed
        for i in range(len(body)):
            fh.write(body[i : i + 1])
            fh.flush()
            os.fsync(fh.fileno())
            assert not spool.jobs(), f"taken after {i + 1} of {len(body)} bytes"
            writer_pause(0.06)
    (job,) = spool.wait_terminal(1)
    assert job.size == len(body) and job.state is JobState.succeeded


def test_a_renamed_in_file_is_taken_without_waiting_for_settle(spool: Spool) -> None:
    spool.config["SPOOL_SETTLE_S"] = "60"
    spool.start()
    spool.drop("fast.wav", script(duration=1, segments=1))  # .part then rename
    (job,) = spool.wait_terminal(1, timeout=20)
    assert job.state is JobState.succeeded


def test_sidecar_options_apply_and_invalid_ones_quarantine(spool: Spool) -> None:
    spool.start(wait_ready=True)
    (spool.inbox / "ok.wav.json").write_text(json.dumps({"formats": ["txt"], "language": "de"}))
    spool.drop("ok.wav", script(duration=1, segments=1))
    (spool.inbox / "bad.wav.json").write_text(json.dumps({"output_dir": "/etc", "formats": ["../x"]}))
    spool.drop("bad.wav", script(duration=1, segments=1))
    jobs = {j.source: j for j in spool.wait_terminal(2)}
    assert jobs["ok.wav"].state is JobState.succeeded and jobs["ok.wav"].options["language"] == "de"
    assert spool.outbox_files() == ["ok.txt"]
    assert jobs["bad.wav"].reason == "invalid_options"
    err = json.loads((spool.layout.failed / "bad.wav.error.json").read_text())
    assert "unknown option 'output_dir'" in err["message"]
    assert (spool.layout.failed / "bad.wav.options.json").exists()


def test_symlinks_and_fifos_are_refused_not_followed(spool: Spool, tmp_path: Path) -> None:
    secret = tmp_path / "secret.wav"
    secret.write_bytes(script(duration=1, segments=1))
    spool.start()
    os.symlink(secret, spool.inbox / "link.wav")
    os.mkfifo(spool.inbox / "pipe.wav")
    jobs = {j.source: j for j in spool.wait_terminal(2)}
    assert {j.reason for j in jobs.values()} == {"not_regular_file"}
    assert os.path.islink(spool.layout.failed / "link.wav")
    assert secret.read_bytes().startswith(b"SPOOLTEST")  # never moved or opened through the link
    assert spool.outbox_files() == []


def test_same_content_twice_reuses_the_transcript(spool: Spool) -> None:
    spool.start()
    body = script(duration=2, segments=2)
    spool.drop("first.wav", body)
    spool.wait_terminal(1)
    spool.drop("copy.wav", body)
    jobs = {j.source: j for j in spool.wait_terminal(2)}
    second = jobs["copy.wav"]
    assert second.state is JobState.succeeded and second.duplicate_of == jobs["first.wav"].id
    assert "job.duplicate" in event_types(spool, second.id)
    assert (spool.layout.outbox / "copy.txt").read_text() == (spool.layout.outbox / "first.txt").read_text()
    # the same file dropped again under its own name reuses the outputs in place
    spool.drop("first.wav", body)
    jobs = {j.id: j for j in spool.wait_terminal(3)}
    third = next(j for j in jobs.values() if j.id not in (second.id, jobs[second.duplicate_of].id))
    assert third.duplicate_of and third.outputs == jobs[second.duplicate_of].outputs
    assert len(spool.outbox_files()) == 8


def test_once_mode_drains_and_exits(spool: Spool) -> None:
    for i in range(5):
        spool.drop(f"f{i}.wav", script(duration=1, segments=1, n=i))
    d = spool.start("--once", wait_ready=False)
    assert d.proc.wait(timeout=120) == 0, d.output()
    assert all(j.state is JobState.succeeded for j in spool.jobs()) and len(spool.jobs()) == 5
    assert survivors(str(spool.root)) == []


def test_a_new_relative_root_is_private_and_gets_watcher_events(spool: Spool, tmp_path: Path) -> None:
    """`spool run --root ./fresh` from its parent: folders are 0750 and drops are seen at once (no rescan)."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    root = cwd / "fresh"
    log = tmp_path / "relative.out"
    env = {**spool.env(), "SPOOL_ROOT": "fresh", "SPOOL_RESCAN_S": "3600"}
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "spoolscribe", "run", "--root", "fresh"],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
        )
    daemon = DaemonProc(root, proc, log)
    spool.daemons.append(daemon)
    wait_for(lambda: "worker.ready" in daemon.output(), 60)
    for d in (root, root / "logs", root / "inbox", root / "state"):
        assert d.stat().st_mode & 0o777 == 0o750, d
    drop(root / "inbox", "late.wav", script(duration=1, segments=1))
    wait_for(lambda: list((root / "outbox").glob("late.*")), 20, what="late.* in the outbox")
    assert daemon.stop() == 0


def test_without_a_watcher_rescans_find_everything(spool: Spool) -> None:
    """RELIABILITY #18: a filesystem that gives no change events (watcher off): rescans find all."""
    spool.config.update({"SPOOL_WATCH": "false", "SPOOL_RESCAN_S": "1"})
    spool.start()
    for i in range(20):
        spool.drop(f"quiet{i}.wav", script(duration=1, segments=1, n=i))
    jobs = spool.wait_terminal(20, timeout=30)
    assert all(j.state is JobState.succeeded for j in jobs)


def test_a_writer_that_pauses_is_not_quarantined_for_it(spool: Spool, tmp_path: Path) -> None:
    """RELIABILITY #12 (stall): taken half-written, judged truncated - looked at again, then done from the
    final bytes."""
    spool.config.update({"SPOOL_SETTLE_S": "0.3", "SPOOL_RECENT_S": "3"})
    spool.start()
    full = sine_wav(tmp_path / "full.wav", 6.0)
    path = spool.inbox / "paused.wav"
    with open(path, "wb") as fh:
        fh.write(full[: len(full) // 3])  # the header promises 6 s
        fh.flush()
        wait_for(lambda: any(j.state.value != "queued" for j in spool.jobs()), 20, what="the partial file taken")
        wait_for(lambda: "job.input_unsettled" in spool.daemons[0].output(), 20, what="the second look")
        fh.write(full[len(full) // 3 :])  # the writer goes on
    (job,) = spool.wait_terminal(1, timeout=30)
    assert job.state is JobState.succeeded and job.size == len(full)
    assert abs((job.duration_s or 0) - 6.0) < 0.1
    assert not spool.failed_files()


def test_a_transcript_of_an_in_place_file_waits_until_it_is_quiet(spool: Spool) -> None:
    """A writer that stalls longer than settle_s after the job already transcribed: no transcript of the
    partial bytes is published; the job starts again from the final ones."""
    spool.config.update({"SPOOL_SETTLE_S": "0.3", "SPOOL_RECENT_S": "2"})
    spool.start()
    head = script(duration=1, segments=1) + b"\n"
    path = spool.inbox / "stalls.wav"
    with open(path, "wb") as fh:
        fh.write(head + b"a" * 100)
        fh.flush()
        wait_for(lambda: "job.held" in spool.daemons[0].output(), 20, what="the transcript held")
        assert spool.outbox_files() == []
        fh.write(b"b" * 100)  # the writer goes on after a pause longer than settle_s
    (job,) = spool.wait_terminal(1, timeout=30)
    assert job.state is JobState.succeeded and job.size == len(head) + 200
    s = spool.store()
    types = [r.type for r in s.read(ev.job_stream(job.id))]
    s.close()
    assert "job.input_changed" in types and types.count("job.transcribed") == 2
    manifest = json.loads((spool.layout.outbox / "stalls.json").read_text())["spoolscribe"]
    assert manifest["sha256"] == hashlib.sha256((spool.layout.done / "stalls.wav").read_bytes()).hexdigest()


def test_a_renamed_file_is_never_held(spool: Spool) -> None:
    spool.config.update({"SPOOL_RECENT_S": "60"})
    spool.start()
    spool.drop("renamed.wav", script(duration=1, segments=1))
    (job,) = spool.wait_terminal(1, timeout=20)
    assert job.state is JobState.succeeded and job.settled_by == "rename"
    assert "job.held" not in spool.daemons[0].output()
