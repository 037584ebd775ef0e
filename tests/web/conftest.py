"""A real ``spool web`` (uvicorn) on a free port beside a real daemon and spool."""

from __future__ import annotations

import contextlib
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, Spool, wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Web:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path
    token: str = ""

    def client(self, **kw: object) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, **kw)  # type: ignore[arg-type]

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)


def start_web(spool: Spool, listen: str = "", token: str = "", wait: bool = True, **env: str) -> Web:
    listen = listen or f"127.0.0.1:{free_port()}"
    log = spool.root / f"web-{listen.rpartition(':')[2]}.out"
    if token:
        env["SPOOL_WEB_TOKEN"] = token
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "spoolscribe", "web", "--root", str(spool.root), "--listen", listen],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=spool.env(**env),
            cwd=REPO,
        )
    host, _, p = listen.rpartition(":")
    web = Web(proc, f"http://{'127.0.0.1' if host in ('', '0.0.0.0') else host}:{p}", log, token)
    if wait:
        wait_for(lambda: _up(web) or proc.poll() is not None, 30, what="spool web up")
        assert proc.poll() is None, web.output()
    return web


def _up(web: Web) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        headers = {"Authorization": f"Bearer {web.token}"} if web.token else {}
        return httpx.get(web.url + "/healthz", headers=headers, timeout=2).status_code in (200, 401)  # it answers
    return False


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Spool, Web]]:
    """One spool, one daemon, one web face for a module's tests (they use distinct jobs)."""
    spool = Spool(tmp_path_factory.mktemp("web") / "spool")
    spool.cli("init", check=True)
    # an alert that fires as soon as there is a job, so the UI has one to show on top
    spool.layout.config.write_text(
        '[alerts.web_test]\nmetric = "total_jobs"\nop = ">"\nthreshold = 0\nlevel = "warning"\n'
        'message = "{value:g} jobs seen"\n'
    )
    spool.config["SPOOL_METRICS_S"] = "0.5"
    spool.start()
    web = start_web(spool)
    try:
        yield spool, web
    finally:
        web.stop()
        spool.cleanup()
