"""Maintenance that rewrites stored rows: heartbeat compaction.

Heartbeats of a long-finished job carry no information beyond their count,
first and last: the middle ones are deleted and their number is added to the
last kept heartbeat's ``compacted`` field.  The fold counts ``1 + compacted``
per heartbeat and stamps the time of the last, so the projection - and
``spool replay --verify`` - are unchanged.
"""

from __future__ import annotations

import json
import sqlite3


def compact_heartbeats(conn: sqlite3.Connection, finished_before: str) -> tuple[int, int]:
    """Compact jobs finished before ``finished_before``; returns (jobs compacted, rows removed)."""
    rows = conn.execute(
        "SELECT e.stream, COUNT(*) FROM events e JOIN jobs j ON e.stream = 'job-' || j.id"
        " WHERE e.type = 'job.heartbeat' AND j.finished_at IS NOT NULL AND j.finished_at < ?"
        " GROUP BY e.stream HAVING COUNT(*) > 2",
        (finished_before,),
    ).fetchall()
    jobs = removed = 0
    for stream, _ in rows:
        beats = conn.execute(
            "SELECT position, data FROM events WHERE stream = ? AND type = 'job.heartbeat' ORDER BY version",
            (stream,),
        ).fetchall()
        middle, last = beats[1:-1], beats[-1]
        weight = sum(1 + int(json.loads(d).get("compacted", 0)) for _, d in middle)
        data = json.loads(last[1])
        data["compacted"] = int(data.get("compacted", 0)) + weight
        conn.execute(
            "UPDATE events SET data = ? WHERE position = ?",
            (json.dumps(data, separators=(",", ":"), sort_keys=True), last[0]),
        )
        conn.executemany("DELETE FROM events WHERE position = ?", [(p,) for p, _ in middle])
        jobs += 1
        removed += len(middle)
    return jobs, removed
