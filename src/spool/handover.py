"""Hand a file over to the inbox and learn its job id: what ``spool submit`` and uploads share.

The steps, each the commit point of the next (the rename convention of
DESIGN.md plus a ticket, see :mod:`spool.tickets`):

1. reserve a free name: ``.<name>.part`` created exclusively (``O_EXCL``), so
   two hand-overs of ``jfk.flac`` at once get ``jfk.flac`` and ``jfk (2).flac``;
2. copy the bytes into it and fsync;
3. write the ticket ``.<name>.ticket`` (temp name, fsync, rename);
4. link ``.<name>.part`` to ``<name>`` (a link never replaces a file someone
   else dropped under that name meanwhile; then the next free name is tried),
   remove the ``.part`` name, fsync the inbox.

Any failure on the way (a full disk, a permission, Ctrl-C) removes what this
hand-over created: the inbox is as it was.  Nothing here knows about the
daemon or the store; the caller decides what to do with the ticket.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import stat
from pathlib import Path
from typing import BinaryIO

from ground.durable import fsync_dir
from ground.errors import SpoolError
from spool import fsio, names, tickets

MAX_NAME_BYTES = 255 - len(".") - len(tickets.SUFFIX) - len(" (999)")
CHUNK = 1 << 20


class RefusedName(SpoolError):
    """A name the daemon would never take (temp, hidden, sidecar, OS junk) or cannot hold a ticket."""

    def __init__(self, name: str, why: str) -> None:
        super().__init__(f"{name!r}: {why}; the daemon would never take it, so nothing was handed over")


class NotAFile(SpoolError):
    """The source is missing, or not a regular file (a directory, FIFO, device)."""

    def __init__(self, source: str, what: str) -> None:
        super().__init__(f"{source}: {what}; only regular files can be submitted")


class NoInbox(SpoolError):
    def __init__(self, inbox: Path) -> None:
        super().__init__(f"{inbox} does not exist; run `spool init --root {inbox.parent}` first")


class HandOverFailed(SpoolError):
    """The operating system refused a step (disk full, permissions); nothing was left in the inbox."""

    exit_code = 4

    def __init__(self, name: str, inbox: Path, error: OSError) -> None:
        self.errno = error.errno
        what = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded"}.get(
            error.errno or 0, error.strerror or str(error)
        )
        where = f" ({error.filename})" if error.filename else ""
        super().__init__(f"could not hand {name!r} over to {inbox}: {what}{where}; nothing was left in the inbox")


def check_name(name: str) -> None:
    """Refuse, before anything is copied, a name the daemon ignores or that leaves no room for its ticket."""
    if not name or "/" in name or "\x00" in name or name in (".", ".."):
        raise RefusedName(name, "not a file name")
    if names.is_temp(name):
        raise RefusedName(name, "a hidden or temporary name (.x, *.part, *.tmp, *~ ...)")
    if names.is_sidecar(name):
        raise RefusedName(name, "a sidecar name (*.json holds the options of the file it is named after)")
    if names.is_ignored(name):
        raise RefusedName(name, "a name operating systems use for their own files")
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise RefusedName(name, f"longer than {MAX_NAME_BYTES} bytes")


def open_source(source: Path) -> int:
    """A read descriptor on ``source`` (symlinks followed: the user named it), if it is a regular file."""
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # NONBLOCK: a FIFO must not hang us
    except (FileNotFoundError, NotADirectoryError):
        raise NotAFile(str(source), "no such file") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise NotAFile(str(source), kind)
    os.set_blocking(fd, True)
    return fd


def hand_over(inbox: Path, source: Path | BinaryIO, name: str, sidecar: bytes | None = None) -> tickets.Ticket:
    """Copy ``source`` (a path or an open binary stream) into ``inbox`` as ``name``; return its ticket.

    ``ticket.name`` is the name it got (``name (2).ext`` when ``name`` is taken);
    ``ticket.job`` the job id the daemon will give it.  ``sidecar``: the job's
    options (JSON bytes), written as ``<name it got>.json`` before the file
    appears under its name, as the daemon wants a sidecar (an upload's options).
    """
    check_name(name)
    if not inbox.is_dir():
        raise NoInbox(inbox)
    if isinstance(source, Path):
        with os.fdopen(open_source(source), "rb") as stream:
            return _hand_over(inbox, stream, name, sidecar)
    return _hand_over(inbox, source, name, sidecar)


def _hand_over(inbox: Path, stream: BinaryIO, name: str, sidecar: bytes | None = None) -> tickets.Ticket:
    created: list[Path] = []
    try:
        rel, part = _reserve(inbox, _candidates(name), created, own_sidecar=sidecar is not None)
        _fill(part, stream)
        while True:
            ticket = tickets.new(rel)
            created.append(tickets.write(inbox, ticket))
            side = _write_sidecar(inbox, rel, sidecar, created)
            if _place(part, inbox / rel):
                break
            created.remove(tickets.path_for(inbox, rel))
            tickets.discard(inbox, rel)  # someone dropped a file of that name meanwhile: not ours to name
            if side is not None:
                created.remove(side)
                _remove([side])
            rel, spare = _reserve(inbox, _candidates(name, after=rel), created, own_sidecar=sidecar is not None)
            os.rename(part, spare)  # our bytes onto the new reservation
            created.remove(part)
            part = spare
    except OSError as e:
        _remove(created)
        raise HandOverFailed(name, inbox, e) from e
    except BaseException:
        _remove(created)
        raise
    # handed over: what is left is tidying, and a failure of it must not undo the hand-over
    with contextlib.suppress(OSError):
        os.unlink(part)  # the second name of the linked file
    with contextlib.suppress(OSError):
        fsync_dir(inbox)
    return ticket


def _write_sidecar(inbox: Path, rel: str, sidecar: bytes | None, created: list[Path]) -> Path | None:
    """The options of ``rel`` as its sidecar, durably, before ``rel`` itself appears (None: no options)."""
    if sidecar is None:
        return None
    path = inbox / names.sidecar_of(rel)
    if os.path.lexists(path):  # someone else's sidecar for this name: never replaced
        raise FileExistsError(errno.EEXIST, "a sidecar of that name exists", str(path))
    fsio.atomic_write(path, sidecar)
    created.append(path)
    return path


def _candidates(name: str, after: str | None = None) -> list[str]:
    root, ext = posixpath.splitext(name)
    if not root:
        root, ext = name, ""
    out = [names.numbered(root, n) + ext for n in range(1, 1000)]
    return out[out.index(after) + 1 :] if after in out else out


def _reserve(inbox: Path, candidates: list[str], created: list[Path], own_sidecar: bool = False) -> tuple[str, Path]:
    """The first candidate free in the inbox, reserved by creating its ``.part`` exclusively.

    ``own_sidecar``: the hand-over brings its options, so a name with someone else's sidecar is not free.
    """
    for rel in candidates:
        part = inbox / f".{rel}.part"
        taken = [inbox / rel, tickets.path_for(inbox, rel)] + ([inbox / names.sidecar_of(rel)] if own_sidecar else [])
        if any(os.path.lexists(p) for p in taken):
            continue
        try:
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640)
        except FileExistsError:
            continue  # another hand-over of the same name is under way
        os.close(fd)
        created.append(part)
        return rel, part
    raise FileExistsError(errno.EEXIST, "no free name left", str(inbox / candidates[-1]) if candidates else None)


def _fill(part: Path, stream: BinaryIO) -> None:
    with open(part, "wb") as out:
        while chunk := stream.read(CHUNK):
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())


def _place(part: Path, final: Path) -> bool:
    """Give ``part`` its final name unless something else has it; False when taken."""
    try:
        os.link(part, final)
        return True
    except FileExistsError:
        return False
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK):
            raise
    # a filesystem without hard links (FAT, some shares): rename after a look; the race is left only there
    if os.path.lexists(final):
        return False
    os.rename(part, final)
    return True


def _remove(paths: list[Path]) -> None:
    for p in reversed(paths):
        with contextlib.suppress(OSError):
            os.unlink(p)
