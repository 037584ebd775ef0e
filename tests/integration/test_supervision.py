"""Supervised workers: cancel, hang, crash, escaped descendants, daemon kill -9 and SIGTERM, one daemon per root."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from schema import events as ev
from schema.jobs import JobState
from schema.replay import verify
from tests.conftest import REPO, Spool, marked, script, survivors, wait_for


def running_job(spool: Spool) -> object:
    return wait_for(
        lambda: next((j for j in spool.jobs() if j.state is JobState.running), None), 30, what="a running job"
    )


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def job_events(spool: Spool, job_id: str) -> list[ev.Event]:
    s = spool.store()
    try:
        return [r.event for r in s.read(ev.job_stream(job_id))]
    finally:
        s.close()


@pytest.mark.parametrize("pattern", ["plain", "setsid", "double_fork"])
def test_cancel_kills_the_whole_tree_including_escaped_grandchildren(spool: Spool, pattern: str) -> None:
    marker = f"cancel-{pattern}-{time.monotonic_ns()}"
    spool.start()
    spool.drop("talk.wav", script(duration=10, segments=5, mode="grandchild", pattern=pattern, marker=marker))
    wait_for(lambda: marked(marker), 30, what="the grandchild to exist")
    job = running_job(spool)
    result = spool.cli("cancel", job.id[:6], check=True)
    assert "cancel requested" in result.stdout
    (done,) = spool.wait_terminal(1)
    assert done.state is JobState.cancelled
    wait_for(lambda: not marked(marker), 10, what="no survivor of the cancelled tree")
    err = json.loads((spool.layout.failed / "talk.wav.error.json").read_text())
    assert err["reason"] == "cancelled"
    assert (spool.layout.failed / "talk.wav").exists()


def test_a_hung_worker_is_killed_after_the_stall_timeout_and_retried(spool: Spool) -> None:
    spool.config.update({"SPOOL_STALL_S": "1.5", "SPOOL_MAX_ATTEMPTS": "2"})
    spool.start()
    spool.drop("stuck.wav", script(duration=4, segments=4, attempts={"1": {"mode": "busy", "after_segments": 1}}))
    job = running_job(spool)
    (done,) = spool.wait_terminal(1, timeout=60)
    assert done.state is JobState.succeeded and done.total_attempts == 2
    events = job_events(spool, job.id)
    failure = next(e for e in events if isinstance(e, ev.JobFailed))
    assert failure.reason == "hung" and not failure.final and failure.signal in (signal.SIGTERM, signal.SIGKILL)
    # the retry resumed after the checkpointed first segment
    second_start = [e for e in events if isinstance(e, ev.JobStarted)][1]
    assert second_start.resume_from == 1.0
    text = (spool.layout.outbox / "stuck.txt").read_text().splitlines()
    assert text == [f"segment {i} of 4." for i in range(1, 5)]


@pytest.mark.parametrize("mode", ["hang", "stop"])
def test_silent_and_stopped_workers_are_detected_within_stall_plus_one_second(spool: Spool, mode: str) -> None:
    spool.config.update({"SPOOL_STALL_S": "1.0", "SPOOL_MAX_ATTEMPTS": "1", "SPOOL_GRACE_S": "0.5"})
    spool.start()
    spool.drop("x.wav", script(duration=2, segments=2, mode=mode))
    job = running_job(spool)
    (done,) = spool.wait_terminal(1, timeout=30)
    assert done.state is JobState.failed and done.reason == "hung"
    events = {type(e): e for e in job_events(spool, job.id)}
    s = spool.store()
    stamps = {r.type: r.at for r in s.read(ev.job_stream(job.id))}
    s.close()
    from datetime import datetime

    started = datetime.fromisoformat(stamps["job.probed"])
    failed = datetime.fromisoformat(stamps["job.failed"])
    assert (failed - started).total_seconds() <= 1.0 + 0.5 + 1.0  # stall + grace + 1 s
    assert events[ev.JobFailed].final
    killed_pid = events[ev.JobStarted].pid
    wait_for(lambda: not _alive(killed_pid), 5, what=f"pid {killed_pid} to be gone")


def test_sigterm_ignored_escalates_to_sigkill(spool: Spool) -> None:
    marker = f"ignore-{time.monotonic_ns()}"
    spool.config.update({"SPOOL_STALL_S": "1.0", "SPOOL_MAX_ATTEMPTS": "1", "SPOOL_GRACE_S": "0.5"})
    spool.start()
    spool.drop("x.wav", script(duration=2, segments=2, mode="ignore_term", child=True, marker=marker))
    wait_for(lambda: marked(marker), 30, what="child ignoring SIGTERM")
    (done,) = spool.wait_terminal(1, timeout=30)
    assert done.state is JobState.failed and done.signal == signal.SIGKILL
    wait_for(lambda: not marked(marker), 5, what="the SIG_IGN child to be killed")


def test_a_crashing_worker_is_retried_with_the_signal_recorded(spool: Spool) -> None:
    spool.start()
    spool.drop("seg.wav", script(duration=2, segments=2, attempts={"1": {"mode": "crash"}}))
    (done,) = spool.wait_terminal(1)
    assert done.state is JobState.succeeded and done.total_attempts == 2
    failure = next(e for e in job_events(spool, done.id) if isinstance(e, ev.JobFailed))
    assert failure.reason == "worker_died" and failure.signal == signal.SIGSEGV
    assert "SIGSEGV" in failure.message


def test_attempts_are_capped_and_the_input_quarantined(spool: Spool) -> None:
    spool.config["SPOOL_MAX_ATTEMPTS"] = "3"
    spool.start()
    spool.drop("bad.wav", script(duration=1, segments=1, mode="crash"))
    (done,) = spool.wait_terminal(1, timeout=60)
    assert done.state is JobState.failed and done.total_attempts == 3
    err = json.loads((spool.layout.failed / "bad.wav.error.json").read_text())
    assert err["attempts"] == 3 and err["reason"] == "worker_died"
    retries = [e for e in job_events(spool, done.id) if isinstance(e, ev.JobRetryScheduled)]
    assert [r.delay_s > 0 for r in retries] == [True, True]
    assert retries[1].delay_s > retries[0].delay_s  # backoff grows


def test_second_daemon_on_the_same_root_is_refused(spool: Spool) -> None:
    first = spool.start()
    t0 = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "spoolscribe", "run", "--root", str(spool.root)],
        capture_output=True,
        text=True,
        env=spool.env(),
        cwd=REPO,
        timeout=30,
    )
    assert result.returncode == 3
    assert f"already running on {spool.root}" in result.stderr and f"pid {first.proc.pid}" in result.stderr
    assert "Traceback" not in result.stderr
    assert time.monotonic() - t0 < 10
    assert first.alive()


def test_a_second_sqlite_daemon_with_its_own_state_directory_is_refused(spool: Spool, tmp_path: Path) -> None:
    """Two private SQLite stores on one inbox would transcribe every file twice: only a fleet may share a spool."""
    first = spool.start()
    result = spool.cli("run", "--root", str(spool.root), SPOOL_STATE_DIR=str(tmp_path / "elsewhere"))
    assert result.returncode == 3 and "Traceback" not in result.stderr
    assert "two SQLite stores on one spool would transcribe every file twice" in result.stderr
    assert first.alive()


def test_kill9_mid_job_then_restart_finishes_once_and_leaves_no_survivor(spool: Spool) -> None:
    spool.start()
    spool.drop("long.wav", script(duration=6, segments=6, delay_s=0.4))
    job = running_job(spool)
    wait_for(lambda: any(isinstance(e, ev.JobSegments) for e in job_events(spool, job.id)), 30)
    spool.daemons[0].kill9()
    spool.start()
    (done,) = spool.wait_terminal(1, timeout=60)
    assert done.state is JobState.succeeded
    events = job_events(spool, job.id)
    orphaned = [e for e in events if isinstance(e, ev.JobOrphaned)]
    assert len(orphaned) == 1 and orphaned[0].reason == "daemon_died"
    resumed = [e for e in events if isinstance(e, ev.JobStarted)][-1]
    assert resumed.resume_from >= 1.0
    assert (spool.layout.outbox / "long.txt").read_text().splitlines() == [f"segment {i} of 6." for i in range(1, 7)]
    spool.daemons[-1].stop()
    assert survivors(str(spool.root)) == []
    s = spool.store()
    assert verify(s).ok
    s.close()


def test_sigterm_stops_workers_records_the_interruption_and_exits_zero(spool: Spool) -> None:
    spool.start()
    spool.drop("long.wav", script(duration=10, segments=10, delay_s=0.5))
    job = running_job(spool)
    t0 = time.monotonic()
    assert spool.daemons[0].stop(signal.SIGTERM, timeout=30) == 0
    assert time.monotonic() - t0 < 10
    assert survivors(str(spool.root)) == []
    s = spool.store()
    stopped = s.job(job.id)
    s.close()
    assert stopped is not None and stopped.state is JobState.retry_wait and stopped.reason == "interrupted"
    assert stopped.attempts == 0  # an interruption does not count as a failed attempt
    spool.start()
    (done,) = spool.wait_terminal(1, timeout=60)
    assert done.state is JobState.succeeded


def test_restarting_the_service_often_never_fails_the_job_being_worked_on(spool: Spool) -> None:
    """Clean stops are no evidence against a job: past the runaway guard (3 x max_attempts) it still finishes."""
    spool.config["SPOOL_MAX_ATTEMPTS"] = "1"  # the guard would end the job after 3 attempts
    spool.drop("long.wav", script(duration=10, segments=10, delay_s=0.3))
    for _ in range(4):
        d = spool.start()
        running_job(spool)
        assert d.stop(signal.SIGTERM, timeout=30) == 0
    spool.start()
    (done,) = spool.wait_terminal(1, timeout=60)
    assert done.state is JobState.succeeded and done.total_attempts == 5 and done.shutdowns == 4


def test_retry_brings_a_failed_input_back(spool: Spool) -> None:
    spool.start()
    spool.drop("once.wav", script(duration=1, segments=1, attempts={"1": {"mode": "bad_input"}}))
    (failed,) = spool.wait_terminal(1)
    assert failed.state is JobState.failed
    assert spool.cli("retry", failed.id, check=True).returncode == 0
    wait_for(lambda: [j for j in spool.jobs() if j.state is JobState.succeeded], 30, what="the retried job")
    assert spool.outbox_files() == ["once.json", "once.srt", "once.txt", "once.vtt"]
    assert not (spool.layout.failed / "once.wav").exists()
    assert not (spool.layout.failed / "once.wav.error.json").exists()


def test_workers_are_recycled_after_max_jobs(spool: Spool) -> None:
    spool.config["SPOOL_MAX_JOBS_PER_WORKER"] = "2"
    spool.start()
    for i in range(3):
        spool.drop(f"j{i}.wav", script(duration=1, segments=1, n=i))
        spool.wait_terminal(i + 1)
    pids = []
    for job in sorted(spool.jobs(), key=lambda j: j.submitted_at):
        pids.append(next(e.pid for e in job_events(spool, job.id) if isinstance(e, ev.JobStarted)))
    assert pids[0] == pids[1] != pids[2]
    assert "worker.recycle" in spool.daemons[0].output()


def test_folder_profiles_apply_their_options(spool: Spool) -> None:
    (spool.root / "spool.toml").write_text('[profiles.german]\nlanguage = "de"\nformats = ["txt"]\n')
    spool.start()
    spool.drop("german/call.wav", script(duration=1, segments=1))
    spool.drop("other.wav", script(duration=1, segments=1, n=2))
    jobs = {j.source: j for j in spool.wait_terminal(2)}
    assert jobs["german/call.wav"].options["language"] == "de"
    assert jobs["other.wav"].options["language"] is None
    assert spool.outbox_files() == ["german/call.txt", "other.json", "other.srt", "other.txt", "other.vtt"]


@pytest.mark.parametrize("pattern", ["plain", "setsid", "double_fork", "orphan"])
def test_descendants_die_when_a_job_succeeds(spool: Spool, pattern: str) -> None:
    """RELIABILITY #6: a job that leaves a process behind and then succeeds leaves nothing alive."""
    marker = f"ok-{pattern}-{time.monotonic_ns()}"
    spool.start()
    spool.drop("x.wav", script(duration=1, segments=1, mode="grandchild", pattern=pattern, then="ok", marker=marker))
    (job,) = spool.wait_terminal(1)
    assert job.state is JobState.succeeded
    wait_for(lambda: not marked(marker), 3, what="the leftover to be killed")
    assert "job.leftovers_killed" in spool.daemons[0].output()
