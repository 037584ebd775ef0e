"""Footprint of an idle daemon: CPU (% of one core) over a window, and resident memory."""

from __future__ import annotations

import threading
from typing import Any

import psutil

from bench.common import Daemon


def idle(window_s: float, engine: str = "auto") -> dict[str, Any]:
    d = Daemon(SPOOL_ENGINE=engine).init().start()
    try:
        assert d.proc is not None
        daemon = psutil.Process(d.proc.pid)
        worker = d.workers()[0]
        threading.Event().wait(2.0)  # let start-up work (first scan, imports) finish before the window
        c0, w0 = daemon.cpu_times(), worker.cpu_times()
        threading.Event().wait(window_s)
        c1, w1 = daemon.cpu_times(), worker.cpu_times()
        cpu = 100 * ((c1.user + c1.system) - (c0.user + c0.system)) / window_s
        wcpu = 100 * ((w1.user + w1.system) - (w0.user + w0.system)) / window_s
        return {
            "engine": engine,
            "window_s": window_s,
            "daemon_cpu_pct": round(cpu, 2),
            "daemon_rss_mb": round(daemon.memory_info().rss / 2**20, 1),
            "worker_cpu_pct": round(wcpu, 2),
            "worker_rss_mb": round(worker.memory_info().rss / 2**20, 1),
        }
    finally:
        d.cleanup()


def busy(window_s: float, workers: int = 2) -> dict[str, Any]:
    """The daemon's own CPU while ``workers`` jobs run (test engine, slow jobs): its per-running-job cost."""
    from bench.common import wait

    d = Daemon(SPOOL_ENGINE="test", SPOOL_WORKERS=str(workers), SPOOL_HEARTBEAT_S="5").init().start()
    try:
        assert d.proc is not None
        daemon = psutil.Process(d.proc.pid)
        for i in range(workers * 4):
            (d.inbox / f".b{i}.part").write_bytes(
                b'SPOOLTEST {"duration": 600, "segments": 600, "delay_s": 0.1, "n": %d}' % i
            )
            (d.inbox / f".b{i}.part").rename(d.inbox / f"b{i}.wav")
        store = d.store()
        wait(lambda: store.count_by_state().get("running", 0) == workers, 60, "jobs running")
        store.close()
        c0 = daemon.cpu_times()
        threading.Event().wait(window_s)
        c1 = daemon.cpu_times()
        cpu = 100 * ((c1.user + c1.system) - (c0.user + c0.system)) / window_s
        return {
            "workers": workers,
            "window_s": window_s,
            "daemon_cpu_pct": round(cpu, 2),
            "per_running_job_pct": round(cpu / workers, 2),
            "daemon_rss_mb": round(daemon.memory_info().rss / 2**20, 1),
        }
    finally:
        d.cleanup()
