"""Edges found by trying the product as an adversary would: each served, or refused with a reason.

Symlinked spool folders, folders nested deeper than anyone planned and paths longer than the
system opens, unreadable inputs, sidecars that are symlinks or FIFOs or come too late, cancels in
every state, a worker whose memory runs away mid-job, control characters in names, SIGHUP.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from schema import events as ev
from schema.jobs import JobState
from tests.conftest import REPO, Spool, script, wait_for


def job_events(spool: Spool, job_id: str) -> list[ev.Event]:
    s = spool.store()
    try:
        return [r.event for r in s.read(ev.job_stream(job_id))]
    finally:
        s.close()


def one(spool: Spool, source: str) -> object:
    return wait_for(
        lambda: next((j for j in spool.terminal(1) if j.source == source), None), 30, what=f"{source} finished"
    )


def test_a_symlinked_inbox_is_refused_at_start_with_one_line(spool: Spool, tmp_path: object) -> None:
    real = spool.root.parent / "elsewhere"
    real.mkdir()
    shutil.rmtree(spool.inbox)
    os.symlink(real, spool.inbox)
    d = spool.start(wait_ready=False)
    assert d.proc.wait(timeout=30) == 2
    lines = [line for line in d.output().splitlines() if line.strip()]
    assert len(lines) == 1 and "inbox: is a symlink" in lines[0] and "never follows symlinks" in lines[0], lines


def test_nothing_nested_is_invisible_deep_folders_are_taken_too_long_paths_reported(spool: Spool) -> None:
    deep = spool.inbox.joinpath(*[f"d{i}" for i in range(40)])  # deeper than the scan once went (32)
    deep.mkdir(parents=True)
    (deep / "deep.wav").write_bytes(script(duration=1, segments=1, n="deep"))
    # a path longer than PATH_MAX, built relative to folders already made (the only way to make one)
    fd = os.open(spool.inbox, os.O_RDONLY)
    try:
        for _ in range(20):
            os.mkdir("x" * 250, dir_fd=fd)
            nxt = os.open("x" * 250, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        leaf = os.open("far.wav", os.O_WRONLY | os.O_CREAT, 0o640, dir_fd=fd)
        os.write(leaf, script(duration=1, segments=1, n="far"))
        os.close(leaf)
    finally:
        os.close(fd)
    d = spool.start()
    jobs = spool.wait_terminal(2, timeout=60)
    by_reason = {j.reason: j for j in jobs}
    deep_job = next(j for j in jobs if j.source.endswith("deep.wav"))
    assert deep_job.state is JobState.succeeded
    far = by_reason["unreachable_path"]
    assert far.state is JobState.failed and far.source.startswith("x" * 250)
    err = json.loads((spool.layout.failed / f"unreachable-{far.id}.error.json").read_text())
    assert err["reason"] == "unreachable_path" and "shorter path" in err["message"]
    spool.cli("status", check=True)  # a rescan later reports nothing twice and the daemon lives
    wait_for(lambda: "intake.unreachable" in d.output(), 10)
    assert d.alive() and len(spool.jobs()) == 2
    assert d.stop() == 0


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux) to drop CAP_DAC_OVERRIDE")
def test_an_unreadable_input_fails_as_unreadable_in_one_attempt(spool: Spool) -> None:
    """As root, file modes do not bind; the daemon runs without the capability that overrides them."""
    env = spool.env()
    drop_caps = [
        "setpriv",
        "--bounding-set=-dac_override,-dac_read_search",
        "--inh-caps=-dac_override,-dac_read_search",
    ]
    log = spool.root / "daemon-nocaps.out"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [*drop_caps, "--", sys.executable, "-m", "spoolscribe", "run", "--root", str(spool.root)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )
    try:
        wait_for(lambda: "worker.ready" in log.read_text(), 60, what="daemon ready")
        spool.drop("locked.wav", script(duration=1, segments=1, n="locked"))
        (spool.inbox / "locked.wav").chmod(0)
        spool.drop("open.wav", script(duration=1, segments=1, n="open"))
        jobs = {j.source: j for j in spool.wait_terminal(2, timeout=30)}
        locked = jobs["locked.wav"]
        assert locked.state is JobState.failed and locked.reason == "unreadable", (locked.reason, locked.message)
        assert locked.total_attempts == 1 and "Permission denied" in (locked.message or "")
        assert jobs["open.wav"].state is JobState.succeeded
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_a_special_file_sidecar_fails_together_with_its_audio(spool: Spool, kind: str) -> None:
    side = spool.inbox / "talk.wav.json"
    if kind == "symlink":
        os.symlink("/etc/hostname", side)
    else:
        os.mkfifo(side)
    d = spool.start()
    spool.drop("talk.wav", script(duration=1, segments=1, n=kind))
    (job,) = spool.wait_terminal(1)
    assert job.source == "talk.wav" and job.reason == "invalid_options" and "cannot be read safely" in job.message
    assert not any(e.type == ev.JobStarted.type for e in job_events(spool, job.id))  # the audio never ran
    assert os.path.lexists(spool.layout.failed / "talk.wav.options.json")  # moved along, never followed
    assert len(spool.jobs()) == 1 and d.alive()


def test_a_late_sidecar_is_reported_and_never_applied_to_a_later_file(spool: Spool) -> None:
    spool.start()
    spool.drop("memo.wav", script(duration=1, segments=1, n="memo1"))
    first = one(spool, "memo.wav")
    (spool.inbox / "memo.wav.json").write_text(json.dumps({"formats": ["txt"]}))  # after its audio
    late = one(spool, "memo.wav.json")
    assert late.state is JobState.failed and late.reason == "late_sidecar" and first.id in late.message
    assert json.loads((spool.layout.failed / "memo.wav.json.error.json").read_text())["reason"] == "late_sidecar"
    spool.drop("memo.wav", script(duration=1, segments=1, n="memo2"))  # the next file of that name
    second = wait_for(lambda: [j for j in spool.terminal(3) if j.source == "memo.wav" and j.id != first.id], 30)[0]
    assert second.options["formats"] == ["txt", "srt", "vtt", "json"]  # defaults: the late sidecar was not applied


def test_cancel_is_honoured_while_a_transcript_is_held_for_a_quiet_input(spool: Spool) -> None:
    spool.config["SPOOL_RECENT_S"] = "30"
    spool.start()
    (spool.inbox / "held.wav").write_bytes(script(duration=1, segments=1, n="held"))  # in place: held 30 s
    held = wait_for(
        lambda: next((j for j in spool.jobs() if j.state is JobState.publishing), None), 30, what="a held transcript"
    )
    result = spool.cli("cancel", held.id, check=True)
    assert "cancel requested" in result.stdout
    (done,) = spool.wait_terminal(1, timeout=15)
    assert done.state is JobState.cancelled and not spool.outbox_files()
    assert (spool.layout.failed / "held.wav").exists() and not (spool.inbox / "held.wav").exists()
    again = spool.cli("cancel", held.id)
    assert again.returncode == 1 and "already cancelled" in again.stderr


def test_a_worker_whose_memory_runs_away_mid_job_is_killed(spool: Spool) -> None:
    spool.config.update({"SPOOL_WORKER_RSS_LIMIT_MB": "150", "SPOOL_MAX_ATTEMPTS": "1"})
    d = spool.start()
    spool.drop("hog.wav", script(duration=60, segments=60, mode="hog", mb=400))
    (job,) = spool.wait_terminal(1, timeout=60)
    assert job.reason == "memory_limit" and "worker_rss_limit_mb = 150" in job.message
    assert d.alive()


def test_control_characters_in_names_never_reach_the_terminal(spool: Spool) -> None:
    evil = "\x1b]0;pwned\x07\x1b[2J\u202eevil\x9b.wav"
    spool.start()
    spool.drop(evil, script(duration=1, segments=1, n="evil"))
    (job,) = spool.wait_terminal(1)
    for args in (("jobs",), ("show", job.id), ("status",), ("events", job.id)):
        out = spool.cli(*args, check=True).stdout
        assert not any((ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) < 0xA0 or c == "\u202e" for c in out), args
    assert "\\x1b]0;pwned\\x07" in spool.cli("jobs", check=True).stdout  # shown, escaped
    data = json.loads(spool.cli("show", job.id, "--json", check=True).stdout)
    assert data["source"] == evil  # --json keeps the real name, safely escaped


def test_sighup_stops_the_daemon_in_order(spool: Spool) -> None:
    d = spool.start()
    spool.drop("long.wav", script(duration=20, segments=20, delay_s=0.5, n="hup"))
    wait_for(lambda: any(j.state is JobState.running for j in spool.jobs()), 30)
    assert d.stop(signal.SIGHUP) == 0
    (job,) = spool.jobs()
    assert job.state is JobState.retry_wait and job.reason == "interrupted"
    assert "daemon.stopped" in d.output()
