"""Ops inside a running daemon: sd_notify, scheduled reports and alerts, health exit codes, a dead webhook, top."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from schema import events as ev
from schema.jobs import JobState
from tests.conftest import REPO, Spool, script, wait_for


def test_systemd_notify_ready_watchdog_stopping(spool: Spool, tmp_path: Path) -> None:
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(10)
    try:
        d = spool.start(NOTIFY_SOCKET=str(sock_path), WATCHDOG_USEC="400000")
        messages = [sock.recv(4096).decode() for _ in range(3)]
        assert messages[0].startswith("READY=1") and f"MAINPID={d.proc.pid}" in messages[0]
        assert messages[1:] == ["WATCHDOG=1", "WATCHDOG=1"]
        d.proc.send_signal(signal.SIGTERM)
        while (m := sock.recv(4096).decode()) == "WATCHDOG=1":
            pass
        assert m == "STOPPING=1"
        assert d.proc.wait(20) == 0
    finally:
        sock.close()


def test_scheduled_report_and_a_stuck_alert_raised_then_resolved(spool: Spool) -> None:
    spool.config.update(
        {"SPOOL_METRICS_S": "0.5", "SPOOL_REPORT_S": "1", "SPOOL_STUCK_AFTER_S": "0.5", "SPOOL_STALL_S": "600"}
    )
    d = spool.start()
    wait_for(lambda: (spool.layout.reports / "latest.json").exists(), 20, what="the first report")
    spool.drop("stuck.wav", script(duration=5, segments=5, mode="hang"))
    wait_for(lambda: [a for a in spool.store().firing_alerts() if a["rule"] == "stuck"], 30, what="stuck alert")
    job = next(j for j in spool.jobs() if j.state is JobState.running)
    spool.cli("cancel", job.id, check=True)
    wait_for(lambda: not spool.store().firing_alerts(), 30, what="the alert to resolve")
    wait_for(
        lambda: (
            json.loads((spool.layout.reports / "latest.json").read_text())["metrics"]["counts"].get("cancelled") == 1
        ),
        20,
        what="a report that saw the cancel",
    )
    s = spool.store()
    types = [r.type for r in s.read(ev.DAEMON_STREAM) if r.type.startswith("alert.")]
    s.close()
    assert types == ["alert.raised", "alert.resolved"]
    assert '"alert.raised"' in d.output() and '"level": "warning"' in d.output()


def test_health_exit_codes(spool: Spool) -> None:
    spool.cli("init", "--root", str(spool.root), check=True)
    spool.start(SPOOL_FREE_DISK_FLOOR_MB="0")  # without a daemon serving the spool health is never OK
    ok = spool.cli("health", "--root", str(spool.root), SPOOL_FREE_DISK_FLOOR_MB="0")
    assert ok.returncode == 0 and ok.stdout.startswith("status  OK")
    warn = spool.cli("health", "--root", str(spool.root), "--json", SPOOL_FREE_DISK_FLOOR_MB="100000000")
    assert warn.returncode == 1 and json.loads(warn.stdout)["alerts"][0]["rule"] == "disk_low"
    s = spool.store()
    s.append(
        "job-x",
        [
            ev.JobSubmitted(job_id="x", source="x.wav", size=1, mtime_ns=1),
            ev.JobStarted(attempt=1, worker="w", pid=1, create_time=1.0, engine="t", model="m"),
            ev.JobOrphaned(reason="dead", pid=1, killed=False),
        ],
    )
    s.close()
    crit = spool.cli("health", "--root", str(spool.root), SPOOL_FREE_DISK_FLOOR_MB="0")
    assert crit.returncode == 2 and "CRITICAL" in crit.stdout and "orphans" in crit.stdout


def test_a_dead_webhook_never_blocks_the_spool(spool: Spool) -> None:
    (spool.root / "spool.toml").write_text(
        '[notify]\nretry_base_s = 0.2\n[[notify.webhooks]]\nurl = "http://127.0.0.1:9/nobody-listens"\ntimeout_s = 2\n'
    )
    spool.start()
    for i in range(3):
        spool.drop(f"a{i}.wav", script(duration=1, segments=1, n=i))
    jobs = spool.wait_terminal(3, timeout=30)
    assert all(j.state is JobState.succeeded for j in jobs)
    wait_for(
        lambda: (
            (s := spool.store()) and s.notification("webhook-1:" + str(s.read_all(types=["job.succeeded"])[0].position))
        ),
        15,
        what="a queued notification",
    )


def test_bad_alert_config_stops_the_daemon_with_one_line(spool: Spool) -> None:
    (spool.root / "spool.toml").write_text('[alerts.mine]\nmetric = "nope"\nthreshold = 1\n')
    d = spool.start(wait_ready=False)
    assert d.proc.wait(30) == 2
    assert f"config alerts.mine.metric ({spool.root / 'spool.toml'}:2): 'nope' is not a metric" in d.output()


@pytest.mark.skipif(not sys.stdout, reason="needs a pty")
def test_top_draws_and_quits_on_q(spool: Spool) -> None:
    spool.cli("init", "--root", str(spool.root), check=True)
    pid, fd = pty.fork()
    if pid == 0:  # child: the real CLI on a terminal
        os.chdir(REPO)
        os.execve(
            sys.executable,
            [sys.executable, "-m", "spoolscribe", "top", "--root", str(spool.root), "--interval", "0.2"],
            {**spool.env(), "TERM": "xterm", "COLUMNS": "100", "LINES": "30"},
        )
    screen = b""
    deadline = time.monotonic() + 20
    # curses moves the cursor between runs of text: look for pieces it writes whole
    while b"alerts: none firing" not in screen and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.5)[0]:
            screen += os.read(fd, 65536)
    assert b"alerts: none firing" in screen and b"PROGRESS" in screen and b"(nothing running)" in screen
    t0 = time.monotonic()
    os.write(fd, b"q")
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0 and time.monotonic() - t0 < 2.0
    os.close(fd)


def test_a_running_daemon_serves_metrics_and_writes_the_html_report(spool: Spool) -> None:
    from tests.ops.test_prometheus import free_port, scrape

    port = free_port()
    spool.config.update({"SPOOL_METRICS_PORT": str(port), "SPOOL_METRICS_S": "0.5"})
    d = spool.start()
    spool.drop("m.wav", script(duration=3, segments=1))
    spool.wait_terminal(1)

    def counted() -> dict | None:
        metrics = scrape(port)
        return metrics if metrics["spoolscribe_jobs_total"].get((("state", "succeeded"),)) else None

    m = wait_for(counted, 10, what="the success counted")
    assert m["spoolscribe_audio_seconds_total"][()] == 3.0
    assert f"http://127.0.0.1:{port}/metrics" in d.output()
    wait_for(lambda: (spool.layout.reports / "latest.html").exists(), 10, what="the start-up HTML report")
    out = spool.cli("report", "--root", str(spool.root), check=True)
    assert out.stdout.strip() == str(spool.layout.reports / "latest.html")
