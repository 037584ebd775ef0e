"""Notifications from the stored outbox: retried with backoff, exactly one delivery per idempotency key."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ground.errors import ConfigError
from ground.times import utc_now
from ops import notify
from processor import logs
from processor.clock import FakeClock
from schema import events as ev
from schema.replay import verify
from schema.sqlite_store import SQLiteEventStore


class Endpoint:
    """A webhook on 127.0.0.1 that answers 500 to the first ``fail_first`` requests of each key."""

    def __init__(self, fail_first: int) -> None:
        self.fail_first = fail_first
        self.attempts: dict[str, int] = {}
        self.delivered: list[dict[str, Any]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                key = self.headers["Idempotency-Key"]
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                endpoint.attempts[key] = endpoint.attempts.get(key, 0) + 1
                if endpoint.attempts[key] <= endpoint.fail_first:
                    self.send_response(500)
                else:
                    endpoint.delivered.append(body)
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    e = Endpoint(fail_first=2)
    yield e
    e.close()


def finished_jobs(store: SQLiteEventStore, n: int) -> None:
    for i in range(n):
        store.append(
            ev.job_stream(f"j{i}"),
            [
                ev.JobSubmitted(job_id=f"j{i}", source=f"{i}.wav", size=1, mtime_ns=1),
                ev.JobStarted(attempt=1, worker="w", pid=1, create_time=1.0, engine="t", model="m"),
                ev.JobFailed(
                    reason="bad_input", message="nope", retryable=False, final=True, attempt=1, failed_path=f"{i}.wav"
                ),
            ],
        )


def test_fails_twice_then_one_delivery_per_key(tmp_path: Path, endpoint: Endpoint) -> None:
    clock = FakeClock()
    store = SQLiteEventStore(tmp_path / "spool.db", create=True, clock=clock.wall)
    settings = notify.parse({"retry_base_s": 1, "webhooks": [{"url": endpoint.url, "name": "ops"}]})
    n = notify.Notifier(tmp_path / "spool.db", settings, str(tmp_path), logs.get("test"))
    finished_jobs(store, 3)
    assert n.enqueue(store, 0) > 0
    assert n.enqueue(store, 0) > 0  # queuing again from the start is a no-op (idempotency keys)
    assert len([r for r in store.read("notifications")]) == 3
    for _ in range(6):  # deliveries are due only after their backoff: step the clock
        n.deliver(store, clock.wall())
        clock.advance(10)
    assert sorted(d["key"] for d in endpoint.delivered) == ["ops:3", "ops:6", "ops:9"]
    assert all(v == 3 for v in endpoint.attempts.values())
    for key in ("ops:3", "ops:6", "ops:9"):
        row = store.notification(key)
        assert row is not None and row["state"] == "delivered" and row["attempts"] == 3
    delivered = endpoint.delivered[0]
    assert delivered["event"] == "job.failed" and delivered["data"]["reason"] == "bad_input"
    assert verify(store).ok
    store.close()


def test_backoff_grows_and_gives_up_after_max_attempts(tmp_path: Path) -> None:
    clock = FakeClock()
    store = SQLiteEventStore(tmp_path / "spool.db", create=True, clock=clock.wall)
    settings = notify.parse(
        {"retry_base_s": 2, "max_attempts": 3, "webhooks": [{"url": "http://127.0.0.1:9/closed", "timeout_s": 1}]}
    )
    n = notify.Notifier(tmp_path / "spool.db", settings, str(tmp_path), logs.get("test"))
    finished_jobs(store, 1)
    n.enqueue(store, 0)
    n.deliver(store, clock.wall())
    assert n.deliver(store, clock.wall()) == 0  # not due again before its backoff
    first = store.notification("webhook-1:3")
    assert first is not None and first["state"] == "pending" and first["attempts"] == 1
    for _ in range(5):
        clock.advance(timedelta(minutes=5).total_seconds())
        n.deliver(store, clock.wall())
    final = store.notification("webhook-1:3")
    assert final is not None and final["state"] == "failed" and final["attempts"] == 3
    assert "Connection refused" in final["last_error"] or "URLError" in final["last_error"]
    store.close()


def test_command_target_gets_json_on_stdin_without_a_shell(tmp_path: Path) -> None:
    out = tmp_path / "got.json"
    script = f"import sys, pathlib; pathlib.Path({str(out)!r}).write_bytes(sys.stdin.buffer.read())"
    store = SQLiteEventStore(tmp_path / "spool.db", create=True)
    settings = notify.parse({"commands": [{"argv": [sys.executable, "-c", script], "events": ["job.failed"]}]})
    n = notify.Notifier(tmp_path / "spool.db", settings, str(tmp_path), logs.get("test"))
    finished_jobs(store, 1)
    n.enqueue(store, 0)
    assert n.deliver(store, utc_now()) == 1
    got = json.loads(out.read_text())
    assert got["key"] == "command-1:3" and got["event"] == "job.failed" and got["job"] == "j0"
    store.close()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"webhooks": [{"url": "ftp://x"}]}, "is not an http"),
        ({"commands": [{"argv": "rm -rf /"}]}, "no shell is used"),
        ({"webhooks": [{"url": "http://x", "events": ["job.exploded"]}]}, "unknown events"),
        ({"hooks": []}, "unknown keys"),
    ],
)
def test_bad_notify_config_names_the_key(config: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        notify.parse(config)


class Redirecting:
    """POST /hook answers ``code`` pointing at /moved; /moved records what reached it (method and body)."""

    def __init__(self, code: int) -> None:
        self.seen: list[tuple[str, str, bytes]] = []
        seen = self.seen

        class Handler(BaseHTTPRequestHandler):
            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                seen.append((self.command, self.path, body))
                if self.path == "/hook":
                    self.send_response(code)
                    self.send_header("Location", "/moved")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = _any

            def log_message(self, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.mark.parametrize(("code", "delivered"), [(301, False), (302, False), (303, False), (307, True), (308, True)])
def test_only_307_and_308_redirects_are_followed_with_the_same_post(tmp_path: Path, code: int, delivered: bool) -> None:
    """A 303 answered with an empty GET is not a delivery (urllib would have counted it as one)."""
    server = Redirecting(code)
    try:
        store = SQLiteEventStore(tmp_path / "spool.db", create=True)
        settings = notify.parse({"webhooks": [{"url": server.url, "events": ["job.failed"]}]})
        n = notify.Notifier(tmp_path / "spool.db", settings, str(tmp_path), logs.get("test"))
        finished_jobs(store, 1)
        n.enqueue(store, 0)
        n.deliver(store, utc_now())
        row = store.notification("webhook-1:3")
        assert row is not None
        if delivered:
            assert row["state"] == "delivered"
            (first, moved) = server.seen
            assert moved[:2] == ("POST", "/moved") and moved[2] == first[2] and json.loads(moved[2])["job"] == "j0"
        else:
            assert row["state"] == "pending" and row["last_error"] == f"HTTP {code}"
            assert [s[:2] for s in server.seen] == [("POST", "/hook")]  # nothing followed
        store.close()
    finally:
        server.server.shutdown()
        server.server.server_close()
