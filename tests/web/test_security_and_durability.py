"""Who may ask (token, loopback, rebinding, origins), and sync requests that outlive a daemon restart."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, Spool, script, wait_for
from tests.web.conftest import free_port, start_web

TOKEN = "s3cret-token-of-some-length"


@pytest.fixture
def quiet_spool(spool: Spool) -> Spool:
    spool.cli("init", check=True)  # a store, no daemon: the guard answers before any job matters
    return spool


def web_exit(spool: Spool, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "spoolscribe", "web", "--root", str(spool.root), *args],
        capture_output=True,
        text=True,
        env=spool.env(**env),
        cwd=REPO,
        timeout=60,
    )


def test_a_bind_beyond_loopback_without_a_token_refuses_to_start(quiet_spool: Spool, tmp_path: Path) -> None:
    out = web_exit(quiet_spool, "--listen", f"0.0.0.0:{free_port()}")
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and "no token is configured" in out.stderr and "Traceback" not in out.stderr
    loose = tmp_path / "token"
    loose.write_text(TOKEN + "\n")
    loose.chmod(0o644)
    out = web_exit(quiet_spool, "--listen", f"0.0.0.0:{free_port()}", SPOOL_WEB_TOKEN_FILE=str(loose))
    assert out.returncode == 2 and "readable by everyone" in out.stderr
    out = web_exit(quiet_spool, "--listen", "127.0.0.1:99999")
    assert out.returncode == 2 and "is not address:port" in out.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        out = web_exit(quiet_spool, "--listen", f"127.0.0.1:{taken.getsockname()[1]}")
    assert out.returncode == 4 and out.stderr.count("\n") == 1 and "cannot listen on" in out.stderr
    assert quiet_spool.cli("status", SPOOL_WEB_LISTEN="nonsense").returncode == 2  # checked by every command


def test_with_a_token_every_data_request_needs_it(quiet_spool: Spool, tmp_path: Path) -> None:
    file = tmp_path / "token"
    file.write_text(TOKEN + "\n")
    file.chmod(0o600)
    port = free_port()
    web = start_web(quiet_spool, f"0.0.0.0:{port}", SPOOL_WEB_TOKEN_FILE=str(file))
    web.token = TOKEN
    try:
        paths = ["/api/v1/jobs", "/api/v1/status", "/api/v1/events?since=0", "/healthz", "/readyz"]
        for path in paths:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Cookie": f"t={TOKEN}"}):
                r = httpx.get(web.url + path, headers=headers, timeout=10)
                assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized", (path, headers)
                assert r.headers["www-authenticate"] == "Bearer" and "set-cookie" not in r.headers
        r = httpx.post(web.url + "/v1/audio/transcriptions", files={"file": ("a.wav", b"x")}, timeout=10)
        assert r.status_code == 401 and list(quiet_spool.inbox.iterdir()) == []
        with web.client() as c:
            assert c.get("/api/v1/jobs").json()["total"] == 0
            assert c.get("/api/v1/status").json()["web"]["token"] is True
        for shell in ("/", "/jobs/0123456789ab", "/static/app.js", "/docs", "/openapi.json"):
            r = httpx.get(web.url + shell, timeout=10)  # the UI's files hold no data; the UI asks for the token
            assert r.status_code == 200 and r.headers["x-content-type-options"] == "nosniff", shell
        assert "/v1/audio/transcriptions" in httpx.get(web.url + "/openapi.json", timeout=10).json()["paths"]
    finally:
        web.stop()


def test_without_a_token_foreign_hosts_and_origins_are_refused(quiet_spool: Spool) -> None:
    web = start_web(quiet_spool)
    try:
        r = httpx.get(web.url + "/api/v1/jobs", headers={"Host": "attacker.example"}, timeout=10)
        assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden_host")
        r = httpx.post(web.url + "/api/v1/jobs/0123456789ab/cancel", headers={"Origin": "http://evil"}, timeout=10)
        assert (r.status_code, r.json()["error"]["code"]) == (403, "cross_origin")
        assert httpx.get(web.url + "/readyz", timeout=10).json()["status"] == "no_daemon"
    finally:
        web.stop()


def test_a_sync_request_survives_a_daemon_restart_mid_job(spool: Spool) -> None:
    spool.cli("init", check=True)
    daemon = spool.start()
    web = start_web(spool)
    answer: list[httpx.Response] = []

    def ask() -> None:
        with httpx.Client(base_url=web.url, timeout=90) as c:
            slow = script(duration=4, segments=8, delay_s=0.4)
            answer.append(c.post("/v1/audio/transcriptions", files={"file": ("long.wav", slow)}))

    t = threading.Thread(target=ask)
    t.start()
    try:
        wait_for(lambda: [j for j in spool.jobs() if j.state.value == "running" and j.position_s > 0], 30)
        assert daemon.stop() == 0  # SIGTERM mid-job: the attempt is recorded as interrupted
        assert not answer  # still waiting on the job id
        spool.start()
        t.join(60)
        assert answer and answer[0].status_code == 200, answer and answer[0].text
        assert answer[0].json()["text"].startswith("segment 1 of 8.")
        job = next(j for j in spool.jobs() if j.source == "long.wav")
        assert job.state.value == "succeeded" and job.total_attempts >= 2
    finally:
        t.join(5)
        web.stop()
