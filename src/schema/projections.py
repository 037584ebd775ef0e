"""Projections of the daemon-level streams (alerts, notifications), kept in the append transaction.

Jobs have their own fold (:mod:`schema.jobs`); these two are simple enough to
be written as SQL upserts, and :func:`rebuild` replays them for
``spool replay --verify`` exactly as the live store applied them.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from schema import events as ev
from schema.mapper import Recorded

ALERTS_SQL = (
    "SELECT rule, level, firing, metric, value, threshold, message, raised_at, resolved_at FROM alerts ORDER BY rule"
)
LEASES_SQL = "SELECT instance, host, pid, until, renewed_at FROM leases ORDER BY instance"
NOTIFICATIONS_SQL = (
    "SELECT key, target, payload, state, attempts, not_before, last_error, queued_at, updated_at"
    " FROM notifications ORDER BY key"
)


def apply(conn: Any, rec: Recorded) -> None:
    e = rec.event
    if isinstance(e, ev.AlertRaised):
        conn.execute(
            "INSERT INTO alerts (rule, level, firing, metric, value, threshold, message, raised_at, resolved_at)"
            " VALUES (?, ?, 1, ?, ?, ?, ?, ?, NULL) ON CONFLICT(rule) DO UPDATE SET level=excluded.level,"
            " firing=1, metric=excluded.metric, value=excluded.value, threshold=excluded.threshold,"
            " message=excluded.message, raised_at=excluded.raised_at, resolved_at=NULL",
            (e.rule, e.level, e.metric, e.value, e.threshold, e.message, rec.at),
        )
    elif isinstance(e, ev.AlertResolved):
        conn.execute(
            "UPDATE alerts SET firing = 0, value = ?, resolved_at = ? WHERE rule = ?", (e.value, rec.at, e.rule)
        )
    elif isinstance(e, ev.DaemonLeaseRenewed):
        conn.execute(
            "INSERT INTO leases (instance, host, pid, until, renewed_at) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT(instance) DO UPDATE SET until = excluded.until, renewed_at = excluded.renewed_at",
            (e.instance, e.host, e.pid, e.until, rec.at),
        )
    elif isinstance(e, ev.DaemonStopped):
        conn.execute("UPDATE leases SET until = ?, renewed_at = ? WHERE instance = ?", (rec.at, rec.at, e.instance))
    elif isinstance(e, ev.NotificationQueued):
        conn.execute(
            "INSERT INTO notifications (key, target, payload, state, attempts, not_before, last_error, queued_at,"
            " updated_at) VALUES (?, ?, ?, 'pending', 0, NULL, NULL, ?, ?) ON CONFLICT(key) DO NOTHING",
            (e.key, e.target, json.dumps(e.payload, sort_keys=True), rec.at, rec.at),
        )
    elif isinstance(e, ev.NotificationDelivered):
        conn.execute(
            "UPDATE notifications SET state = 'delivered', attempts = ?, not_before = NULL,"
            " updated_at = ? WHERE key = ?",
            (e.attempts, rec.at, e.key),
        )
    elif isinstance(e, ev.NotificationFailed):
        conn.execute(
            "UPDATE notifications SET state = ?, attempts = ?, not_before = ?, last_error = ?, updated_at = ?"
            " WHERE key = ?",
            ("failed" if e.final else "pending", e.attempts, e.not_before, e.error, rec.at, e.key),
        )


def snapshot(conn: Any) -> dict[str, list[tuple[Any, ...]]]:
    """``conn``: anything with ``execute(sql)`` (a sqlite3 connection or a store's executor)."""
    return {
        "alerts": [tuple(r) for r in conn.execute(ALERTS_SQL)],
        "notifications": [tuple(r) for r in conn.execute(NOTIFICATIONS_SQL)],
        "leases": [tuple(r) for r in conn.execute(LEASES_SQL)],
    }


def rebuild(records: list[Recorded]) -> dict[str, list[tuple[Any, ...]]]:
    """Apply ``records`` to empty tables in memory and return their contents."""
    from schema.migrate import apply_all

    mem = sqlite3.connect(":memory:", isolation_level=None)
    apply_all(mem)
    for rec in records:
        apply(mem, rec)
    out = snapshot(mem)
    mem.close()
    return out
