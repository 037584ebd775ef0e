"""When is a dropped file complete?  The hand-off contract, as a pure rule.

A file counts when any of these holds (first match wins):

1. **Renamed from a temp name.**  The producer followed the rename convention:
   its inode was seen earlier under ``x.part`` / ``.x`` in the inbox, or the
   watcher reported the temp name's removal in the same batch as this name's
   arrival.
2. **Not modified for ``settle_s`` by the file's own clock** (``mtime``), when
   ``trust_mtime`` is on: a file moved into the inbox after it was written, or
   a ``cp -p`` that finished.  Turn it off on shares whose clocks disagree.
3. **Unchanged across two looks at least ``settle_s`` apart**: the identity
   ``(dev, inode, size, mtime_ns, ctime_ns)`` is the same in both.

A file not settled yet is remembered and looked at again, never dropped.  A
zero-byte file is never complete on arrival (someone may be about to write);
it is taken by rule 3 and then quarantined as empty.  What a writer does after
we took the file is caught later: a transcript is published only if the input
still has the identity it was transcribed from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

RENAME, MTIME, LOOKS = "rename", "mtime", "looks"


@dataclass(frozen=True)
class Identity:
    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int


@dataclass
class _Seen:
    identity: Identity
    since: float  # monotonic time this identity was first seen


@dataclass
class Settler:
    """Remembers files that are not settled yet.  Time is passed in."""

    settle_s: float
    trust_mtime: bool = True
    _seen: dict[str, _Seen] = field(default_factory=dict)
    _temp_inodes: dict[tuple[int, int], float] = field(default_factory=dict)

    def saw_temp(self, dev: int, ino: int, now: float) -> None:
        """Remember that inode (dev, ino) lived under a temp name at ``now``."""
        self._temp_inodes[(dev, ino)] = now

    def observe(self, rel: str, ident: Identity, now: float, wall_ns: int, renamed: bool = False) -> str | None:
        """Look at ``rel`` with identity ``ident``: None while incomplete, else how it was judged complete.

        ``rename`` means complete by the producer's word; ``mtime`` and ``looks`` mean only that it
        stood still for ``settle_s``, so a writer may still be pausing (the daemon holds its outputs
        until the file has been quiet for ``recent_s``).
        """
        if ident.size > 0 and (renamed or (ident.dev, ident.ino) in self._temp_inodes):
            self._forget(rel, ident)
            return RENAME
        if (
            self.trust_mtime
            and ident.size > 0
            and wall_ns - ident.mtime_ns >= 0
            and wall_ns - ident.mtime_ns >= self.settle_s * 1e9
        ):
            self._forget(rel, ident)
            return MTIME
        seen = self._seen.get(rel)
        if seen is None or seen.identity != ident:
            self._seen[rel] = _Seen(ident, now)
            return None
        if now - seen.since >= self.settle_s:
            self._forget(rel, ident)
            return LOOKS
        return None

    def next_look(self, now: float) -> float | None:
        """Seconds until the earliest remembered file may settle (None: nothing pending)."""
        if not self._seen:
            return None
        return max(0.0, min(s.since + self.settle_s for s in self._seen.values()) - now)

    def pending(self) -> list[str]:
        return sorted(self._seen)

    def gone(self, rel: str) -> None:
        self._seen.pop(rel, None)

    def prune(self, present: set[str], now: float, temp_ttl_s: float = 3600.0) -> None:
        """Forget files no longer in the inbox and temp inodes not renamed within ``temp_ttl_s``."""
        for rel in list(self._seen):
            if rel not in present:
                del self._seen[rel]
        for key, t in list(self._temp_inodes.items()):
            if now - t > temp_ttl_s:
                del self._temp_inodes[key]

    def _forget(self, rel: str, ident: Identity) -> None:
        self._seen.pop(rel, None)
        self._temp_inodes.pop((ident.dev, ident.ino), None)
