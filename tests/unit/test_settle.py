"""The hand-off contract with a fake clock: when a dropped file counts as complete."""

from __future__ import annotations

from spool.settle import Identity, Settler

SETTLE = 2.0
NOW_NS = 1_000_000 * 10**9


def ident(size: int = 100, mtime_ns: int = NOW_NS, ino: int = 7) -> Identity:
    return Identity(dev=1, ino=ino, size=size, mtime_ns=mtime_ns, ctime_ns=mtime_ns)


def test_unchanged_over_two_looks_settle_s_apart_settles() -> None:
    s = Settler(SETTLE)
    assert not s.observe("a.wav", ident(), now=0.0, wall_ns=NOW_NS)
    assert not s.observe("a.wav", ident(), now=1.9, wall_ns=NOW_NS)
    assert s.observe("a.wav", ident(), now=2.0, wall_ns=NOW_NS)
    assert s.pending() == []


def test_a_growing_file_restarts_the_wait_and_is_remembered() -> None:
    s = Settler(SETTLE)
    assert not s.observe("a.wav", ident(100), now=0.0, wall_ns=NOW_NS)
    assert not s.observe("a.wav", ident(200), now=2.5, wall_ns=NOW_NS)
    assert s.pending() == ["a.wav"]
    assert s.next_look(2.5) == SETTLE
    assert not s.observe("a.wav", ident(200), now=4.0, wall_ns=NOW_NS)
    assert s.observe("a.wav", ident(200), now=4.5, wall_ns=NOW_NS)


def test_renamed_from_a_temp_name_is_complete_at_once() -> None:
    s = Settler(SETTLE)
    s.saw_temp(dev=1, ino=7, now=0.0)
    assert s.observe("a.wav", ident(ino=7), now=0.1, wall_ns=NOW_NS)


def test_watcher_rename_evidence_is_complete_at_once() -> None:
    assert Settler(SETTLE).observe("a.wav", ident(), now=0.0, wall_ns=NOW_NS, renamed=True)


def test_old_mtime_is_complete_at_once_unless_mtime_is_not_trusted() -> None:
    old = ident(mtime_ns=NOW_NS - 3 * 10**9)
    assert Settler(SETTLE).observe("a.wav", old, now=0.0, wall_ns=NOW_NS)
    assert not Settler(SETTLE, trust_mtime=False).observe("a.wav", old, now=0.0, wall_ns=NOW_NS)


def test_mtime_in_the_future_is_not_trusted() -> None:
    future = ident(mtime_ns=NOW_NS + 3600 * 10**9)
    assert not Settler(SETTLE).observe("a.wav", future, now=0.0, wall_ns=NOW_NS)


def test_an_empty_file_is_never_complete_on_arrival() -> None:
    s = Settler(SETTLE)
    s.saw_temp(dev=1, ino=7, now=0.0)
    assert not s.observe("a.wav", ident(size=0, ino=7, mtime_ns=0), now=0.0, wall_ns=NOW_NS, renamed=True)
    assert s.observe("a.wav", ident(size=0, ino=7, mtime_ns=0), now=2.0, wall_ns=NOW_NS)


def test_prune_forgets_files_that_left_the_inbox() -> None:
    s = Settler(SETTLE)
    s.observe("a.wav", ident(), now=0.0, wall_ns=NOW_NS)
    s.prune(present=set(), now=1.0)
    assert s.pending() == [] and s.next_look(1.0) is None
