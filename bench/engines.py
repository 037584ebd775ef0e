"""Engine ceiling vs the spool, per engine, on the same clips in one run.

(a) ceiling: ``bench.engine_loop`` transcribes the clips in a plain loop;
(b) spool: the same clips dropped at once into a real daemon, timed from the
first drop to the last ``job.succeeded``.  Reported: both x real time and
(b)/(a).  Rounds alternate a, b, a, b so drift on a shared machine hits both.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import REPO, Daemon, median, wait
from processor.supervisor import worker_argv
from schema import events as ev


def ceiling(engine: str, clips: list[Path], threads: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.engine_loop", "--engine", engine, "--threads", str(threads), *map(str, clips)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{REPO}"},
    )
    data = json.loads(out.stdout.strip().splitlines()[-1])
    data["x_real_time"] = data["audio_s"] / data["elapsed_s"]
    return data


def through_spool(engine: str, clips: list[Path], workers: int, threads: int, **config: str) -> dict[str, Any]:
    d = Daemon(
        SPOOL_ENGINE=engine,
        SPOOL_WORKERS=str(workers),
        SPOOL_THREADS=str(threads),
        SPOOL_DUPLICATES="rerun",
        SPOOL_HEARTBEAT_S="1",
        **config,
    ).init()
    try:
        d.start()
        staged = []
        for i, clip in enumerate(clips):
            tmp = d.inbox / f".c{i:03d}.wav.part"
            shutil.copyfile(clip, tmp)
            staged.append((tmp, d.inbox / f"c{i:03d}.wav"))
        t0 = time.time()
        for tmp, final in staged:
            os.rename(tmp, final)
        store = d.store()
        try:
            wait(lambda: store.count_by_state().get("succeeded", 0) == len(clips), 3600, "all clips transcribed")
            recs = store.read_all(types=[ev.JobSucceeded.type, ev.JobProbed.type, ev.JobHeartbeat.type])
        finally:
            store.close()
        last = max(datetime.fromisoformat(r.at).timestamp() for r in recs if r.type == ev.JobSucceeded.type)
        audio_s = sum(r.event.duration_s for r in recs if r.type == ev.JobProbed.type)
        peak = max((r.event.rss_bytes for r in recs if r.type == ev.JobHeartbeat.type), default=0)
        elapsed = last - t0
        return {
            "elapsed_s": elapsed,
            "audio_s": audio_s,
            "x_real_time": audio_s / elapsed,
            "peak_worker_rss_mb": peak / 2**20,
        }
    finally:
        d.cleanup()


def spawn_to_ready(engine: str, threads: int, samples: int = 3) -> float:
    """Cold start of one worker process: spawn until its ``ready`` line (model cached/converted)."""
    times = []
    models = Path("/tmp/spoolbench-models")
    for _ in range(samples):
        t0 = time.monotonic()
        proc = subprocess.Popen(
            worker_argv(engine, "tiny.en", models, threads),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO / "src")},
        )
        assert proc.stdout is not None and proc.stdin is not None
        line = proc.stdout.readline()
        times.append(time.monotonic() - t0)
        assert b'"ready"' in line, line
        proc.stdin.close()
        proc.wait(30)
    return median(times)


def compare(engine: str, clips: list[Path], rounds: int, workers: int, threads: int) -> dict[str, Any]:
    a_runs, b_runs = [], []
    for _ in range(rounds):
        a_runs.append(ceiling(engine, clips, threads=threads * workers if threads else 0))
        b_runs.append(through_spool(engine, clips, workers, threads))
    a = median([r["x_real_time"] for r in a_runs])
    b = median([r["x_real_time"] for r in b_runs])
    return {
        "engine": engine,
        "workers": workers,
        "threads_per_worker": threads or "auto",
        "clips": len(clips),
        "audio_s": round(a_runs[0]["audio_s"], 1),
        "ceiling_x": round(a, 2),
        "spool_x": round(b, 2),
        "ratio": round(b / a, 3),
        "rounds": rounds,
        "ceiling_peak_rss_mb": round(max(r["peak_rss_mb"] for r in a_runs)),
        "spool_peak_worker_rss_mb": round(max(r["peak_worker_rss_mb"] for r in b_runs)),
        "ceiling_runs_x": [round(r["x_real_time"], 2) for r in a_runs],
        "spool_runs_x": [round(r["x_real_time"], 2) for r in b_runs],
    }


def cold_vs_warm(engine: str, clips: list[Path]) -> dict[str, Any]:
    """Per-job cost through the spool with a fresh worker per job (max_jobs_per_worker=1) vs warm workers."""
    warm = through_spool(engine, clips, workers=1, threads=0)
    cold = through_spool(engine, clips, workers=1, threads=0, SPOOL_MAX_JOBS_PER_WORKER="1")
    n = len(clips)
    return {
        "engine": engine,
        "jobs": n,
        "warm_s_per_job": round(warm["elapsed_s"] / n, 3),
        "cold_s_per_job": round(cold["elapsed_s"] / n, 3),
        "cold_overhead_s_per_job": round((cold["elapsed_s"] - warm["elapsed_s"]) / n, 3),
    }
