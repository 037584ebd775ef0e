"""Health reports: metrics, firing alerts and last-24-hour counts, as JSON files and on demand."""

from __future__ import annotations

import contextlib
import json
import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from ground.times import iso
from ops import alerts as alerts_mod
from ops import metrics as metrics_mod
from processor.config import Settings
from schema.store import EventStore
from spool import fsio
from spool.layout import Layout


def build(
    store: EventStore,
    layout: Layout,
    settings: Settings,
    now: datetime,
    counters: dict[str, Any] | None = None,
    problems: list[str] | None = None,
) -> dict[str, Any]:
    """The report: fresh metrics, rules evaluated now, and what the log says of the last 24 h."""
    metrics = metrics_mod.compute(
        store,
        layout,
        now=now,
        window_s=settings.metrics_window_s,
        stuck_after_s=settings.stuck_after_s,
        counters=counters,
    )
    rules = alerts_mod.parse_rules(settings.alerts, settings.free_disk_floor_mb)
    evaluation = alerts_mod.evaluate(rules, metrics)
    firing = [
        {
            "rule": r.name,
            "level": r.level,
            "metric": r.metric,
            "value": evaluation[r.name][1],
            "threshold": r.threshold,
            "message": r.describe(evaluation[r.name][1]),
        }
        for r in rules
        if evaluation[r.name][0]
    ]
    day = store.window_counts(iso(now - timedelta(hours=24)))
    status = alerts_mod.status_of([r.level for r in rules if evaluation[r.name][0]])
    return {
        "status": status,
        "generated_at": iso(now),
        "root": str(layout.root),
        "metrics": metrics,
        "alerts": firing,
        "problems": list(problems or []),
        "last_24h": {
            "submitted": day["submitted"],
            "succeeded": day["finished"].get("succeeded", 0),
            "failed": day["finished"].get("failed", 0),
            "cancelled": day["finished"].get("cancelled", 0),
            "failed_attempts": day["attempt_failures"],
            "orphaned": day["orphaned"],
            "audio_hours": round(day["audio_s"] / 3600, 3),
        },
    }


def unavailable(layout: Layout, now: datetime, error: str, live: Any) -> dict[str, Any]:
    """The report when the event store itself cannot be read: critical, with what the filesystem shows."""
    return {
        "status": "critical",
        "generated_at": iso(now),
        "root": str(layout.root),
        "metrics": live.counters(),
        "alerts": [
            {
                "rule": "store_unavailable",
                "level": "critical",
                "metric": "store",
                "value": 0,
                "threshold": 0,
                "message": f"the event store cannot be read: {error}",
            }
        ],
        "problems": list(live.problems),
        "last_24h": {},
    }


def write(report: dict[str, Any], reports: Path, keep: int) -> Path:
    stamp = datetime.fromisoformat(report["generated_at"]).strftime("%Y%m%dT%H%M%SZ")
    body = (json.dumps(report, indent=2, default=str) + "\n").encode()
    path = reports / f"health-{stamp}.json"
    fsio.atomic_write(path, body)
    fsio.atomic_write(reports / "latest.json", body)
    for old in sorted(reports.glob("health-*.json"))[:-keep]:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(old)
    return path


def text(report: dict[str, Any]) -> str:
    m = report["metrics"]
    lines = [f"status  {report['status'].upper()}  ({report['generated_at'][:19]}Z, {report['root']})"]
    for a in report["alerts"]:
        lines.append(f"  {a['level'].upper():8} {a['rule']}: {a['message']}")
    for p in report.get("problems") or []:
        lines.append(f"  problem  {p}")
    keys = [
        "queue_depth",
        "oldest_queued_age_s",
        "jobs_running",
        "active_processes",
        "stuck_processes",
        "orphaned_cleaned",
        "errors_count",
        "throughput",
        "avg_heartbeat_delay",
        "jobs_with_pid",
        "log_files_count",
        "log_files_size_mb",
        "db_size_mb",
        "free_disk_mb",
        "total_jobs",
    ]
    lines += [f"  {k:22} {m[k]}" for k in keys if k in m]
    d = report["last_24h"]
    if d:
        lines.append("last 24 h: " + ", ".join(f"{k} {v}" for k, v in d.items()))
    return "\n".join(lines)
