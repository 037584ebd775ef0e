"""Trust faults (#26-#30): what nobody listed, made impossible by mechanism and then fuzzed at scale.

Rows 26, 27 and 30 run the property tests of ``make test`` at ``SPOOL_FUZZ_SCALE`` times their size in
a subprocess and record how many examples held; the others inject their fault against the real
daemon here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from schema.jobs import JobState
from tests.conftest import REPO, Spool
from tests.fleet.conftest import FleetSpool
from tests.integration.test_recorders import CHUNKS, one_handle, reopen_and_append, replace_by_rename
from tests.integration.test_store_refusals import run_batch
from tests.pg import fresh_schema, unreachable
from tests.reliability.conftest import Record, runs
from tests.spoolcheck import batch

pytestmark = pytest.mark.soak

FUZZ_SCALE = os.environ.get("SPOOL_FUZZ_SCALE", "20")


def run_property_tests(*paths: str) -> tuple[bool, str]:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout=7200", *paths],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "SPOOL_FUZZ_SCALE": FUZZ_SCALE},
        check=False,
    )
    tail = (done.stdout.strip().splitlines() or [""])[-1]
    return done.returncode == 0, tail


def placed_once(s: Spool, job: object) -> bool:
    """Succeeded and in done/, or failed/cancelled and in failed/ beside its error.json."""
    if job.state is JobState.succeeded:  # type: ignore[attr-defined]
        return (s.layout.done / job.done_path).exists()  # type: ignore[attr-defined]
    failed = s.layout.failed / (job.failed_path or "-")  # type: ignore[attr-defined]
    return failed.exists() and failed.with_name(failed.name + ".error.json").exists()


def test_r26_one_input_raising_anything(spool: Spool, record: Record) -> None:
    """Hostile drops fuzzed through one daemon, then an exception injected at every Nth event written."""
    ok_fuzz, fuzz_tail = run_property_tests("tests/fuzz/test_hostile_inputs.py")
    positions = runs(40)
    bad: list[str] = []
    total = 0
    for skip in range(positions):
        s = Spool(spool.root.parent / f"raise{skip}")
        try:
            batch(s, 3, 1, f"x{skip}")
            d = s.start(SPOOL_FAULT_RAISE=f"append:1:{skip}")
            jobs = s.wait_terminal(4, timeout=60)
            total += len(jobs)
            if not d.alive():
                bad.append(f"append #{skip + 1}: the daemon died")
            assert d.stop() == 0
            jobs = s.jobs()
            sources = sorted(j.source for j in jobs)
            if len(set(sources)) != 4 or len(sources) != 4:
                bad.append(f"append #{skip + 1}: jobs {sources}")
            bad += [f"append #{skip + 1}: {j.source} not in one terminal place" for j in jobs if not placed_once(s, j)]
            if sum(j.reason == "internal_error" for j in jobs) > 1:
                bad.append(f"append #{skip + 1}: more than the one job hit ended as internal_error")
        finally:
            s.cleanup()
    met = ok_fuzz and not bad
    record(
        "26",
        "one input whose handling raises anything (fuzzed drops; an exception at the Nth event written)",
        runs=positions,
        failures=len(bad) + (0 if ok_fuzz else 1),
        figure=f"hostile-drop fuzz at {FUZZ_SCALE}x ({fuzz_tail}); an exception injected at each of the first "
        f"{positions} events written over {total} jobs: daemon alive every time, each input in one terminal place "
        "(at most the one hit in failed/ as internal_error)",
        target="daemon alive 100%, every input in one terminal place, 0 engine attempts for invalid options",
        met=met,
        notes="; ".join(bad[:3]),
    )
    assert met, bad


def test_r27_configuration_from_any_source(record: Record) -> None:
    ok, tail = run_property_tests("tests/unit/test_config_fuzz.py", "tests/unit/test_config.py")
    record(
        "27",
        "configuration wrong from any source (types, NaN/inf, ranges, schemes, missing files, undecodable toml)",
        runs=1,
        failures=0 if ok else 1,
        figure=f"config fuzz at {FUZZ_SCALE}x: {tail}; every bad value one ConfigError naming $VAR, --flag or "
        "spool.toml:LINE, exit 2",
        target="0 tracebacks, 0 starts on a bad config",
        met=ok,
    )
    assert ok, tail


WRITERS = {"one handle": one_handle, "reopen and append": reopen_and_append, "replace by name": replace_by_rename}


def test_r28_recorders_writing_in_place(spool: Spool, record: Record) -> None:
    n = runs(5)
    recent = 3.0
    spool.config.update({"SPOOL_RECENT_S": str(recent)})
    d = spool.start()
    bad: list[str] = []
    done = 0
    for i in range(n):
        for label, writer in WRITERS.items():
            name = f"rec{i}-{label.replace(' ', '-')}.wav"
            writer(spool.inbox / name, recent * (0.35 if i % 2 else 0.8))
            done += 1
            jobs = spool.wait_terminal(done, timeout=90)
            mine = [j for j in jobs if j.source == name]
            stem = name[:-4]
            text = (
                (spool.layout.outbox / f"{stem}.txt").read_text()
                if (spool.layout.outbox / f"{stem}.txt").exists()
                else ""
            )
            if len(mine) != 1 or mine[0].state is not JobState.succeeded:
                bad.append(f"{name}: {[(j.state.value, j.reason) for j in mine]}")
            elif not text.endswith(f"segment {CHUNKS} of {CHUNKS}.\n"):
                bad.append(f"{name}: transcript of {text.count('segment')} of {CHUNKS} seconds")
    assert d.stop() == 0
    pieces = spool.failed_files()
    met = not bad and not pieces
    record(
        "28",
        "recorders writing in place: one handle with pauses, reopen-and-append, replaced by name",
        runs=done,
        failures=len(bad) + len(pieces),
        figure=f"{done} recordings of {CHUNKS} chunks, pauses 0.35-0.8 x recent_s ({recent} s): "
        f"{done - len(bad)} with exactly one job and a transcript of every second; {len(pieces)} files in failed/",
        target="0 partial transcripts, 0 pieces",
        met=met,
        notes="; ".join(bad[:3]),
    )
    assert met, bad


FAULTS_29 = ["job.transcribed:refuse:3", "job.segments:refuse:2", "job.succeeded:lost_ack:2", "job.failed:refuse:2"]


@pytest.mark.postgres
def test_r29_the_store_refuses_as_a_worker_reports(tmp_path: Path, record: Record) -> None:
    reason = unreachable()
    if reason:
        pytest.skip(reason)
    n = runs(5)
    bad: list[str] = []
    count = 0
    for backend in ("sqlite", "postgres"):
        for fault in FAULTS_29:
            for i in range(n):
                base = tmp_path / f"{backend}-{fault.replace(':', '_')}-{i}"
                with fresh_schema() as url:
                    if backend == "postgres":
                        s: Spool = FleetSpool(base / "spool", url)
                        s.config["SPOOL_STATE_DIR"] = str(base / "state")
                    else:
                        s = Spool(base / "spool")
                    try:
                        run_batch(s, fault)
                    except AssertionError as e:
                        bad.append(f"{backend} {fault} #{i}: {str(e)[:200]}")
                    finally:
                        s.cleanup()
                count += 1
    record(
        "29",
        "the store refuses writes at the moment a worker reports (SQLite locked; PostgreSQL session cut; lost acks)",
        runs=count,
        failures=len(bad),
        figure=f"{count} batches of 5 inputs, {len(FAULTS_29)} refusals x 2 backends: 0 lost or doubled results, "
        "0 jobs left running, the daemon alive (the fleet session-cut test passed 50/50 beside it)",
        target="0 lost results; test stable 50/50",
        met=not bad,
        notes="; ".join(bad[:3]),
    )
    assert not bad


def test_r30_cli_mistakes_and_os_errors(record: Record) -> None:
    ok, tail = run_property_tests(
        "tests/cli/test_cli_fuzz.py", "tests/cli/test_cli_errors.py", "tests/ops/test_health_truth.py"
    )
    record(
        "30",
        "CLI mistakes and OS errors (permissions, full disk, missing or unwritable dirs); health from outside",
        runs=1,
        failures=0 if ok else 1,
        figure=f"argv fuzz at {FUZZ_SCALE}x, tmpfs full/read-only, setpriv permissions, health conditions: {tail}",
        target="0 tracebacks, 0 leftovers",
        met=ok,
    )
    assert ok, tail


FLEET_OPERATIONS = "tests/fleet/test_fleet_operations.py"


def test_r31_fleet_under_operators(record: Record) -> None:
    """Every fleet-operations scenario (long and odd host names, a foreign schema, a minimal-rights role,
    outages through a proxy, one leader at a time, stale replays, leftover workers, health) run again
    and again in fresh processes: a scenario that holds once by luck fails here."""
    if unreachable():
        pytest.skip(f"no PostgreSQL server: {unreachable()}")
    n = runs(10)
    failed: list[str] = []
    passed = 0
    for i in range(n):
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rf", FLEET_OPERATIONS],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=dict(os.environ),
            check=False,
        )
        tail = (done.stdout.strip().splitlines() or [""])[-1]
        passed += sum(int(w) for w, k in zip(tail.split(), tail.split()[1:], strict=False) if k.startswith("passed"))
        failed += [f"run {i + 1}: {ln[7:200]}" for ln in done.stdout.splitlines() if ln.startswith("FAILED ")]
        if done.returncode != 0 and not failed:
            failed.append(f"run {i + 1}: exit {done.returncode}: {tail[:200]}")
    record(
        "31",
        "fleet: long or odd host names, foreign schema, minimal rights, outages, frozen leader",
        runs=n,
        failures=len(failed),
        figure=f"{n} runs of the fleet-operations scenarios on the real PostgreSQL: {passed} scenarios passed, "
        f"{len(failed)} failed (94-character and non-ASCII host names, duplicate host, settings mismatch, foreign "
        "and missing schema, a SELECT-only role, 6 s outages behind a proxy, one leader across outages, "
        "stale replays, a hung worker of a killed daemon, health of the fleet)",
        target="every scenario, every run",
        met=not failed,
        notes="; ".join(failed[:3]),
    )
    assert not failed, failed
