"""Server-Sent Events: the event log (resumable by position) and a job's growing log.

``/api/v1/events`` sends each event with ``id: <position>``, so a client that
reconnects with ``Last-Event-ID`` (browsers do) or ``?since=`` misses nothing
and sees nothing twice.  The store is polled from a thread; sse-starlette
keeps the connection alive (comment pings) and stops when the client goes.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool

from schema import events as ev
from schema.errors import StoreError
from schema.mapper import to_jsonable
from spool import names
from web.face import Face

POLL_S = 0.25
BATCH = 500
LOG_CHUNK = 64 * 1024


async def events(face: Face, since: int, job_id: str | None = None) -> AsyncIterator[dict[str, Any]]:
    after = since
    stream = ev.job_stream(job_id) if job_id else None
    while True:
        try:
            batch = await run_in_threadpool(face.store.read_all, after, BATCH)
        except StoreError:
            batch = []  # busy or restarting: the next look finds what was missed
        for rec in batch:
            after = rec.position
            if stream is None or rec.stream == stream:
                data = names.json_safe(json.dumps(to_jsonable(rec), ensure_ascii=False, default=str))
                yield {"id": str(rec.position), "event": rec.type, "data": data}
        if len(batch) < BATCH:
            await asyncio.sleep(POLL_S)


def tail_lines(path: Path, n: int) -> tuple[str, int]:
    """The last ``n`` lines of ``path`` (all when 0) and the size they were read at."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return "", 0
    lines = data.decode("utf-8", "replace").splitlines(keepends=True)
    return "".join(lines[-n:] if n else lines), len(data)


def _read_from(path: Path, offset: int) -> tuple[str, int]:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "", offset
    if size < offset:  # rotated: the new file from its start
        offset = 0
    if size == offset:
        return "", offset
    with open(path, "rb") as fh:
        fh.seek(offset)
        chunk = fh.read(min(size - offset, LOG_CHUNK))
    return chunk.decode("utf-8", "replace"), offset + len(chunk)


async def log_follow(face: Face, job_id: str, n: int) -> AsyncIterator[dict[str, Any]]:
    """The tail, then what the worker writes, as ``log`` events; ``end`` once the job is finished and read."""
    path = face.layout.job_log(job_id)
    text, offset = await run_in_threadpool(tail_lines, path, n)
    if text:
        yield {"event": "log", "data": json.dumps({"text": text})}
    while True:
        job = await run_in_threadpool(face.store.job, job_id)
        chunk, offset = await run_in_threadpool(_read_from, path, offset)
        if chunk:
            yield {"event": "log", "data": json.dumps({"text": chunk})}
            continue
        if job is None or job.state.terminal:
            yield {"event": "end", "data": json.dumps({"state": job.state.value if job else None})}
            return
        await asyncio.sleep(POLL_S)


def log_exists(face: Face, job_id: str) -> bool:
    return os.path.exists(face.layout.job_log(job_id))
