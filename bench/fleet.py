"""Fleets: jobs/s for 1, 2 and 3 daemons on one spool and one PostgreSQL, and PostgreSQL vs SQLite appends.

All on this one machine, so "hosts" are daemons with their own state
directories sharing its two cores: the figures show what coordination costs
and how work spreads, not what three real machines would add.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import Daemon, wait
from schema import events as ev
from schema.store import EventStore, open_store

PG_URL = os.environ.get("SPOOL_BENCH_PG", os.environ.get("SPOOL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test"))


def reachable() -> str | None:
    """None when PostgreSQL answers at ``PG_URL``, else why not."""
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=3):
            return None
    except Exception as e:  # any failure means: no PostgreSQL benchmark
        return str(e).strip()[:200]


@contextlib.contextmanager
def pg_schema() -> Iterator[str]:
    """A fresh schema in the benchmark database; its URL (search_path set)."""
    import psycopg

    name = "spoolbench_" + secrets.token_hex(4)
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{name}"
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {name} CASCADE")


def _append_rate(store: EventStore, n: int, stream: str, batch: int = 1) -> float:
    beat = ev.JobHeartbeat(cpu_percent=1.0, rss_bytes=1, position_s=0.0)
    t0 = time.perf_counter()
    for _ in range(n // batch):
        store.append(stream, [beat] * batch)
    return n / (time.perf_counter() - t0)


def _job(store: EventStore, job: str) -> str:
    store.append(
        ev.job_stream(job),
        [
            ev.JobSubmitted(job_id=job, source=f"{job}.wav", size=1, mtime_ns=1),
            ev.JobStarted(attempt=1, worker="w", pid=1, create_time=1.0, engine="t", model="m"),
        ],
    )
    return ev.job_stream(job)


def appends(n: int) -> dict[str, Any]:
    """Single-event commits and batches of 100 on each backend, then three writers at once on PostgreSQL."""
    out: dict[str, Any] = {"events": n}
    with tempfile.TemporaryDirectory() as tmp:
        s = open_store("", Path(tmp) / "spool.db", create=True)
        stream = _job(s, "j")
        out["sqlite_single_per_s"] = round(_append_rate(s, n, stream))
        out["sqlite_batch100_per_s"] = round(_append_rate(s, n, stream, 100))
        s.close()
    with pg_schema() as url:
        s = open_store(url, Path("/dev/null"), create=True)
        stream = _job(s, "j")
        out["pg_single_per_s"] = round(_append_rate(s, n, stream))
        out["pg_batch100_per_s"] = round(_append_rate(s, n, stream, 100))
        writers = [open_store(url, Path("/dev/null")) for _ in range(3)]
        streams = [_job(w, f"w{i}") for i, w in enumerate(writers)]
        each = n // 3
        t0 = time.perf_counter()
        threads = [
            threading.Thread(target=_append_rate, args=(w, each, st)) for w, st in zip(writers, streams, strict=True)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        out["pg_3_writers_per_s"] = round(3 * each / (time.perf_counter() - t0))
        for w in writers:
            w.close()
        s.close()
    out["pg_over_sqlite_single"] = round(out["pg_single_per_s"] / out["sqlite_single_per_s"], 2)
    return out


def _drop(inbox: Path, n: int, work_s: float) -> None:
    inbox.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        script = b'SPOOLTEST {"duration": 1, "segments": 1, "delay_s": %.3f, "n": %d}' % (work_s, i)
        (inbox / f"f{i:05d}.wav").write_bytes(script)


def _span(store: EventStore, n: int, timeout: float) -> tuple[float, dict[str, int]]:
    wait(lambda: store.count_by_state().get("succeeded", 0) == n, timeout, f"{n} jobs done")
    first = store.read_all(limit=1, types=[ev.JobSubmitted.type])[0]
    last = store.read_all(types=[ev.JobSucceeded.type])[-1]
    by_host: dict[str, int] = {}
    for job in store.jobs():
        by_host[job.host or "-"] = by_host.get(job.host or "-", 0) + 1
    span = datetime.fromisoformat(last.at).timestamp() - datetime.fromisoformat(first.at).timestamp()
    return span, by_host


def _config(work_s: float) -> dict[str, str]:
    return {
        "SPOOL_ENGINE": "test",
        "SPOOL_WORKERS": "1",
        "SPOOL_SETTLE_S": "0",
        "SPOOL_DUPLICATES": "rerun",
        "SPOOL_LOG_LEVEL": "warning",
        "SPOOL_RECENT_S": "0",
    }


def fleet_run(hosts: int, n: int, work_s: float) -> dict[str, Any]:
    """``n`` files waiting in a shared inbox; ``hosts`` daemons (0: one SQLite daemon) start at once."""
    base = Path(tempfile.mkdtemp(prefix="spoolbench-fleet-"))
    root = base / "spool"
    _drop(root / "inbox", n, work_s)
    daemons: list[Daemon] = []
    try:
        with contextlib.ExitStack() as stack:
            url = stack.enter_context(pg_schema()) if hosts else ""
            for i in range(max(1, hosts)):
                extra = {"SPOOL_STORE": url, "SPOOL_STATE_DIR": str(base / f"state-{i}"), "SPOOL_HOST": f"h{i}"}
                daemons.append(Daemon(root, **_config(work_s), **(extra if hosts else {})))
            for d in daemons:
                d.log = base / f"{d.config.get('SPOOL_HOST', 'sqlite')}.out"
                d.start(wait_ready=False)
            db = root / "state" / "spool.db"
            if not hosts:
                wait(lambda: db.exists(), 60, "database")
            store = open_store(url, db, create=bool(hosts))  # the daemons may still be starting
            try:
                span, by_host = _span(store, n, 120 + n * max(0.5, work_s * 2))
            finally:
                store.close()
            for d in daemons:
                d.stop()
    finally:
        for d in daemons:
            with contextlib.suppress(Exception):
                d.stop()
        shutil.rmtree(base, ignore_errors=True)
    return {
        "store": "postgresql" if hosts else "sqlite",
        "hosts": max(1, hosts),
        "jobs": n,
        "work_s": work_s,
        "seconds": round(span, 2),
        "jobs_per_s": round(n / span, 1),
        "spread": sorted(by_host.values(), reverse=True),
    }


def scaling(n: int, work_s: float) -> list[dict[str, Any]]:
    """SQLite alone, then PostgreSQL with 1, 2, 3 daemons, on the same workload, one after the other."""
    rows = [fleet_run(0, n, work_s)] + [fleet_run(h, n, work_s) for h in (1, 2, 3)]
    one = rows[1]["jobs_per_s"]
    for r in rows[1:]:
        r["vs_1_host"] = round(r["jobs_per_s"] / one, 2)
    return rows
