"""What the CLI shows: jobs, status and events as plain data, then as text.

Data first (``--json`` prints it as is), text second, so both stay in step.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from typing import Any

from schema.jobs import Job, JobState
from schema.mapper import Recorded, to_jsonable
from spool import names

STATE_ORDER = [s.value for s in JobState]


display = names.display  # for --json: readable text; control characters are JSON-escaped there
shown = names.printable  # for a terminal: every control character escaped


def job_item(job: Job) -> dict[str, Any]:
    """The ``jobs --json`` item: stable keys for scripts."""
    return {
        "id": job.id,
        "state": job.state.value,
        "name": display(job.name),
        "source": display(job.source),
        "progress": round(job.progress, 4),
        "attempts": job.total_attempts,
        "position_s": job.position_s,
        "duration_s": job.duration_s,
        "submitted_at": job.submitted_at,
        "finished_at": job.finished_at,
        "reason": job.reason,
        "message": job.message,
        "outputs": [display(o) for o in job.outputs],
        "duplicate_of": job.duplicate_of,
        "cancel_requested": job.cancel_requested,
        "host": job.host,
    }


def job_detail(job: Job, events: list[Recorded]) -> dict[str, Any]:
    doc = job.to_dict()
    for key in ("source", "failed_path", "done_path", "out_stem", "sidecar", "requeued_from"):
        if isinstance(doc.get(key), str):
            doc[key] = display(doc[key])
    doc["outputs"] = [display(o) for o in job.outputs]
    doc["progress"] = round(job.progress, 4)
    doc["events"] = [to_jsonable(r) for r in events]
    return doc


def bar(fraction: float, width: int = 20) -> str:
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "[" + "#" * filled + "." * (width - filled) + "]"


def age(iso_time: str | None, now: datetime | None = None) -> str:
    if not iso_time:
        return "-"
    now = now or datetime.now(UTC)
    secs = max(0.0, (now - datetime.fromisoformat(iso_time)).total_seconds())
    if secs < 60:
        return f"{secs:.0f}s"
    if secs < 3600:
        return f"{secs / 60:.0f}m"
    if secs < 86400:
        return f"{secs / 3600:.1f}h"
    return f"{secs / 86400:.1f}d"


def jobs_table(jobs: list[Job]) -> str:
    if not jobs:
        return "no jobs"
    width = shutil.get_terminal_size((100, 20)).columns
    lines = [f"{'ID':12}  {'STATE':10}  {'PROGRESS':>8}  {'TRIES':>5}  {'AGE':>5}  NAME"]
    for j in jobs:
        name = shown(j.source)
        note = f"  ({j.reason})" if j.reason and j.state in (JobState.failed, JobState.retry_wait) else ""
        progress = f"{j.progress * 100:7.0f}%"
        tries, since = j.total_attempts, age(j.submitted_at)
        line = f"{j.id:12}  {j.state.value:10}  {progress}  {tries:5}  {since:>5}  {name}{note}"
        lines.append(line[: max(width, 60)])
    return "\n".join(lines)


def job_text(detail: dict[str, Any]) -> str:
    keys = [
        "id",
        "state",
        "source",
        "progress",
        "total_attempts",
        "engine",
        "model",
        "duration_s",
        "elapsed_s",
        "language",
        "sha256",
        "submitted_at",
        "started_at",
        "finished_at",
        "reason",
        "message",
        "out_stem",
        "outputs",
        "failed_path",
        "done_path",
        "duplicate_of",
        "pid",
    ]
    lines = [f"{k:15} {shown(str(detail[k]))}" for k in keys if detail.get(k) not in (None, [], "")]
    lines.append(f"{'events':15} {len(detail['events'])}")
    for e in detail["events"]:
        if e["type"] == "job.heartbeat":
            continue
        data = {k: v for k, v in e["data"].items() if k not in ("segments", "options")}
        lines.append(f"  {e['at'][:23]}  {e['type']:22} {shown(json.dumps(data, ensure_ascii=False)[:120])}")
    return "\n".join(lines)


def event_line(rec: Recorded) -> str:
    data = to_jsonable(rec)["data"]
    data = {k: v for k, v in data.items() if k not in ("segments", "options")}
    return (
        f"{rec.position:>7}  {rec.at[:23]}  {rec.stream:18} {rec.type:22} "
        f"{shown(json.dumps(data, ensure_ascii=False)[:160])}"
    )


def status_text(status: dict[str, Any]) -> str:
    d = status["daemon"]
    if d["running"]:
        daemon = f"running, pid {d['pid']}"
    elif d.get("stale"):
        daemon = f"NOT RESPONDING: pid {d['pid']} holds the lock but its loop does not turn (frozen or stuck)"
    else:
        daemon = "not running"
    lines = [
        f"spool   {shown(str(status['root']))}",
        f"daemon  {daemon}",
        f"inbox   {status['inbox_files']} file(s) waiting",
        "jobs    " + ", ".join(f"{k} {v}" for k, v in status["counts"].items() if v)
        if status["counts"]
        else "jobs    none",
    ]
    if status.get("paused"):
        lines.append(f"intake  PAUSED: {shown(str(status['paused']))}")
    for problem in status.get("problems") or []:
        lines.append(f"problem {shown(problem)}")
    running = status["running"]
    if running:
        lines.append("running")
        for r in running:
            pos = f"{r['position_s'] or 0:.0f}/{r['duration_s'] or 0:.0f}s"
            where = f"  (on {r['host']})" if "fleet" in status and r.get("host") else ""
            lines.append(
                f"  {r['id']}  {bar(r['progress'])} {r['progress'] * 100:3.0f}%  {pos:>11}  {shown(r['name'])}{where}"
            )
    if "fleet" in status:
        lines.append("fleet" + ("" if status["fleet"] else "   no daemon holds a lease"))
        for h in status["fleet"]:
            state = "alive" if h["alive"] else "LEASE EXPIRED"
            role = ", leader" if h["leader"] else ""
            lines.append(
                f"  {shown(h['host']):<16} {h['instance']}  pid {h['pid']:<7} {state}{role}, "
                f"{h['jobs_running']} running"
            )
    alerts = status.get("alerts") or []
    lines.append("alerts  " + ("none firing" if not alerts else ""))
    for a in alerts:
        lines.append(f"  {a['level'].upper():8} {shown(a['rule'])}: {shown(a['message'])}")
    return "\n".join(lines)
