"""Run the benchmarks and write docs/performance.md (``make bench``; ``make bench-quick`` for a smoke run).

Ratios are measured side by side in this one run on this one machine: the
machine is shared and noisy, so absolute numbers move between runs while the
ratios are what we compare.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench import engines, fleet, footprint, intake, memory, orchestration, throughput
from bench.common import REPO, SHARED, commit, have_speech_tools, machine, speech_clips

CLIPS = Path("/tmp/spoolbench-clips")


def clip_sets(quick: bool) -> dict[str, list[Path]]:
    if not have_speech_tools():
        jfk = SHARED / "jfk.flac"
        if not jfk.exists():
            return {}
        return {"faster-whisper": [jfk] * 3, "mlx": [jfk] * 2}
    short = speech_clips(CLIPS, 4 if quick else 20, 30.0)
    if quick:
        return {"faster-whisper": short, "mlx": short[:2]}
    long = speech_clips(CLIPS, 3, 300.0, seed=500)
    return {"faster-whisper": short + long, "mlx": short[:6] + long[:1]}


def run(quick: bool) -> dict[str, Any]:
    started = time.monotonic()
    results: dict[str, Any] = {"machine": machine(), "commit": commit(), "quick": quick}
    results["intake"] = intake.measure(renames=10 if quick else 50, in_place=2 if quick else 10)
    results["orchestration"] = [orchestration.backlog(n) for n in ((100, 1000) if quick else (100, 1000, 10_000))]
    results["orchestration_2w"] = orchestration.backlog(1000, workers=2)
    results["appends"] = orchestration.appends(1000 if quick else 5000)
    results["queries"] = orchestration.query_latency(*((1000, 100_000) if quick else (10_000, 1_000_000)))
    why_not = fleet.reachable()
    if why_not is None:
        results["fleet_appends"] = fleet.appends(600 if quick else 3000)
        results["fleet"] = {
            str(work): fleet.scaling(30 if quick else 90, work) for work in ((0.0, 0.25) if not quick else (0.25,))
        }
    else:
        results["fleet_skipped"] = f"no PostgreSQL at {fleet.PG_URL}: {why_not}"
    results["footprint"] = footprint.idle(10 if quick else 60)
    results["busy"] = footprint.busy(10 if quick else 30)
    sets = clip_sets(quick)
    results["engines"] = []
    for engine, clips in sets.items():
        rounds = 1 if quick or engine == "mlx" else 2
        results["engines"].append(engines.compare(engine, clips, rounds=rounds, workers=1, threads=0))
        if engine == "faster-whisper" and not quick:
            results["engines"].append(engines.compare(engine, clips, rounds=1, workers=2, threads=1))
        results.setdefault("spawn_to_ready_s", {})[engine] = round(engines.spawn_to_ready(engine, 0), 2)
        results.setdefault("cold_warm", []).append(engines.cold_vs_warm(engine, clips[: 4 if quick else 8]))
    results["bench_seconds"] = round(time.monotonic() - started)
    return results


def markdown(r: dict[str, Any], command: str) -> str:
    m = r["machine"]
    lines = [
        "# Performance",
        "",
        f"Measured {m['date']} on commit `{r['commit']}` with `{command}`"
        f"{' (quick smoke run: small samples)' if r['quick'] else ''}; the whole run took {r['bench_seconds']} s.",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GiB, {m['os']}, Python {m['python']}, "
        f"load {m['load_1m']} at start. Shared and noisy: compare the ratios, which were measured side by side.",
        "",
        "## Engine ceiling vs the spool",
        "",
        "(a) the engine in a plain in-process loop; (b) the same clips dropped at once into a running daemon, "
        "first drop to last `job.succeeded`. Both decode the audio and use the same options (greedy, word "
        "timestamps); the spool also hashes inputs, writes four formats durably and records every event.",
        "",
        "| engine | workers x threads | clips | audio s | (a) x real time | (b) x real time | (b)/(a) "
        "| peak RSS (a) / worker (b) MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in r["engines"]:
        lines.append(
            f"| {e['engine']} | {e['workers']} x {e['threads_per_worker']} | {e['clips']} | {e['audio_s']} | "
            f"{e['ceiling_x']} {e['ceiling_runs_x']} | {e['spool_x']} {e['spool_runs_x']} | **{e['ratio']}** | "
            f"{e['ceiling_peak_rss_mb']} / {e['spool_peak_worker_rss_mb']} |"
        )
    spawn = r.get("spawn_to_ready_s", {})
    lines += [
        "",
        "Cold start of a worker (spawn to `ready`, model cached): "
        + ", ".join(f"{k} {v} s" for k, v in spawn.items())
        + ".",
        "",
    ]
    i = r["intake"]
    lines += [
        "## Intake latency (file complete -> `job.submitted`)",
        "",
        "| hand-off | n | p50 ms | p99 ms | max ms |",
        "|---|---|---|---|---|",
        f"| rename (`.part` -> final) | {i['rename']['n']} | {i['rename']['p50_ms']} | {i['rename']['p99_ms']} "
        f"| {i['rename']['max_ms']} |",
        f"| written in place (settle_s = {i['settle_s']}) | {i['in_place']['n']} | {i['in_place']['p50_ms']} | "
        f"{i['in_place']['p99_ms']} | {i['in_place']['max_ms']} |",
        "",
        "## Orchestration alone (test engine)",
        "",
        "| queued files | workers | s | jobs/s | ms per job | events per job | DB KiB per job |",
        "|---|---|---|---|---|---|---|",
    ]
    for o in [*r["orchestration"], r["orchestration_2w"]]:
        lines.append(
            f"| {o['jobs']} | {o['workers']} | {o['seconds']} | {o['jobs_per_s']} | {o['ms_per_job']} | "
            f"{o['events_per_job']} | {o['db_kb_per_job']} |"
        )
    first, last = r["orchestration"][0], r["orchestration"][-1]
    slope = (last["ms_per_job"] - first["ms_per_job"]) / ((last["jobs"] - first["jobs"]) / 1000)
    q = r["queries"]
    lines += [
        "",
        f"Cost per job from {first['jobs']} to {last['jobs']} queued files: {first['ms_per_job']} -> "
        f"{last['ms_per_job']} ms, a slope of {slope:+.2f} ms per job per 1000 more queued.",
        "",
        f"With {q['jobs']} jobs and {q['events']} events ({q['db_mb']} MB): `spool status` takes {q['status_ms']} ms "
        f"in-process ({q['status_cli_ms']} ms as a command, Python start-up included); `spool jobs --json` builds "
        f"its {q['jobs']}-item list in {q['jobs_json_ms']} ms.",
    ]
    a, f = r["appends"], r["footprint"]
    lines += [
        "",
        f"Event appends (synchronous=FULL): {a['single_per_s']}/s one per commit, {a['batch100_per_s']}/s in "
        "batches of 100.",
        "",
        *fleet_markdown(r),
        "## Footprint",
        "",
        f"Idle daemon over {f['window_s']} s ({f['engine']} engine, one warm worker): daemon {f['daemon_cpu_pct']} % "
        f"of a core, {f['daemon_rss_mb']} MB RSS; idle worker {f['worker_cpu_pct']} %, {f['worker_rss_mb']} MB.",
        f"With {r['busy']['workers']} jobs running (test engine, a segment every 0.1 s each): daemon "
        f"{r['busy']['daemon_cpu_pct']} % of a core, {r['busy']['per_running_job_pct']} % per running job, "
        f"{r['busy']['daemon_rss_mb']} MB RSS. Database growth: see DB KiB per job above.",
        "",
        "## Cold vs warm workers (through the spool)",
        "",
        "| engine | jobs | warm s/job | fresh process per job s/job | cost of a cold start per job |",
        "|---|---|---|---|---|",
        *[
            f"| {c['engine']} | {c['jobs']} | {c['warm_s_per_job']} | {c['cold_s_per_job']} | "
            f"{c['cold_overhead_s_per_job']} s |"
            for c in r.get("cold_warm", [])
        ],
        "",
    ]
    return "\n".join(lines)


def fleet_markdown(r: dict[str, Any]) -> list[str]:
    if "fleet" not in r:
        return ["## Fleets (PostgreSQL)", "", f"Not measured: {r.get('fleet_skipped', 'not run')}.", ""]
    a = r["fleet_appends"]
    lines = [
        "## Fleets (PostgreSQL)",
        "",
        "Daemons sharing one spool and one PostgreSQL (a fresh schema, the local server), each with its own state "
        "directory, all on this 2-core machine: the rows show what coordination costs and how work spreads, not "
        "what more machines add. Files already waiting; first `job.submitted` to last `job.succeeded`. "
        "`work s` is engine time per job in which the test engine sleeps (no CPU), standing in for the "
        "transcription another machine's cores would do.",
        "",
        "| store | daemons | jobs | work s | s | jobs/s | vs 1 daemon | jobs per daemon |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for rows in r["fleet"].values():
        for f in rows:
            lines.append(
                f"| {f['store']} | {f['hosts']} | {f['jobs']} | {f['work_s']} | {f['seconds']} | {f['jobs_per_s']} | "
                f"{f.get('vs_1_host', '')} | {' / '.join(map(str, f['spread']))} |"
            )
    lines += [
        "",
        f"Event appends, side by side ({a['events']} heartbeats): SQLite {a['sqlite_single_per_s']}/s one per "
        f"commit, {a['sqlite_batch100_per_s']}/s in batches of 100; PostgreSQL {a['pg_single_per_s']}/s and "
        f"{a['pg_batch100_per_s']}/s (x{a['pg_over_sqlite_single']} of SQLite one per commit: a round trip per "
        f"statement, the row lock and the append lock); three PostgreSQL writers at once {a['pg_3_writers_per_s']}/s "
        "in all (appends are serialised so positions commit in order).",
        "",
    ]
    return lines


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run")
    p.add_argument("--quick", action="store_true", help="small samples: a smoke run of every benchmark")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "performance.md")
    a = p.parse_args()
    results = run(a.quick)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    command = "make bench-quick" if a.quick else "make bench"
    kept = a.out.read_text() if a.out.exists() else ""
    text = markdown(results, command)
    for begin, end in ((memory.BEGIN, memory.END), (throughput.BEGIN, throughput.END)):
        if begin in kept:  # measured by `make bench-memory` / `make bench-throughput`: kept until re-run
            text = text.rstrip("\n") + "\n\n" + begin + kept.split(begin, 1)[1].split(end, 1)[0] + end + "\n"
    a.out.write_text(text)
    (REPO / "bench" / "results").mkdir(exist_ok=True)
    (REPO / "bench" / "results" / "latest.json").write_text(json.dumps(results, indent=2))
    print(a.out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
