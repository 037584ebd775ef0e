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

from bench import engines, footprint, intake, orchestration
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
    results["orchestration"] = [orchestration.backlog(n) for n in ((100,) if quick else (100, 1000))]
    results["appends"] = orchestration.appends(1000 if quick else 5000)
    results["footprint"] = footprint.idle(10 if quick else 60)
    sets = clip_sets(quick)
    results["engines"] = []
    for engine, clips in sets.items():
        rounds = 1 if quick or engine == "mlx" else 2
        results["engines"].append(engines.compare(engine, clips, rounds=rounds, workers=1, threads=0))
        if engine == "faster-whisper" and not quick:
            results["engines"].append(engines.compare(engine, clips, rounds=1, workers=2, threads=1))
        results.setdefault("spawn_to_ready_s", {})[engine] = round(engines.spawn_to_ready(engine, 0), 2)
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
    for o in r["orchestration"]:
        lines.append(
            f"| {o['jobs']} | {o['workers']} | {o['seconds']} | {o['jobs_per_s']} | {o['ms_per_job']} | "
            f"{o['events_per_job']} | {o['db_kb_per_job']} |"
        )
    a, f = r["appends"], r["footprint"]
    lines += [
        "",
        f"Event appends (synchronous=FULL): {a['single_per_s']}/s one per commit, {a['batch100_per_s']}/s in "
        "batches of 100.",
        "",
        "## Footprint",
        "",
        f"Idle daemon over {f['window_s']} s ({f['engine']} engine, one warm worker): daemon {f['daemon_cpu_pct']} % "
        f"of a core, {f['daemon_rss_mb']} MB RSS; idle worker {f['worker_cpu_pct']} %, {f['worker_rss_mb']} MB.",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run")
    p.add_argument("--quick", action="store_true", help="small samples: a smoke run of every benchmark")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "performance.md")
    a = p.parse_args()
    results = run(a.quick)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    command = "make bench-quick" if a.quick else "make bench"
    a.out.write_text(markdown(results, command))
    (REPO / "bench" / "results").mkdir(exist_ok=True)
    (REPO / "bench" / "results" / "latest.json").write_text(json.dumps(results, indent=2))
    print(a.out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
