"""Hand-over tickets: how a file handed to the inbox knows the job it becomes.

Whoever hands a file over (``spool submit``, an HTTP upload) picks the job id
itself and writes ``inbox/.<name>.ticket`` before the file appears under
``<name>``: ``{"job": "<12 hex>", "nonce": "<32 hex>"}``.  The daemon's intake,
when it submits ``<name>``, takes that id if it is well formed and unused and
records the nonce in ``job.submitted``; the submitter then follows the job by
id and knows by the nonce that the job is its file, not an earlier file of
the same name.  A ticket is a dot-file, so nothing else in the inbox ever
treats it as an input.

Tickets come from whoever can write to the inbox, so they are read like
sidecars: no symlinks followed, no FIFOs opened, at most :data:`MAX_BYTES`,
a strict shape.  A bad or stale ticket costs nothing but the id: the job gets
a fresh one (and the submitter, finding another nonce, says so).
"""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ground.errors import SpoolError
from spool import fsio

SUFFIX = ".ticket"
MAX_BYTES = 1024
JOB_ID = re.compile(r"[0-9a-f]{12}")
NONCE = re.compile(r"[0-9a-f]{32}")


class BadTicket(SpoolError):
    """A ticket file that is not a regular file of the expected shape."""

    def __init__(self, path: Path, problem: str) -> None:
        self.problem = problem
        super().__init__(f"{path}: the hand-over ticket {problem}")


@dataclass(frozen=True)
class Ticket:
    """The job id a hand-over chose and the nonce that proves the job is that hand-over's.

    ``name`` is the inbox-relative name the file was handed over as (it may be
    ``name (2).wav`` when the name was taken); it is not part of the file.
    """

    job: str
    nonce: str
    name: str = ""

    def to_bytes(self) -> bytes:
        return json.dumps({"job": self.job, "nonce": self.nonce}, separators=(",", ":")).encode() + b"\n"


def new(name: str = "") -> Ticket:
    """A fresh ticket: a random job id like the daemon's own, and 128 random bits of nonce."""
    return Ticket(secrets.token_hex(6), secrets.token_hex(16), name)


def path_for(inbox: Path, rel: str) -> Path:
    head, base = posixpath.split(rel)
    return inbox / head / f".{base}{SUFFIX}"


def write(inbox: Path, ticket: Ticket) -> Path:
    """Write the ticket of ``ticket.name`` durably (temp name, fsync, rename, fsync of the folder)."""
    path = path_for(inbox, ticket.name)
    fsio.atomic_write(path, ticket.to_bytes())
    return path


def parse(raw: bytes, path: Path, name: str = "") -> Ticket:
    if len(raw) > MAX_BYTES:
        raise BadTicket(path, f"is larger than {MAX_BYTES} bytes")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadTicket(path, "is not JSON") from None
    if not isinstance(doc, dict) or set(doc) != {"job", "nonce"}:
        raise BadTicket(path, 'is not {"job": ..., "nonce": ...}')
    job, nonce = doc["job"], doc["nonce"]
    if not (isinstance(job, str) and JOB_ID.fullmatch(job)):
        raise BadTicket(path, "names no valid job id (12 hex digits)")
    if not (isinstance(nonce, str) and NONCE.fullmatch(nonce)):
        raise BadTicket(path, "holds no valid nonce (32 hex digits)")
    return Ticket(job, nonce, name)


def read(inbox: Path, rel: str) -> Ticket | None:
    """The ticket of ``inbox/rel``, None when there is none; :class:`BadTicket` when it is unusable."""
    path = path_for(inbox, rel)
    try:
        fd = fsio.open_regular(path)
    except FileNotFoundError:
        return None
    except fsio.NotRegularFile as e:
        raise BadTicket(path, f"is a {e.kind}, not a regular file") from None
    except OSError as e:
        raise BadTicket(path, f"cannot be read ({e.strerror})") from None
    with os.fdopen(fd, "rb") as fh:
        raw = fh.read(MAX_BYTES + 1)
    return parse(raw, path, rel)


def accept(inbox: Path, rel: str, is_free: Callable[[str], bool]) -> tuple[Ticket | None, str | None]:
    """For intake: ``(ticket, None)`` when ``inbox/rel`` has a usable ticket, ``(None, why)`` when not.

    ``(None, None)``: no ticket at all (a file dropped by hand).  Usable means
    well formed and naming a job id no job has yet (``is_free``).
    """
    try:
        ticket = read(inbox, rel)
    except BadTicket as e:
        return None, e.problem
    if ticket is None:
        return None, None
    if not is_free(ticket.job):
        return None, f"names job {ticket.job}, which exists already (a stale ticket)"
    return ticket, None


def discard(inbox: Path, rel: str) -> None:
    """Remove the ticket of ``inbox/rel`` once its job is recorded; a missing one is fine."""
    with contextlib.suppress(OSError):
        os.unlink(path_for(inbox, rel))
