"""Shared checks of the crash and fault tests: each input in exactly one terminal place."""

from __future__ import annotations

import subprocess
from typing import Any

from schema.jobs import JobState
from schema.replay import verify
from tests.conftest import Spool, script, survivors, wait_for

FORMATS = ("json", "srt", "txt", "vtt")


def batch(spool: Spool, good: int, bad: int, tag: str) -> tuple[list[str], list[str]]:
    goods = [f"{tag}-good{i}.wav" for i in range(good)]
    bads = [f"{tag}-bad{i}.wav" for i in range(bad)]
    for i, name in enumerate(goods):
        spool.drop(name, script(duration=2, segments=2, n=f"{tag}{i}"))
    for i, name in enumerate(bads):
        spool.drop(name, script(duration=1, segments=1, mode="bad_input", n=f"{tag}b{i}"))
    return goods, bads


def problems(spool: Spool, goods: list[str], bads: list[str]) -> list[str]:
    """Everything wrong with the spool's end state (empty when each input is where it must be, once)."""
    jobs = spool.jobs()
    found = [f"unfinished jobs: {[(j.source, j.state.value) for j in jobs if not j.state.terminal]}"]
    if not any(not j.state.terminal for j in jobs):
        found = []
    found += _placement(spool, jobs, goods, bads)
    found += _folders(spool, goods, bads)
    found += _database(spool)
    return found


def _placement(spool: Spool, jobs: list[Any], goods: list[str], bads: list[str]) -> list[str]:
    found = []
    by_source: dict[str, list[Any]] = {}
    for j in jobs:
        by_source.setdefault(j.source, []).append(j)
    for name in goods:
        winners = [j for j in by_source.get(name, []) if j.state is JobState.succeeded]
        stem = name.rsplit(".", 1)[0]
        if len(winners) != 1:
            found.append(f"{name}: {len(winners)} successful jobs (lost or duplicated)")
        elif sorted(winners[0].outputs) != sorted(f"{stem}.{e}" for e in FORMATS):
            found.append(f"{name}: outputs {winners[0].outputs}")
        elif not (spool.layout.done / name).exists():
            found.append(f"{name}: not in done/")
    for name in bads:
        if not ((spool.layout.failed / name).exists() and (spool.layout.failed / f"{name}.error.json").exists()):
            found.append(f"{name}: not quarantined with its error.json")
    return found


def _folders(spool: Spool, goods: list[str], bads: list[str]) -> list[str]:
    found = []
    outbox = spool.outbox_files()
    if len(outbox) != len(goods) * len(FORMATS):
        found.append(f"outbox holds {len(outbox)} files, expected {len(goods) * len(FORMATS)}")
    if list(spool.layout.outbox.rglob(".*")):
        found.append("temp files left in outbox/")
    if list(spool.layout.work.iterdir()):
        found.append(f"work/ not empty: {list(spool.layout.work.iterdir())}")
    if [p for p in spool.inbox.rglob("*") if p.is_file()]:
        found.append("inbox not empty")
    if len(spool.failed_files()) != 2 * len(bads):
        found.append(f"failed/ holds {len(spool.failed_files())} files, expected {2 * len(bads)}")
    return found


def _database(spool: Spool) -> list[str]:
    found = []
    store = spool.store()
    try:
        report = verify(store)
        if not report.ok:
            found.append("replay --verify differs: " + "; ".join(report.lines()[1:4]))
        if store.integrity_check() != "ok":
            found.append("integrity_check failed")
    finally:
        store.close()
    return found


def assert_exactly_once(spool: Spool, goods: list[str], bads: list[str]) -> None:
    found = problems(spool, goods, bads)
    assert not found, found


def run_to_completion(spool: Spool, total: int, timeout: float = 90) -> None:
    d = spool.start()
    spool.wait_terminal(total, timeout=timeout)
    wait_for(lambda: all(j.state.terminal for j in spool.jobs()), 30)
    assert d.stop() == 0
    assert survivors(str(spool.root)) == []


def crash_at(spool: Spool, point: str, skip: int) -> int:
    """Run a daemon armed to die at ``point``; its exit code (137), or -1 if the point was never reached."""
    d = spool.start(wait_ready=False, SPOOL_FAULT_POINT=point, SPOOL_FAULT_SKIP=str(skip))
    try:
        return d.proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        d.kill9()
        return -1
