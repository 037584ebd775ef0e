"""Files waiting together start largest first; the daemon sizes its pool itself (issue 17)."""

from __future__ import annotations

import json

from tests.conftest import Spool, drop, script


def test_files_waiting_together_start_largest_first(spool: Spool) -> None:
    sizes = {"a.wav": 1_000, "b.wav": 50_000, "c.wav": 10_000, "d.wav": 200_000, "e.wav": 5_000}
    for name, size in sizes.items():  # waiting before the daemon starts: one batch at its first scan
        drop(spool.inbox, name, script(duration=1, segments=1, delay_s=0.05) + b"\n" + b"x" * size)
    spool.config["SPOOL_SETTLE_S"] = "0"
    daemon = spool.start()
    jobs = spool.wait_terminal(5, timeout=60)
    assert all(j.state.value == "succeeded" for j in jobs)
    started = [j.source for j in sorted(jobs, key=lambda j: j.started_at)]
    assert started == sorted(sizes, key=lambda n: sizes[n], reverse=True)
    sized = [json.loads(ln) for ln in daemon.output().splitlines() if '"workers.sized"' in ln]
    assert sized and sized[0]["workers"] == 1 and sized[0]["why"] == "test engine: one worker"
