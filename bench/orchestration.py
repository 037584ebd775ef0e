"""Orchestration alone (the deterministic test engine): jobs/s over a backlog, and event appends/s."""

from __future__ import annotations

import os
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import Daemon, wait
from schema import events as ev
from schema.sqlite_store import SQLiteEventStore


def backlog(n: int, workers: int = 1) -> dict[str, Any]:
    """``n`` files already in the inbox when the daemon starts; time from first submit to last success."""
    d = Daemon(
        SPOOL_ENGINE="test",
        SPOOL_WORKERS=str(workers),
        SPOOL_SETTLE_S="0",
        SPOOL_DUPLICATES="rerun",
        SPOOL_LOG_LEVEL="warning",
    ).init()
    old = time.time() - 3600  # a backlog waited: its files are old, so no writer can still be busy with them
    for i in range(n):
        path = d.inbox / f"f{i:05d}.wav"
        path.write_bytes(b'SPOOLTEST {"duration": 1, "segments": 1, "n": %d}' % i)
        os.utime(path, (old, old))
    try:
        t0 = time.time()
        d.start(wait_ready=False)
        store = d.store() if (d.root / "state" / "spool.db").exists() else None
        wait(lambda: (d.root / "state" / "spool.db").exists(), 60, "database")
        store = store or d.store()
        try:
            wait(lambda: store.count_by_state().get("succeeded", 0) == n, 60 + n * 0.5, f"{n} jobs done")
            first = store.read_all(limit=1, types=[ev.JobSubmitted.type])[0]
            last = store.read_all(types=[ev.JobSucceeded.type])[-1]
            events = store.last_position()
            store.checkpoint()  # growth is measured on the database file, not a transient WAL
            db_bytes = store.size_bytes()
        finally:
            store.close()
        began = datetime.fromisoformat(first.at).timestamp()
        span = datetime.fromisoformat(last.at).timestamp() - began
        return {
            "jobs": n,
            "workers": workers,
            "seconds": round(span, 2),
            "jobs_per_s": round(n / span, 1),
            "ms_per_job": round(1000 * span / n, 1),
            "startup_s": round(began - t0, 2),
            "events_per_job": round(events / n, 1),
            "db_kb_per_job": round(db_bytes / n / 1024, 2),
        }
    finally:
        d.cleanup()


def appends(n: int = 2000) -> dict[str, Any]:
    """Single-event commits (each fsync'd: synchronous=FULL) and batches of 100."""
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteEventStore(Path(tmp) / "spool.db", create=True)
        store.append("job-j", [ev.JobSubmitted(job_id="j", source="a.wav", size=1, mtime_ns=1)])
        store.append("job-j", [ev.JobStarted(attempt=1, worker="w", pid=1, create_time=1.0, engine="t", model="m")])
        beat = ev.JobHeartbeat(cpu_percent=1.0, rss_bytes=1, position_s=0.0)
        t0 = time.perf_counter()
        for _ in range(n):
            store.append("job-j", [beat])
        single = n / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _ in range(n // 100):
            store.append("job-j", [beat] * 100)
        batched = n / (time.perf_counter() - t0)
        store.close()
    return {"single_per_s": round(single), "batch100_per_s": round(batched)}


def big_store(jobs: int, events: int) -> Path:
    """A database with ``jobs`` finished jobs and about ``events`` events in all (heartbeats pad it)."""
    tmp = Path(tempfile.mkdtemp(prefix="spoolbench-big-")) / "spool"
    (tmp / "state").mkdir(parents=True)
    for d in ("inbox", "outbox", "work", "failed", "done", "logs"):
        (tmp / d).mkdir()
    store = SQLiteEventStore(tmp / "state" / "spool.db", create=True)
    beats = max(0, events // jobs - 6)
    beat = ev.JobHeartbeat(cpu_percent=90.0, rss_bytes=300 << 20, position_s=1.0)
    for i in range(jobs):
        job = f"{i:012x}"
        batch: list[ev.Event] = [
            ev.JobSubmitted(job_id=job, source=f"batch/{i}.wav", size=1000, mtime_ns=i, options={"formats": ["txt"]}),
            ev.JobStarted(attempt=1, worker="w1", pid=1, create_time=1.0, engine="test", model="m"),
            ev.JobProbed(sha256=f"{i:064x}", duration_s=30.0),
            *([beat] * beats),
            ev.JobTranscribed(out_stem=f"batch/{i}", outputs=["t.txt"], language="en", duration_s=30.0, elapsed_s=1.0),
            ev.JobSucceeded(outputs=[f"batch/{i}.txt"], done_path=None),
        ]
        store.append(ev.job_stream(job), batch)
    for i in range(min(20, jobs)):  # a few running, for status to show
        job = f"run{i:09x}"
        store.append(
            ev.job_stream(job),
            [
                ev.JobSubmitted(job_id=job, source=f"live/{i}.wav", size=1000, mtime_ns=i),
                ev.JobStarted(attempt=1, worker="w1", pid=1, create_time=1.0, engine="test", model="m"),
            ],
        )
    store.close()
    return tmp


def query_latency(jobs: int, events: int, repeats: int = 20) -> dict[str, Any]:
    """``spool status`` and ``jobs --json`` on a big log: in-process (the work) and as a command (+ startup)."""
    import json as json_mod
    import statistics
    import subprocess
    import sys

    from processor import config, views
    from processor.status import status_data

    root = big_store(jobs, events)
    try:
        settings = config.load({"root": str(root)}, {})
        store = SQLiteEventStore(root / "state" / "spool.db")
        n_events = store.last_position()

        def timed(fn: Any) -> float:
            samples = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                fn()
                samples.append((time.perf_counter() - t0) * 1000)
            return statistics.median(samples)

        status_ms = timed(lambda: status_data(settings, store))
        jobs_ms = timed(lambda: json_mod.dumps([views.job_item(j) for j in store.jobs()]))
        store.close()
        cli = []
        for _ in range(5):
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "spoolscribe", "status", "--json", "--root", str(root)],
                check=True,
                capture_output=True,
            )
            cli.append((time.perf_counter() - t0) * 1000)
        db_mb = (root / "state" / "spool.db").stat().st_size / 2**20
        return {
            "jobs": jobs,
            "events": n_events,
            "db_mb": round(db_mb, 1),
            "status_ms": round(status_ms, 2),
            "jobs_json_ms": round(jobs_ms, 1),
            "status_cli_ms": round(statistics.median(cli), 1),
        }
    finally:
        import shutil

        shutil.rmtree(root.parent, ignore_errors=True)
