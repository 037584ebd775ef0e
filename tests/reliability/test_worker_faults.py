"""Worker faults (#3-#6): crashes and OOM, hangs, SIGTERM ignored, descendants left behind."""

from __future__ import annotations

import signal
import time
from datetime import datetime

import pytest

from schema import events as ev
from schema.jobs import JobState
from schema.reasons import Reason
from tests.conftest import Spool, marked, script, wait_for
from tests.reliability.conftest import Record, runs

pytestmark = pytest.mark.soak


def stamps(spool: Spool, job_id: str) -> dict[str, str]:
    s = spool.store()
    try:
        out: dict[str, str] = {}
        for r in s.read(ev.job_stream(job_id)):
            out.setdefault(r.type, r.at)
        return out
    finally:
        s.close()


def failures_of(spool: Spool, job_id: str) -> list[ev.JobFailed]:
    s = spool.store()
    try:
        return [r.event for r in s.read(ev.job_stream(job_id)) if isinstance(r.event, ev.JobFailed)]
    finally:
        s.close()


def test_r03_segfault_and_oom_are_classified_and_retried(spool: Spool, record: Record) -> None:
    n = runs(100)
    spool.config.update({"SPOOL_WORKERS": "2", "SPOOL_MAX_ATTEMPTS": "3", "SPOOL_RETRY_BACKOFF_S": "0.1"})
    spool.start()
    kinds = ["crash", "killed", "oom"]
    for i in range(n):
        mode = kinds[i % 3]
        spool.drop(f"w{i}.wav", script(duration=1, segments=1, attempts={"1": {"mode": mode, "limit_mb": 256}}, n=i))
    forever = max(1, n // 20)  # these crash on every attempt and must stop at max_attempts
    for i in range(forever):
        spool.drop(f"always{i}.wav", script(duration=1, segments=1, mode="crash", n=f"a{i}"))
    jobs = spool.wait_terminal(n + forever, timeout=60 + 3 * n)
    bad = []
    expected = {
        "crash": (Reason.worker_died, signal.SIGSEGV),
        "killed": (Reason.worker_died, signal.SIGKILL),
        "oom": (Reason.engine_error, None),
    }
    for job in jobs:
        fails = failures_of(spool, job.id)
        if job.source.startswith("always"):
            if job.state is not JobState.failed or job.total_attempts != 3 or len(fails) != 3:
                bad.append(f"{job.source}: {job.state} after {job.total_attempts} attempts")
            delays = [r for r in fails if not r.final]
            if len(delays) != 2:
                bad.append(f"{job.source}: {len(delays)} retries")
            continue
        mode = kinds[int(job.source[1:].split(".")[0]) % 3]
        reason, sig = expected[mode]
        if job.state is not JobState.succeeded or len(fails) != 1:
            bad.append(f"{job.source}: {job.state}, {len(fails)} failures")
        elif fails[0].reason != reason or fails[0].signal != sig:
            bad.append(f"{job.source}: classified {fails[0].reason}/{fails[0].signal}, expected {reason}/{sig}")
    record(
        "3",
        "worker segfault / OOM kill (SIGSEGV, SIGKILL, RLIMIT_AS)",
        runs=n + forever,
        failures=len(bad),
        figure=f"{n + forever - len(bad)}/{n + forever} classified with reason and signal; attempts <= 3, "
        "backoff between retries",
        target="100% classified; attempts <= max",
        met=not bad,
        notes="; ".join(bad[:3]),
    )
    assert not bad


@pytest.mark.parametrize("mode", ["hang", "busy", "stop"])
def test_r04_hangs_are_detected_within_stall_plus_one_second(spool: Spool, record: Record, mode: str) -> None:
    n = runs(100)
    stall = 1.0
    spool.config.update(
        {
            "SPOOL_WORKERS": "2",
            "SPOOL_MAX_ATTEMPTS": "1",
            "SPOOL_STALL_S": str(stall),
            "SPOOL_GRACE_S": "0.5",
            "SPOOL_HEARTBEAT_S": "5",
        }
    )
    spool.start()
    for i in range(n):
        spool.drop(f"h{i}.wav", script(duration=2, segments=2, mode=mode, n=i))
    jobs = spool.wait_terminal(n, timeout=30 + 2 * n)
    latencies, bad = [], []
    for job in jobs:
        t = stamps(spool, job.id)
        if job.state is not JobState.failed or job.reason != Reason.hung:
            bad.append(f"{job.source}: {job.state.value}/{job.reason}")
            continue
        latency = (datetime.fromisoformat(t["job.failed"]) - datetime.fromisoformat(t["job.probed"])).total_seconds()
        latencies.append(latency)
        if latency > stall + 1.0:
            bad.append(f"{job.source}: {latency:.2f} s")
    worst = max(latencies) if latencies else float("nan")
    record(
        "4",
        f"worker hang: {mode}",
        runs=n,
        failures=len(bad),
        figure=f"{n - len(bad)}/{n} detected and killed; last progress -> job.failed max {worst:.2f} s "
        f"(stall_s {stall})",
        target="detected <= stall + 1 s, 100/100",
        met=not bad,
        notes="; ".join(bad[:3]),
    )
    assert not bad


def test_r05_sigterm_ignored_escalates_to_sigkill(spool: Spool, record: Record) -> None:
    n = runs(100)
    stall, grace = 1.0, 0.5
    spool.config.update(
        {"SPOOL_WORKERS": "2", "SPOOL_MAX_ATTEMPTS": "1", "SPOOL_STALL_S": str(stall), "SPOOL_GRACE_S": str(grace)}
    )
    spool.start()
    markers = []
    for i in range(n):
        marker = f"ign-{i}-{time.monotonic_ns()}"
        markers.append(marker)
        spool.drop(f"t{i}.wav", script(duration=2, segments=2, mode="ignore_term", child=True, marker=marker, n=i))
    jobs = spool.wait_terminal(n, timeout=30 + 3 * n)
    bad, after_stop = [], []
    for job in jobs:
        t = stamps(spool, job.id)
        if job.signal != signal.SIGKILL:
            bad.append(f"{job.source}: signal {job.signal}")
            continue
        total = (datetime.fromisoformat(t["job.failed"]) - datetime.fromisoformat(t["job.probed"])).total_seconds()
        after_stop.append(total - stall)
        if total - stall > grace + 1.0:
            bad.append(f"{job.source}: dead {total - stall:.2f} s after the stop")
    alive = [m for m in markers if marked(m)]
    bad += [f"survivor {m}" for m in alive]
    worst = max(after_stop) if after_stop else float("nan")
    record(
        "5",
        "worker ignores SIGTERM (children inherit SIG_IGN)",
        runs=n,
        failures=len(bad),
        figure=f"{n - len(bad)}/{n} killed by SIGKILL; stop -> whole tree dead max {worst:.2f} s "
        f"(grace {grace} s); {len(alive)} survivors",
        target="all dead <= grace + 1 s, 100/100",
        met=not bad,
        notes="; ".join(bad[:3]),
    )
    assert not bad


@pytest.mark.parametrize("pattern", ["plain", "setsid", "double_fork", "orphan"])
def test_r06_no_descendant_survives_its_job(spool: Spool, record: Record, pattern: str) -> None:
    n = runs(100)
    spool.config.update({"SPOOL_WORKERS": "2"})
    spool.start()
    markers = []
    for i in range(n):
        marker = f"gc-{pattern}-{i}-{time.monotonic_ns()}"
        markers.append(marker)
        then = "ok" if i % 2 == 0 else "hang"  # half succeed, half are cancelled while running
        spool.drop(
            f"g{i}.wav",
            script(duration=1, segments=1, mode="grandchild", pattern=pattern, then=then, marker=marker, n=i),
        )

    def cancel_the_odd_ones_once_their_grandchild_exists() -> bool:
        jobs = spool.jobs()
        for j in jobs:
            i = int(j.source[1:-4])
            if i % 2 == 1 and j.state is JobState.running and not j.cancel_requested and marked(markers[i]):
                spool.cli("cancel", j.id)
        return len([j for j in jobs if j.state.terminal]) == n

    wait_for(cancel_the_odd_ones_once_their_grandchild_exists, 60 + 2 * n, interval=0.1, what="all jobs ended")
    jobs = spool.jobs()
    wait_for(lambda: all(not marked(m) for m in markers), 10, what="no marked survivor")
    alive = [m for m in markers if marked(m)]
    states = {j.state for j in jobs}
    record(
        "6",
        f"descendant left behind: {pattern}",
        runs=n,
        failures=len(alive),
        figure=f"{len(alive)} survivors in {n} runs (half succeeded, half cancelled mid-job); states "
        f"{sorted(s.value for s in states)}",
        target="0 survivors in 100 runs per pattern",
        met=not alive,
    )
    assert not alive
