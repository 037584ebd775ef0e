"""Uploads: streamed to the spool's disk under a size limit, then handed over exactly as ``spool submit`` does.

The multipart body is parsed as it arrives (python-multipart's streaming
parser), never held in memory, and written to ``state/uploads/`` on the spool's
own file system; past ``web_max_upload_mb`` or below the disk floor
(``free_disk_floor_mb``) the upload stops with 413 / 507 and leaves nothing.
Then :func:`spool.handover.hand_over` copies it into the inbox by the rename
convention with a ticket (and the options as a sidecar): the job id is known
at once.  The answer waits, briefly, until the daemon has recorded the job, so
an acknowledged upload is a recorded job whenever a daemon runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import posixpath
import secrets
import shutil
import struct
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request

from processor import options as opt
from schema import events as ev
from schema.errors import StoreError
from schema.jobs import Job
from spool import handover, names
from spool.tickets import Ticket
from web.errors import ApiError
from web.face import Face

FIELD_MAX = 64 * 1024  # a text field (options, prompt): more is not a form field
MAX_FIELDS = 32
FLOOR_CHECK_BYTES = 8 << 20  # free space looked at again after this much
DRAIN_MAX = 16 << 20  # what of a refused upload's rest is still read, so that the client gets its 413
ACK_WAIT_S = 10.0  # how long an upload's answer waits for the daemon to record the job
POLL_S = 0.1


@dataclass
class Upload:
    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    path: Path | None = None
    size: int = 0

    def discard(self) -> None:
        if self.path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
            self.path = None


def uploads_dir(face: Face) -> Path:
    d = face.layout.state / "uploads"
    d.mkdir(mode=0o750, parents=True, exist_ok=True)
    return d


def clear_leftovers(face: Face) -> None:
    """Uploads a killed web process left half-received: never handed over, so nobody's."""
    d = face.layout.state / "uploads"
    for p in d.glob(".upload-*") if d.is_dir() else []:
        with contextlib.suppress(OSError):
            p.unlink()


