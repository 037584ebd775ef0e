"""Log retention by age and size, heartbeat compaction that keeps replay exact, verified backups, reports."""

from __future__ import annotations

import json
import os
import sqlite3

from ops import retention
from ops.runner import OpsRunner
from schema import events as ev
from schema.replay import verify
from tests.ops.conftest import MakeCtx


def write_log(path: os.PathLike[str], size: int, age_s: float, now: float) -> None:
    with open(path, "wb") as fh:
        fh.write(b"x" * size)
    os.utime(path, (now - age_s, now - age_s))


def test_retention_by_age_keeps_active_jobs_and_the_daemon_log(make_ctx: MakeCtx, clock) -> None:
    ctx = make_ctx(log_max_age_days=1.0)
    now = clock.wall().timestamp()
    logs = ctx.layout.logs
    write_log(logs / "old.log", 100, 3 * 86400, now)
    write_log(logs / "old.log.1", 100, 3 * 86400, now)
    write_log(logs / "new.log", 100, 3600, now)
    write_log(logs / "active.log", 100, 5 * 86400, now)
    write_log(logs / "daemon.log", 100, 9 * 86400, now)
    ctx.store.append("job-active", [ev.JobSubmitted(job_id="active", source="a.wav", size=1, mtime_ns=1)])
    OpsRunner(ctx).job_retention()
    assert sorted(p.name for p in logs.iterdir()) == ["active.log", "daemon.log", "new.log"]
    (pruned,) = [r.event for r in ctx.store.read(ev.DAEMON_STREAM)]
    assert pruned == ev.LogsPruned(files=2, bytes=200)


def test_retention_by_total_size_deletes_oldest_first(tmp_path) -> None:
    now = 1_000_000.0
    for i in range(5):
        write_log(tmp_path / f"j{i}.log", 1000, 500 - i * 100, now)  # j0 oldest
    pruned = retention.prune_logs(tmp_path, now_ts=now, max_age_s=86400, max_total_bytes=2500, keep=set())
    assert pruned.files == 3 and sorted(p.name for p in tmp_path.iterdir()) == ["j3.log", "j4.log"]


def heartbeats(store, job_id: str) -> int:
    return sum(1 for r in store.read(ev.job_stream(job_id)) if r.type == "job.heartbeat")


def test_compaction_keeps_first_and_last_and_replay_exact(make_ctx: MakeCtx, clock) -> None:
    ctx = make_ctx(heartbeat_keep_days=7.0)
    for job_id in ("old", "recent"):
        ctx.store.append(
            ev.job_stream(job_id),
            [
                ev.JobSubmitted(job_id=job_id, source=f"{job_id}.wav", size=1, mtime_ns=1),
                ev.JobStarted(attempt=1, worker="w", pid=1, create_time=1.0, engine="t", model="m"),
            ],
        )
        for i in range(10):
            ctx.store.append(
                ev.job_stream(job_id), [ev.JobHeartbeat(cpu_percent=float(i), rss_bytes=i, position_s=float(i))]
            )
        ctx.store.append(
            ev.job_stream(job_id),
            [
                ev.JobTranscribed(out_stem=job_id, outputs=["t.txt"], language="en", duration_s=9, elapsed_s=1),
                ev.JobSucceeded(outputs=[f"{job_id}.txt"], done_path=None),
            ],
        )
        if job_id == "old":
            clock.advance(8 * 86400)
    before = {j: ctx.store.job(j) for j in ("old", "recent")}
    OpsRunner(ctx).job_compaction()
    assert heartbeats(ctx.store, "old") == 2 and heartbeats(ctx.store, "recent") == 10
    assert verify(ctx.store).ok
    assert {j: ctx.store.job(j) for j in ("old", "recent")} == before
    assert before["old"].heartbeats == 10
    assert ctx.store.read(ev.DAEMON_STREAM)[-1].event == ev.EventsCompacted(jobs=1, removed=8)
    OpsRunner(ctx).job_compaction()  # nothing more to do: no second event
    assert len(ctx.store.read(ev.DAEMON_STREAM)) == 1


def test_backups_are_verified_and_rotated(make_ctx: MakeCtx, clock) -> None:
    ctx = make_ctx(backups_keep=2)
    ctx.store.append("job-a", [ev.JobSubmitted(job_id="a", source="a.wav", size=1, mtime_ns=1)])
    runner = OpsRunner(ctx)
    for _ in range(3):
        runner.job_backup()
        clock.advance(86400)
    backups = sorted(ctx.layout.backups.glob("spool-daily-*.db"))
    assert len(backups) == 2
    conn = sqlite3.connect(backups[-1])
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 1
    conn.close()


def test_reports_are_written_and_pruned(make_ctx: MakeCtx, clock) -> None:
    ctx = make_ctx(reports_keep=3, free_disk_floor_mb=0)
    runner = OpsRunner(ctx)
    for _ in range(5):
        runner.job_report()
        clock.advance(3600)
    reports = sorted(ctx.layout.reports.glob("health-*.json"))
    assert len(reports) == 3
    latest = json.loads((ctx.layout.reports / "latest.json").read_text())
    assert latest == json.loads(reports[-1].read_text())
    assert latest["status"] == "ok" and {"metrics", "alerts", "last_24h"} <= set(latest)
    assert [r.type for r in ctx.store.read(ev.DAEMON_STREAM)] == ["report.written"] * 5
