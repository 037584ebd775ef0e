"""The real watcher (watchfiles, inotify here) reports drops, renames and folders; survives errors."""

from __future__ import annotations

import os
import queue
from pathlib import Path

from spool.watcher import Hint, InboxWatcher
from tests.conftest import wait_for


def collect(inbox: Path) -> tuple[InboxWatcher, queue.Queue[Hint]]:
    hints: queue.Queue[Hint] = queue.Queue()
    w = InboxWatcher(inbox, hints.put, lambda e, n: None)
    w.start()
    return w, hints


def seen(hints: queue.Queue[Hint], rel: str) -> bool:
    while True:
        try:
            h = hints.get_nowait()
        except queue.Empty:
            return False
        if rel in h.added | h.modified:
            return True


def poke(path: Path, hints: queue.Queue[Hint], rel: str) -> bool:
    """Write ``path`` and report whether the watcher has reported ``rel`` yet."""
    path.write_bytes(b"x")
    return seen(hints, rel)


def test_rename_into_the_inbox_is_reported_with_the_temp_deletion(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    w, hints = collect(inbox)
    try:
        # Watcher readiness has no signal; keep touching a probe file until one is reported.
        wait_for(lambda: poke(inbox / "probe", hints, "probe"), 10)
        (inbox / "a.wav.part").write_bytes(b"data")
        os.rename(inbox / "a.wav.part", inbox / "a.wav")
        batch: list[Hint] = []

        def got_rename() -> bool:
            while not hints.empty():
                batch.append(hints.get_nowait())
            return any("a.wav" in h.added for h in batch)

        wait_for(got_rename, 10, what="a.wav added")
        assert any("a.wav.part" in h.deleted or "a.wav.part" in h.added for h in batch)
    finally:
        w.stop()
    assert not w.alive


def test_new_subfolders_are_watched(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    w, hints = collect(inbox)
    try:
        wait_for(lambda: poke(inbox / "probe", hints, "probe"), 10)
        (inbox / "new").mkdir()
        wait_for(lambda: poke(inbox / "new" / "probe", hints, "new/probe"), 10)
    finally:
        w.stop()


def test_a_dying_watcher_is_restarted(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    errors: list[int] = []
    calls = {"n": 0}

    def on_hint(hint: Hint) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("simulated watcher failure")

    w = InboxWatcher(inbox, on_hint, lambda e, n: errors.append(n))
    w.start()
    try:

        def restarted() -> bool:
            (inbox / "probe").write_bytes(b"x")
            return calls["n"] >= 2

        wait_for(restarted, 15, what="restarted watcher")
        assert errors == [1]
    finally:
        w.stop()
