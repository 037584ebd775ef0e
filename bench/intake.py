"""Intake latency: from a file becoming complete in the inbox to its ``job.submitted`` event."""

from __future__ import annotations

import os
import time
from datetime import datetime
from typing import Any

from bench.common import Daemon, percentile, wait
from schema import events as ev

BODY = b'SPOOLTEST {"duration": 1, "segments": 1}'


def _submitted_at(store: Any, source: str) -> float:
    for rec in store.read_all(types=[ev.JobSubmitted.type]):
        if rec.event.source == source:
            return datetime.fromisoformat(rec.at).timestamp()
    return 0.0


def measure(renames: int, in_place: int, settle_s: float = 2.0) -> dict[str, Any]:
    d = Daemon(SPOOL_ENGINE="test", SPOOL_SETTLE_S=str(settle_s)).init().start()
    store = d.store()
    try:
        rename_ms = []
        for i in range(renames):
            part, final = d.inbox / f".r{i}.wav.part", d.inbox / f"r{i}.wav"
            part.write_bytes(BODY + str(i).encode())
            t0 = time.time()
            os.rename(part, final)
            at = wait(lambda n=final.name: _submitted_at(store, n), 30, "rename submitted")
            rename_ms.append((at - t0) * 1000)
        inplace_ms = []
        for i in range(in_place):
            final = d.inbox / f"w{i}.wav"
            with open(final, "wb") as fh:
                fh.write(BODY + str(i).encode())
            t0 = time.time()
            at = wait(lambda n=final.name: _submitted_at(store, n), 60, "in-place submitted")
            inplace_ms.append((at - t0) * 1000)
    finally:
        store.close()
        d.cleanup()
    return {
        "settle_s": settle_s,
        "rename": {
            "n": renames,
            "p50_ms": round(percentile(rename_ms, 0.5), 1),
            "p99_ms": round(percentile(rename_ms, 0.99), 1),
            "max_ms": round(max(rename_ms), 1),
        },
        "in_place": {
            "n": in_place,
            "p50_ms": round(percentile(inplace_ms, 0.5), 1),
            "p99_ms": round(percentile(inplace_ms, 0.99), 1),
            "max_ms": round(max(inplace_ms), 1),
        },
    }