class _Receiver:
    """python-multipart callbacks: text fields kept (small), the one file part written to disk."""

    def __init__(self, face: Face, file_fields: tuple[str, ...], limit: int) -> None:
        self.face, self.file_fields, self.limit = face, file_fields, limit
        self.up = Upload()
        self.headers: dict[str, bytes] = {}
        self._hname = b""
        self._hvalue = b""
        self._name: str | None = None
        self._buf: bytearray | None = None
        self._out: Any = None
        self._since_check = 0

    def callbacks(self) -> dict[str, Any]:
        return {
            "on_part_begin": self._begin,
            "on_header_field": lambda d, s, e: setattr(self, "_hname", self._hname + d[s:e]),
            "on_header_value": lambda d, s, e: setattr(self, "_hvalue", self._hvalue + d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_done,
            "on_part_data": self._data,
            "on_part_end": self._end,
        }

    def _begin(self) -> None:
        self.headers, self._name, self._buf, self._out = {}, None, None, None

    def _header_end(self) -> None:
        self.headers[self._hname.decode("latin-1").lower()] = self._hvalue
        self._hname, self._hvalue = b"", b""

    def _headers_done(self) -> None:
        _, params = parse_options_header(self.headers.get("content-disposition", b""))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        self._name = name
        if name in self.file_fields and b"filename" in params:
            if self.up.path is not None:
                raise ApiError(400, "bad_request", "one file per request")
            self.up.filename = params[b"filename"].decode("utf-8", "replace")
            path = uploads_dir(self.face) / f".upload-{secrets.token_hex(8)}"
            self._out = open(path, "xb")  # noqa: SIM115 - closed in _end or by discard
            self.up.path = path
        else:
            if len(self.up.fields) >= MAX_FIELDS:
                raise ApiError(400, "bad_request", f"more than {MAX_FIELDS} form fields")
            self._buf = bytearray()

    def _data(self, data: bytes, start: int, end: int) -> None:
        chunk = data[start:end]
        if self._out is not None:
            self.up.size += len(chunk)
            if self.up.size > self.limit:
                raise ApiError(
                    413, "too_large", f"the upload is larger than {self.limit >> 20} MiB (web_max_upload_mb)"
                )
            self._since_check += len(chunk)
            if self._since_check >= FLOOR_CHECK_BYTES:
                self._since_check = 0
                check_floor(self.face, 0)
            self._out.write(chunk)
        elif self._buf is not None:
            self._buf += chunk
            if len(self._buf) > FIELD_MAX:
                raise ApiError(413, "too_large", f"form field {self._name!r} is larger than {FIELD_MAX} bytes")

    def _end(self) -> None:
        if self._out is not None:
            self._out.flush()
            self._out.close()
            self._out = None
        elif self._buf is not None and self._name is not None:
            self.up.fields[self._name] = self._buf.decode("utf-8", "replace")
            self._buf = None

    def close(self) -> None:
        if self._out is not None:
            with contextlib.suppress(OSError):
                self._out.close()
            self._out = None


def too_large(limit: int) -> ApiError:
    return ApiError(413, "too_large", f"the upload is larger than {limit >> 20} MiB (web_max_upload_mb)")


def check_floor(face: Face, incoming: int) -> None:
    """Refuse (507) what would take the spool's disk below ``free_disk_floor_mb``, as intake pauses there."""
    floor = face.settings.free_disk_floor_mb << 20
    try:
        free = shutil.disk_usage(face.layout.inbox).free
    except OSError:
        return
    if free - incoming < floor:
        raise ApiError(
            507, "disk_full", f"the spool's disk has {free >> 20} MiB free, below the floor of {floor >> 20} MiB"
        )


async def receive(request: Request, face: Face, file_fields: tuple[str, ...]) -> Upload:
    """The multipart body of ``request``: its text fields, and its file streamed to disk."""
    ctype, params = parse_options_header(request.headers.get("content-type", ""))
    boundary = params.get(b"boundary")
    if ctype != b"multipart/form-data" or not boundary:
        raise ApiError(415, "unsupported_media_type", "send multipart/form-data with a file field")
    limit = face.settings.web_max_upload_mb << 20
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit + DRAIN_MAX:
        raise too_large(limit)  # far too large: refused before a byte is read
    check_floor(face, int(length) if length.isdigit() else 0)
    rx = _Receiver(face, file_fields, limit)
    parser = MultipartParser(boundary, rx.callbacks())  # type: ignore[arg-type]  # a TypedDict of callables
    try:
        await _feed(request, parser)
    except ClientDisconnect:
        rx.close()
        rx.up.discard()
        raise ApiError(400, "disconnected", "the client went away before the upload was complete") from None
    except BaseException:
        rx.close()
        rx.up.discard()
        raise
    rx.close()
    if rx.up.path is None:
        raise ApiError(422, "no_file", f"no file in the form (field {' or '.join(file_fields)})")
    return rx.up


PCM_RATE = 16000  # whisper-asr-webservice's encode=false: raw signed 16-bit mono PCM at this rate


def as_wav(up: Upload) -> None:
    """Raw PCM (``/asr?encode=false``, as Bazarr sends after its own ffmpeg) put into a WAV container.

    The daemon takes files, and a file needs a container to say what it holds: a 44-byte header in
    front of the samples (an odd trailing byte dropped) makes it a ``.wav`` that PyAV decodes as it is.
    """
    assert up.path is not None
    size = up.size - (up.size % 2)
    fmt = struct.pack("<HHIIHH", 1, 1, PCM_RATE, PCM_RATE * 2, 2, 16)  # PCM, mono, rate, bytes/s, align, bits
    riff = struct.pack("<4sI4s4sI", b"RIFF", 36 + size, b"WAVE", b"fmt ", 16)
    header = riff + fmt + struct.pack("<4sI", b"data", size)
    wav = up.path.with_name(up.path.name + ".wav")
    with open(up.path, "rb") as src, open(wav, "xb") as out:
        out.write(header)
        shutil.copyfileobj(src, out, 1 << 20)
        out.truncate(len(header) + size)
    os.unlink(up.path)
    up.path = wav
    name = up.filename or "audio"
    up.filename = name if name.lower().endswith(".wav") else name + ".wav"


async def _feed(request: Request, parser: MultipartParser) -> None:
    """The body into the parser; after a 413 the rest of a body not much larger is read and dropped.

    A client still sending when the server answers and closes may see a reset instead of the
    answer; reading up to :data:`DRAIN_MAX` more lets it read its 413.
    """
    refused: ApiError | None = None
    drained = 0
    async for chunk in request.stream():
        if refused is None:
            try:
                parser.write(chunk)
            except ApiError as e:
                if e.status != 413:
                    raise
                refused = e
        else:
            drained += len(chunk)
            if drained > DRAIN_MAX:
                break
    if refused is not None:
        raise refused
    parser.finalize()


def safe_name(filename: str | None) -> str:
    """The uploaded name as the spool would take it: a base name, no control characters, short enough."""
    raw = (filename or "").replace("\\", "/")
    base = posixpath.basename(raw).strip()
    base = "".join(c for c in unicodedata.normalize("NFC", base) if not unicodedata.category(c).startswith("C"))
    if not base or base in (".", ".."):
        base = "upload"
    root, ext = posixpath.splitext(base)
    if len(base.encode()) > handover.MAX_NAME_BYTES:
        base = names.fit_bytes(root, handover.MAX_NAME_BYTES - len(ext.encode())) + ext
    try:
        handover.check_name(base)
    except handover.RefusedName as e:
        raise ApiError(400, "refused_name", str(e)) from None
    return base


def parse_options(text: str | None) -> dict[str, Any]:
    """The ``options`` field: a JSON object of job options, checked by the sidecar schema."""
    if not text:
        return {}
    try:
        doc = json.loads(text)
    except ValueError:
        raise ApiError(400, "invalid_options", "options is not JSON") from None
    return check_options(doc)


def check_options(doc: Any) -> dict[str, Any]:
    try:
        return opt.validate(doc, source="options")
    except opt.InvalidOptions as e:
        raise ApiError(400, "invalid_options", e.problem) from None


async def hand(face: Face, up: Upload, options: dict[str, Any]) -> Ticket:
    """Hand the received file to the inbox (with its options as a sidecar); the temp copy goes either way."""
    name = safe_name(up.filename)
    assert up.path is not None
    sidecar = json.dumps(options).encode() if options else None
    try:
        with open(up.path, "rb") as fh:
            return await run_in_threadpool(handover.hand_over, face.layout.inbox, fh, name, sidecar)
    except handover.HandOverFailed as e:
        full = e.errno in (errno.ENOSPC, errno.EDQUOT)
        raise ApiError(507 if full else 503, "disk_full" if full else "handover_failed", str(e)) from None
    except handover.NoInbox as e:
        raise ApiError(503, "no_inbox", str(e)) from None
    finally:
        up.discard()


async def recorded(face: Face, ticket: Ticket, wait_s: float = ACK_WAIT_S) -> Job | None:
    """The job the daemon recorded for ``ticket`` (its nonce checked); None while not recorded yet."""
    deadline = time.monotonic() + wait_s
    running = await run_in_threadpool(face.daemon_running)
    while True:
        try:
            job = await run_in_threadpool(face.store.job, ticket.job)
        except StoreError:
            job = None
        if job is not None:
            first = await run_in_threadpool(face.store.read, ev.job_stream(job.id))
            if not first or getattr(first[0].event, "ticket", None) != ticket.nonce:
                raise ApiError(409, "ticket_refused", f"job {ticket.job} is not this upload's; see GET /api/v1/jobs")
            return job
        if not running or time.monotonic() >= deadline:
            return None
        await asyncio.sleep(POLL_S)
