"""How many workers, threads per worker and lanes a host runs when they are left at 0 (``auto``).

A pure choice from what the machine has (cores, free memory, the engine and
the device it resolved to), so every branch is tested on any machine.  The
rules come from measurements (docs/performance.md, "Using the whole machine"):

* faster-whisper on a CPU: CTranslate2 gains little from a second thread in
  one decode, but two decodes side by side, one thread each, nearly double
  the throughput.  So one worker per core, one thread each, as many as
  memory allows; and each worker may decode up to ``workers`` windows of one
  long file at once (lanes) when the other workers are idle.  Lanes share the
  model's weights (CTranslate2 replicas on one device do); each costs its
  working memory (tiny.en: ~120 MB).  For models above small, measured nowhere
  here (no such weights offline), at most 2 lanes, so worker_rss_limit_mb holds.
* a GPU (faster-whisper on CUDA, mlx on Metal): the device is the limit and
  two processes on one GPU contend for it: one worker, all cores for its
  feature extraction, no lanes.
* mlx on a CPU: its decode is not safe to share between threads: one worker
  with every core, no lanes.
* the test engine (orchestration tests): one worker, as before.
* batches: faster-whisper decodes a window's 30 s pieces 8 at a time (4 for
  the medium and large models on a CPU, whose batches weigh more): on this
  CPU a batch of 8 did a 395 s file in 0.7x the time of one by one.
"""

from __future__ import annotations

from dataclasses import dataclass

# Resident size of one faster-whisper worker by model family, MB (tiny.en measured: 335-357 MB through
# the spool, 530 with a second lane; the larger ones scaled from their int8 weights).
WORKER_MB = {"tiny": 450, "base": 600, "small": 1100, "medium": 2600, "large": 4800, "turbo": 2800, "distil": 2200}
UNKNOWN_MB = 2600  # a local directory or a Hub id we cannot place: assume medium
MEMORY_SHARE = 0.6  # of the memory free at start, what the workers may take together


@dataclass(frozen=True)
class Sizing:
    workers: int
    threads: int  # per worker
    lanes: int  # most windows of one job decoded at once
    batch: int  # 30 s pieces of a window decoded in one batch (faster-whisper; 1: one by one)
    why: str  # one line for the log and `spool status`


def worker_mb(model: str) -> int:
    name = model.lower().rsplit("/", 1)[-1]
    for family in ("turbo", "distil", "large", "medium", "small", "base", "tiny"):  # turbo before large
        if family in name:
            return WORKER_MB[family]
    return UNKNOWN_MB


def size(
    *,
    engine: str,
    device: str,
    cores: int,
    free_mb: int,
    model: str,
    workers: int = 0,
    threads: int = 0,
    lanes: int = 0,
    batch: int = 0,
) -> Sizing:
    """The layout for these settings; a value given (not 0) is kept as it is."""
    cores = max(1, cores)
    cpu_parallel = engine == "faster-whisper" and device == "cpu"
    if workers:
        n, why = workers, "workers as configured"
    elif cpu_parallel:
        fits = max(1, int(free_mb * MEMORY_SHARE) // worker_mb(model))
        n = min(cores, fits)
        why = f"one worker per core ({cores})" if n == cores else f"{n} workers: what {free_mb} MB free holds"
    else:
        n, why = 1, {"test": "test engine: one worker"}.get(engine, f"one worker for {engine} on {device}")
    per = threads or max(1, cores // n)
    small = worker_mb(model) <= WORKER_MB["small"]
    most = lanes or (min(n, n if small else 2) if cpu_parallel and per * n <= cores else 1)
    if not batch:  # a batch of 8 costs tiny.en ~240 MB more; the large models' batches are kept smaller
        batch = (
            (8 if device != "cpu" or worker_mb(model) <= WORKER_MB["small"] else 4) if engine == "faster-whisper" else 1
        )
    return Sizing(n, per, max(1, most), max(1, batch), why)
