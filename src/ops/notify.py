"""Notifications from a stored outbox: job results and alerts to webhooks and commands.

Two steps, both on the ``notifications`` stream of the event log:

1. *Queue*: the notifier follows the log; each event a target subscribes to
   becomes ``notification.queued`` with the key ``<target>:<event position>``
   (also the append's idempotency key, so a restart never queues twice).
2. *Deliver*: due notifications are POSTed (webhooks, with an
   ``Idempotency-Key`` header) or piped as JSON to a command's stdin (argv
   list, no shell).  Success appends ``notification.delivered``; failure
   appends ``notification.failed`` with the next try time (exponential
   backoff) until ``max_attempts``.

It runs in its own thread with its own database connection: a slow or dead
endpoint delays only notifications, never the spool.

Configuration (spool.toml)::

    [notify]
    max_attempts = 8
    retry_base_s = 5

    [[notify.webhooks]]
    url = "https://hooks.example.org/spool"
    events = ["job.failed", "alert.raised"]      # default: all of EVENTS

    [[notify.commands]]
    argv = ["/usr/local/bin/page-oncall"]
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ground.errors import ConfigError
from ground.times import iso, utc_now
from schema import checks
from schema import events as ev
from schema.mapper import Recorded, to_jsonable
from schema.sqlite_store import SQLiteEventStore
from schema.store import EventStore

STREAM = "notifications"
EVENTS = ("job.succeeded", "job.failed", "job.cancelled", "alert.raised", "alert.resolved")


@dataclass(frozen=True)
class Target:
    name: str
    kind: str  # webhook | command
    events: frozenset[str]
    url: str | None = None
    argv: tuple[str, ...] = ()
    timeout_s: float = 10.0


@dataclass(frozen=True)
class NotifySettings:
    targets: tuple[Target, ...]
    max_attempts: int = 8
    retry_base_s: float = 5.0
    retry_max_s: float = 3600.0


_TOP_KEYS = ("webhooks", "commands", "max_attempts", "retry_base_s", "retry_max_s")
_TARGET_KEYS = {"webhook": ("url", "events", "name", "timeout_s"), "command": ("argv", "events", "name", "timeout_s")}


def parse(config: dict[str, Any]) -> NotifySettings:
    """Validate ``[notify]`` completely (it runs at load); every mistake names the key."""
    if not isinstance(config, dict):
        raise ConfigError("notify", "must be a table")
    unknown = sorted(set(config) - set(_TOP_KEYS))
    if unknown:
        raise ConfigError("notify", f"unknown keys {unknown}", ", ".join(_TOP_KEYS))
    targets = []
    for kind, items in (("webhook", config.get("webhooks", [])), ("command", config.get("commands", []))):
        if not isinstance(items, list):
            raise ConfigError(f"notify.{kind}s", "must be an array of tables ([[notify." + kind + "s]])")
        for i, raw in enumerate(items):
            targets.append(_target(kind, i, raw))
    names = [t.name for t in targets]
    if len(names) != len(set(names)):
        raise ConfigError("notify", f"target names must be unique: {names}")
    return NotifySettings(
        tuple(targets),
        max_attempts=int(_number("notify.max_attempts", config.get("max_attempts", 8), 1, 1000, integer=True)),
        retry_base_s=_number("notify.retry_base_s", config.get("retry_base_s", 5.0), 0.001, checks.MAX_FLOAT),
        retry_max_s=_number("notify.retry_max_s", config.get("retry_max_s", 3600.0), 0.001, checks.MAX_FLOAT),
    )


def _number(key: str, value: Any, low: float, high: float, *, integer: bool = False) -> float:
    problem = checks.number_problem(value, integer=integer)
    if problem is None and not low <= value <= high:
        problem = f"{checks.show(value)} is out of range"
    if problem:
        raise ConfigError(key, problem, f"{low:g} to {high:g}")
    return float(value)


def _target(kind: str, i: int, raw: Any) -> Target:
    key = f"notify.{kind}s[{i}]"
    if not isinstance(raw, dict):
        raise ConfigError(key, "must be a table")
    unknown = sorted(set(raw) - set(_TARGET_KEYS[kind]))
    if unknown:
        raise ConfigError(key, f"unknown keys {unknown}", ", ".join(_TARGET_KEYS[kind]))
    events = raw.get("events", list(EVENTS))
    if not isinstance(events, list) or not all(isinstance(e, str) and e in EVENTS for e in events):
        raise ConfigError(f"{key}.events", f"{checks.show(events)} names unknown events", ", ".join(EVENTS))
    name = raw.get("name", f"{kind}-{i + 1}")
    problem = checks.text_problem(name, max_len=100)
    if problem or not name:
        raise ConfigError(f"{key}.name", problem or "must not be empty")
    timeout = _number(f"{key}.timeout_s", raw.get("timeout_s", 10.0), 0.001, 3600)
    if kind == "webhook":
        url = raw.get("url")
        problem = _url_problem(url)
        if problem:
            raise ConfigError(f"{key}.url", problem)
        return Target(name, kind, frozenset(events), url=url, timeout_s=timeout)
    argv = raw.get("argv")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv) or not argv[0]:
        raise ConfigError(f"{key}.argv", "must be a non-empty list of strings (no shell is used)")
    for arg in argv:
        problem = checks.text_problem(arg)
        if problem:
            raise ConfigError(f"{key}.argv", problem)
    return Target(name, kind, frozenset(events), argv=tuple(argv), timeout_s=timeout)


def _url_problem(url: Any) -> str | None:
    """Why ``url`` is not an http(s) URL with a host that urllib can request."""
    problem = checks.text_problem(url, max_len=2000)
    if problem:
        return problem
    if any(c.isspace() for c in url):
        return f"{checks.show(url)} holds white space"
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as e:
        return f"{checks.show(url)} is not a valid URL ({e})"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{checks.show(url)} is not an http(s) URL with a host"
    return None


def payload_for(rec: Recorded, root: str) -> dict[str, Any] | None:
    """What a subscriber receives, or None for events that are not worth a notification."""
    e = rec.event
    if isinstance(e, ev.JobFailed) and not e.final:
        return None  # a retry follows; only the final failure is news
    doc = to_jsonable(rec)
    job_id = ev.job_id_of(rec.stream)
    return {"event": rec.type, "at": rec.at, "position": rec.position, "root": root, "job": job_id, "data": doc["data"]}


class _PostRedirects(urllib.request.HTTPRedirectHandler):
    """Follow only 307/308, with the same method and body.

    urllib follows 301/302/303 by turning the POST into a GET without a body: the endpoint
    would answer 200 to an empty request and the notification count as delivered.
    """

    def redirect_request(
        self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any, newurl: str
    ) -> urllib.request.Request | None:
        if code not in (307, 308) or urllib.parse.urlsplit(newurl).scheme not in ("http", "https"):
            return None  # urllib then raises HTTPError(code): a failed delivery, retried with backoff
        return urllib.request.Request(  # noqa: S310 - http(s) only, checked above
            newurl, data=req.data, method=req.get_method(), headers=dict(req.header_items())
        )


_OPENER = urllib.request.build_opener(_PostRedirects)


class Notifier:
    def __init__(self, db: Path | Callable[[], EventStore], settings: NotifySettings, root: str, log: Any) -> None:
        """``db``: the SQLite file, or a function opening the daemon's store (its own connection)."""
        self.settings = settings
        self.root = root
        self.log = log
        self._db = db
        self._stop = threading.Event()
        self._poke = threading.Event()
        self._thread: threading.Thread | None = None
        self.delivered = 0
        self.failures = 0

    def _open(self) -> EventStore:
        return self._db() if callable(self._db) else SQLiteEventStore(self._db)

    def start(self) -> None:
        if not self.settings.targets:
            return
        self._thread = threading.Thread(target=self._run, name="notifier", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        self._stop.set()
        self._poke.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def poke(self) -> None:
        self._poke.set()

    def _run(self) -> None:
        store = self._open()
        try:
            cursor = store.max_notified_position()
            if cursor is None:
                cursor = store.last_position()  # first start: no notifications for history
            while not self._stop.is_set():
                try:
                    cursor = self.enqueue(store, cursor)
                    self.deliver(store, utc_now())
                except Exception as e:  # noqa: BLE001 - the notifier must outlive any one failure
                    self.log.error("notify.error", error=repr(e)[:300])
                self._poke.wait(1.0)
                self._poke.clear()
        finally:
            store.close()

    def enqueue(self, store: EventStore, cursor: int) -> int:
        for rec in store.read_all(cursor, types=EVENTS):
            cursor = rec.position
            payload = payload_for(rec, self.root)
            if payload is None:
                continue
            for target in self.settings.targets:
                if rec.type in target.events:
                    key = f"{target.name}:{rec.position}"
                    store.append(
                        STREAM,
                        [ev.NotificationQueued(key=key, target=target.name, payload=payload)],
                        idempotency_key=f"queue:{key}",
                    )
        return cursor

    def deliver(self, store: EventStore, now: datetime) -> int:
        sent = 0
        targets = {t.name: t for t in self.settings.targets}
        for item in store.due_notifications(iso(now)):
            attempts = int(item["attempts"]) + 1
            target = targets.get(item["target"])
            error = "the target is no longer configured" if target is None else self._send(target, item)
            if error is None:
                store.append(STREAM, [ev.NotificationDelivered(key=item["key"], attempts=attempts)])
                self.delivered += 1
                sent += 1
                continue
            self.failures += 1
            final = target is None or attempts >= self.settings.max_attempts
            delay = min(self.settings.retry_max_s, self.settings.retry_base_s * 2 ** (attempts - 1))
            store.append(
                STREAM,
                [
                    ev.NotificationFailed(
                        key=item["key"],
                        attempts=attempts,
                        error=error[:500],
                        final=final,
                        not_before=None if final else iso(now + timedelta(seconds=delay)),
                    )
                ],
            )
            self.log.warning("notify.failed", key=item["key"], attempts=attempts, error=error[:200], final=final)
        return sent

    def _send(self, target: Target, item: dict[str, Any]) -> str | None:
        body = json.dumps({"key": item["key"], **item["payload"]}).encode()
        if target.kind == "webhook":
            assert target.url is not None
            req = urllib.request.Request(  # noqa: S310 - an http(s) URL from the operator's config
                target.url,
                data=body,
                method="POST",
                headers={
                    "Content-Type": "application/json",
                    "Idempotency-Key": item["key"],
                    "User-Agent": "spoolscribe-notifier",
                },
            )
            try:
                with _OPENER.open(req, timeout=target.timeout_s) as resp:
                    return None if 200 <= resp.status < 300 else f"HTTP {resp.status}"
            except urllib.error.HTTPError as e:
                return f"HTTP {e.code}"
            except (urllib.error.URLError, OSError, TimeoutError) as e:
                return f"{type(e).__name__}: {getattr(e, 'reason', e)}"
        env = {**os.environ, "SPOOL_NOTIFY_KEY": item["key"], "SPOOL_NOTIFY_EVENT": item["payload"]["event"]}
        try:
            done = subprocess.run(
                list(target.argv), input=body, capture_output=True, timeout=target.timeout_s, env=env, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"{type(e).__name__}: {e}"
        if done.returncode == 0:
            return None
        return f"exit {done.returncode}: {done.stderr.decode(errors='replace').strip()[:200]}"
