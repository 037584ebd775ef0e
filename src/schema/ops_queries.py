"""What ops reads (metrics windows, alerts, notifications, leases) and the log's maintenance (compaction)."""

from __future__ import annotations

import json
from typing import Any

from schema.store_backend import StoreBackend


class OpsQueries(StoreBackend):
    """The daemon-level projections and the windowed counts the metrics need; compaction that keeps replay exact."""

    def window_counts(self, since_iso: str) -> dict[str, Any]:
        """Numbers the metrics need, over jobs and events since ``since_iso`` (one read each, indexed)."""
        d = self.dialect

        def one(sql: str, *args: object) -> Any:
            return self._read(sql, args)[0][0]

        finished = {
            r[0]: int(r[1])
            for r in self._read("SELECT state, COUNT(*) FROM jobs WHERE finished_at >= ? GROUP BY state", (since_iso,))
        }
        return {
            "oldest_queued_at": one("SELECT MIN(submitted_at) FROM jobs WHERE state IN ('queued', 'retry_wait')"),
            "orphaned": int(one("SELECT COUNT(*) FROM events WHERE type = 'job.orphaned' AND at >= ?", since_iso)),
            "final_failures": int(
                one(
                    "SELECT COUNT(*) FROM events WHERE type = 'job.failed' AND at >= ?"
                    f" AND {d.json('data', 'final', 'bool')} = {d.true()}",
                    since_iso,
                )
            ),
            "attempt_failures": int(
                one("SELECT COUNT(*) FROM events WHERE type = 'job.failed' AND at >= ?", since_iso)
            ),
            "audio_s": float(
                one(
                    f"SELECT COALESCE(SUM({d.json('doc', 'duration_s', 'real')}), 0) FROM jobs"
                    " WHERE state = 'succeeded' AND finished_at >= ?",
                    since_iso,
                )
            ),
            "submitted": int(one("SELECT COUNT(*) FROM jobs WHERE submitted_at >= ?", since_iso)),
            "folders_recreated": int(
                one("SELECT COUNT(*) FROM events WHERE type = 'daemon.folder_recreated' AND at >= ?", since_iso)
            ),
            "finished": finished,
        }

    def first_event_at(self) -> str | None:
        rows = self._read("SELECT at FROM events ORDER BY position LIMIT 1")
        return rows[0][0] if rows else None

    # --- the daemon-level projections -------------------------------------------------------

    def firing_alerts(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._read("SELECT * FROM alerts WHERE firing = 1 ORDER BY level, rule")]

    def alerts(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._read("SELECT * FROM alerts ORDER BY rule")]

    def due_notifications(self, now_iso: str, limit: int = 50) -> list[dict[str, Any]]:
        rows = self._read(
            "SELECT * FROM notifications WHERE state = 'pending' AND COALESCE(not_before, '') <= ?"
            " ORDER BY queued_at LIMIT ?",
            (now_iso, limit),
        )
        return [{**dict(r), "payload": json.loads(r["payload"])} for r in rows]

    def notification(self, key: str) -> dict[str, Any] | None:
        rows = self._read("SELECT * FROM notifications WHERE key = ?", (key,))
        return {**dict(rows[0]), "payload": json.loads(rows[0]["payload"])} if rows else None

    def max_notified_position(self) -> int | None:
        """The last event position already turned into notifications (the notifier's cursor)."""
        rows = self._read(f"SELECT MAX({self.dialect.json('payload', 'position', 'int')}) FROM notifications")
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    def leases(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._read("SELECT * FROM leases ORDER BY instance")]

    # --- maintenance ---------------------------------------------------------------------

    def compact_heartbeats(self, finished_before: str) -> tuple[int, int]:
        """Heartbeats of jobs finished before ``finished_before``: first and last kept, the count recorded.

        The fold counts ``1 + compacted`` per heartbeat and stamps the time of the
        last, so the projection - and ``spool replay --verify`` - are unchanged.
        """
        jobs = removed = 0
        with self._write() as x:
            self._serialise(x)
            streams = x.execute(
                "SELECT e.stream FROM events e JOIN jobs j ON e.stream = 'job-' || j.id"
                " WHERE e.type = 'job.heartbeat' AND j.finished_at IS NOT NULL AND j.finished_at < ?"
                " GROUP BY e.stream HAVING COUNT(*) > 2",
                (finished_before,),
            ).fetchall()
            for (stream,) in [tuple(r) for r in streams]:
                beats = [
                    tuple(r)
                    for r in x.execute(
                        "SELECT position, data FROM events WHERE stream = ? AND type = 'job.heartbeat'"
                        " ORDER BY version",
                        (stream,),
                    ).fetchall()
                ]
                middle, last = beats[1:-1], beats[-1]
                weight = sum(1 + int(json.loads(d).get("compacted", 0)) for _, d in middle)
                data = json.loads(last[1])
                data["compacted"] = int(data.get("compacted", 0)) + weight
                x.execute(
                    "UPDATE events SET data = ? WHERE position = ?",
                    (json.dumps(data, separators=(",", ":"), sort_keys=True), last[0]),
                )
                for position, _ in middle:
                    x.execute("DELETE FROM events WHERE position = ?", (position,))
                jobs += 1
                removed += len(middle)
        return jobs, removed

    def compact_leases(self, before: str) -> int:
        """Lease renewals older than ``before`` except each instance's last: the projection needs no more."""
        with self._write() as x:
            self._serialise(x)
            cur = x.execute(
                "DELETE FROM events WHERE type = 'daemon.lease' AND at < ? AND position NOT IN"
                " (SELECT MAX(position) FROM events WHERE type = 'daemon.lease'"
                f" GROUP BY {self.dialect.json('data', 'instance')})",
                (before,),
            )
            return int(cur.rowcount or 0)
