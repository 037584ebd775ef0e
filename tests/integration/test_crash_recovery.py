"""Crash windows: the daemon dies at every named point and at random instants; nothing is lost or doubled.

The default run exercises each point twice and a handful of random kills;
``make reliability`` (marker ``soak``) runs each point x20 and 1000 random kills.
"""

from __future__ import annotations

import contextlib
import os
import random

import pytest

from spool.faults import POINTS
from tests.conftest import Spool
from tests.spoolcheck import assert_exactly_once, batch, crash_at, run_to_completion

SOAK = os.environ.get("SPOOL_SOAK_SCALE", "")

REPEATS = 20 if SOAK else 2


@pytest.mark.parametrize("point", POINTS)
@pytest.mark.parametrize("repeat", range(REPEATS))
def test_crash_at_named_point(spool: Spool, point: str, repeat: int) -> None:
    goods, bads = batch(spool, 2, 1, f"r{repeat}")
    once_per_batch = point in ("spawn", "tmp_write")  # one worker start, one error.json
    code = crash_at(spool, point, skip=0 if once_per_batch else repeat % 2)
    assert code == 137, f"fault point {point} was not reached (exit {code}): {spool.daemons[-1].output()[-2000:]}"
    run_to_completion(spool, len(goods) + len(bads))
    assert_exactly_once(spool, goods, bads)


KILLS = int(SOAK or 0) or 8


@pytest.mark.slow
def test_random_kill9_over_a_batch(spool: Spool) -> None:
    rng = random.Random(1234)
    goods, bads = batch(spool, 6, 2, "k")
    kills = 0
    while kills < KILLS:
        d = spool.start(wait_ready=False)
        # kill at a uniform random instant within the time a batch takes
        try:
            d.proc.wait(timeout=rng.uniform(0.05, 2.5))
        except Exception:
            d.kill9()
            kills += 1
        if all(j.state.terminal for j in spool.jobs()) and len(spool.jobs()) == len(goods) + len(bads):
            goods2, bads2 = batch(spool, 3, 1, f"k{kills}")
            goods += goods2
            bads += bads2
    run_to_completion(spool, len(goods) + len(bads))
    assert_exactly_once(spool, goods, bads)


def test_a_deleted_wal_is_refused_not_silently_forgotten(spool: Spool) -> None:
    """RELIABILITY #23: committed events only in the WAL, the WAL deleted: the daemon must refuse."""
    batch(spool, 2, 0, "wal")
    d = spool.start()
    spool.wait_terminal(2)
    wal = spool.layout.db.with_name("spool.db-wal")
    assert wal.exists() and wal.stat().st_size > 0
    d.kill9()
    os.unlink(wal)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(spool.layout.db.with_name("spool.db-shm"))
    refused = spool.start(wait_ready=False)
    assert refused.proc.wait(30) == 3
    out = refused.output()
    assert "the WAL was deleted or an older copy put in place" in out and "Traceback" not in out
    assert spool.layout.db.stat().st_size > 0  # the file was left as it was
    os.unlink(spool.layout.position_mark)  # the documented way to accept a restore
    accepted = spool.start()
    assert accepted.stop() == 0


def test_a_deleted_database_is_not_recreated_empty(spool: Spool) -> None:
    batch(spool, 1, 0, "gone")
    d = spool.start()
    spool.wait_terminal(1)
    assert d.stop() == 0
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(str(spool.layout.db) + suffix)
    refused = spool.start(wait_ready=False)
    assert refused.proc.wait(30) == 3 and "the file is missing" in refused.output()
    assert not spool.layout.db.exists()
