"""``spool health`` tells the truth about what the daemon cannot say itself (RELIABILITY #30).

Dead or frozen daemon with work waiting, folders deleted or made read-only under it, its database
file deleted, intake paused: each an alert and a non-OK health, and ``spool status`` says why.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

from schema.jobs import JobState
from spool import statefile
from tests.conftest import Spool, script, wait_for
from tests.mounts import tmpfs


def health(spool: Spool) -> tuple[int, dict[str, object]]:
    done = spool.cli("health", "--json")
    return done.returncode, json.loads(done.stdout)


def rules(report: dict[str, object]) -> set[str]:
    return {str(a["rule"]) for a in report["alerts"]}  # type: ignore[union-attr, index]


def test_no_daemon_with_work_waiting_is_critical_without_work_a_warning(spool: Spool) -> None:
    spool.cli("init", check=True)
    code, report = health(spool)
    assert code == 1 and "daemon_down" in rules(report) and "daemon_down_with_work" not in rules(report)
    spool.drop("waiting.wav", script(duration=1, segments=1, n="w"))
    code, report = health(spool)
    assert code == 2 and "daemon_down_with_work" in rules(report)
    status = spool.cli("status", check=True).stdout
    assert "daemon  not running" in status and "1 file(s) waiting" in status
    d = spool.start()
    spool.wait_terminal(1)
    code, report = health(spool)
    assert code == 0, report["alerts"]
    assert d.stop() == 0


def test_a_frozen_daemon_is_found_out_by_its_silence(spool: Spool) -> None:
    d = spool.start()
    spool.drop("a.wav", script(duration=1, segments=1, n="f"))
    spool.wait_terminal(1)
    d.proc.send_signal(signal.SIGSTOP)
    try:
        state = statefile.read(spool.layout.daemon_state)
        assert state is not None and state["pid"] == d.proc.pid
        # the fault: it has said nothing for a minute (a frozen loop writes no state); then work arrives
        state["updated_at"] = (datetime.now(UTC) - timedelta(seconds=60)).isoformat()
        statefile.write(spool.layout.daemon_state, state)
        spool.drop("b.wav", script(duration=1, segments=1, n="g"))
        code, report = health(spool)
        assert code == 2 and "daemon_down_with_work" in rules(report)
        assert any("holds its lock but has not reported" in p for p in report["problems"])  # type: ignore[union-attr]
        assert "NOT RESPONDING" in spool.cli("status", check=True).stdout
    finally:
        d.proc.send_signal(signal.SIGCONT)
    spool.wait_terminal(2)
    wait_for(lambda: health(spool)[0] == 0, 20, what="health OK once it reports again")


def test_a_deleted_inbox_is_made_again_and_reported(spool: Spool) -> None:
    spool.config["SPOOL_METRICS_S"] = "0.5"
    d = spool.start()
    os.rmdir(spool.inbox)
    wait_for(lambda: spool.inbox.is_dir(), 10, what="the inbox made again")
    _, report = wait_for(lambda: (r := health(spool))[0] == 1 and r, 10, what="a warning")
    assert "folder_recreated" in rules(report)
    spool.drop("after.wav", script(duration=1, segments=1, n="r"))
    assert spool.wait_terminal(1)[0].state is JobState.succeeded
    assert '"spool.folder_recreated"' in d.output()


def test_a_read_only_outbox_pauses_intake_until_it_is_writable_again(spool: Spool) -> None:
    with tmpfs(spool.layout.outbox, "size=8m"):
        d = spool.start()
        subprocess.run(["mount", "-o", "remount,ro", str(spool.layout.outbox)], check=True)
        try:
            wait_for(lambda: "PAUSED" in spool.cli("status").stdout, 10, what="intake paused")
            status = spool.cli("status", check=True).stdout
            assert "outbox/ is not writable" in status
            spool.drop("held.wav", script(duration=1, segments=1, n="ro"))
            code, report = health(spool)
            assert code == 2 and {"spool_problem", "intake_paused"} <= rules(report)
            assert not spool.jobs()  # nothing taken while the outbox cannot take its transcript
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(spool.layout.outbox)], check=True)
        (job,) = spool.wait_terminal(1, timeout=30)
        assert job.state is JobState.succeeded and (spool.layout.outbox / "held.txt").exists()
        assert d.stop() == 0


def test_a_database_deleted_under_the_daemon_is_critical(spool: Spool) -> None:
    d = spool.start()
    os.unlink(spool.layout.db)
    noticed = "was deleted while the daemon writes to it"
    _, report = wait_for(lambda: (r := health(spool))[1] and noticed in json.dumps(r[1]) and r, 10, what="noticed")
    assert report["status"] == "critical" and health(spool)[0] == 2
    assert d.alive()  # it goes on (intake paused): the operator decides; a restart refuses the lost file


def test_an_unreachable_store_is_critical_not_a_crash(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    try:
        done = spool.cli("health", "--json", SPOOL_STORE="postgresql://nobody@127.0.0.1:1/none")
        assert done.returncode == 2, done.stderr
        report = json.loads(done.stdout)
        assert report["status"] == "critical" and "store_unavailable" in rules(report)
    finally:
        spool.cleanup()
