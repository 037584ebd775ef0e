"""Walk the inbox: the filesystem is the truth, watcher events are only hints.

``lstat`` only; symlinks are never followed (neither files nor folders), other
devices are not entered, and each directory is visited once (bind-mount loops).
"""

from __future__ import annotations

import collections
import enum
import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from spool import names
from spool.settle import Identity

MAX_DEPTH = 256  # folders below the inbox; deeper ones are reported (unreachable), never silently skipped


class Kind(enum.StrEnum):
    candidate = "candidate"
    """A name that becomes a job once settled."""
    temp = "temp"
    """Still being written under the rename convention."""
    sidecar = "sidecar"
    """Options for the input of the same name without ``.json``."""
    special = "special"
    """Symlink, FIFO, socket or device: refused (quarantined), never opened."""
    unreachable = "unreachable"
    """A folder nested too deep, or a path too long for the system to open: reported, left where it is."""


@dataclass(frozen=True)
class Entry:
    rel: str  # path relative to the inbox, '/'-separated
    kind: Kind
    identity: Identity
    mode: int


def identity_of(st: os.stat_result) -> Identity:
    return Identity(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def classify(name: str, mode: int) -> Kind | None:
    if names.is_ignored(name):
        return None
    if names.is_temp(name):
        return Kind.temp if stat.S_ISREG(mode) else None
    if names.is_sidecar(name):
        return Kind.sidecar  # even a symlink or FIFO: it fails together with its audio, never on its own
    if not stat.S_ISREG(mode):
        return Kind.special
    return Kind.candidate


def scan(inbox: Path, *, under: str = "") -> Iterator[Entry]:
    """Yield every entry below ``inbox`` (or below ``inbox/under``), breadth first, without recursion."""
    try:
        root_dev = os.lstat(inbox).st_dev
    except FileNotFoundError:
        return
    seen: set[tuple[int, int]] = set()
    pending: collections.deque[tuple[Path, str, int]] = collections.deque(
        [(inbox / under if under else inbox, under, 0)]
    )
    while pending:
        path, rel, depth = pending.popleft()
        yield from _folder(path, rel, depth, root_dev, seen, pending)


def _folder(
    path: Path,
    rel: str,
    depth: int,
    dev: int,
    seen: set[tuple[int, int]],
    pending: collections.deque[tuple[Path, str, int]],
) -> Iterator[Entry]:
    try:
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode) or st.st_dev != dev or (st.st_dev, st.st_ino) in seen:
            return
        seen.add((st.st_dev, st.st_ino))
        if depth > MAX_DEPTH:
            yield Entry(rel, Kind.unreachable, identity_of(st), st.st_mode)
            return
        with os.scandir(path) as it:
            entries = list(it)
    except OSError as e:
        if e.errno == errno.ENAMETOOLONG:
            yield Entry(rel, Kind.unreachable, Identity(dev, 0, 0, 0, 0), stat.S_IFDIR)
        return
    for entry in sorted(entries, key=lambda e: e.name):
        child_rel = f"{rel}/{entry.name}" if rel else entry.name
        try:
            est = entry.stat(follow_symlinks=False)
        except OSError as e:
            if e.errno == errno.ENAMETOOLONG:
                yield Entry(child_rel, Kind.unreachable, Identity(dev, 0, 0, 0, 0), 0)
            continue
        if stat.S_ISDIR(est.st_mode):
            if not entry.name.startswith("."):
                pending.append((Path(entry.path), child_rel, depth + 1))
            continue
        kind = classify(entry.name, est.st_mode)
        if kind is not None:
            yield Entry(child_rel, kind, identity_of(est), est.st_mode)


def look(inbox: Path, rel: str) -> Entry | None:
    """One ``lstat`` of one inbox path (for watcher hints)."""
    try:
        st = os.lstat(inbox / rel)
    except OSError:
        return None
    if stat.S_ISDIR(st.st_mode):
        return None
    kind = classify(rel.rsplit("/", 1)[-1], st.st_mode)
    return Entry(rel, kind, identity_of(st), st.st_mode) if kind else None
