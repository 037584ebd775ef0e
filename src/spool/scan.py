"""Walk the inbox: the filesystem is the truth, watcher events are only hints.

``lstat`` only; symlinks are never followed (neither files nor folders), other
devices are not entered, and each directory is visited once (bind-mount loops).
"""

from __future__ import annotations

import enum
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from spool import names
from spool.settle import Identity

MAX_DEPTH = 32


class Kind(enum.StrEnum):
    candidate = "candidate"
    """A name that becomes a job once settled."""
    temp = "temp"
    """Still being written under the rename convention."""
    sidecar = "sidecar"
    """Options for the input of the same name without ``.json``."""
    special = "special"
    """Symlink, FIFO, socket or device: refused (quarantined), never opened."""


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
    if not stat.S_ISREG(mode):
        return Kind.special
    if names.is_sidecar(name):
        return Kind.sidecar
    return Kind.candidate


def scan(inbox: Path, *, under: str = "") -> Iterator[Entry]:
    """Yield every entry below ``inbox`` (or below ``inbox/under``)."""
    try:
        root_dev = os.lstat(inbox).st_dev
    except FileNotFoundError:
        return
    start = inbox / under if under else inbox
    seen: set[tuple[int, int]] = set()
    yield from _walk(start, under, root_dev, seen, 0)


def _walk(path: Path, rel: str, dev: int, seen: set[tuple[int, int]], depth: int) -> Iterator[Entry]:
    try:
        st = os.lstat(path)
    except OSError:
        return
    if not stat.S_ISDIR(st.st_mode) or st.st_dev != dev or depth > MAX_DEPTH:
        return
    if (st.st_dev, st.st_ino) in seen:
        return
    seen.add((st.st_dev, st.st_ino))
    try:
        with os.scandir(path) as it:
            entries = list(it)
    except OSError:
        return
    for entry in sorted(entries, key=lambda e: e.name):
        child_rel = f"{rel}/{entry.name}" if rel else entry.name
        try:
            est = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        if stat.S_ISDIR(est.st_mode):
            if not entry.name.startswith("."):
                yield from _walk(Path(entry.path), child_rel, dev, seen, depth + 1)
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
