"""Using the whole machine (issue 17): a mixed backlog and one long file, plain layouts beside the spool.

``make bench-throughput`` (also the last step of ``make bench``).  Every layout
runs on the same files in the same run, rounds interleaved, so drift on this
shared machine hits them all; the section it writes into docs/performance.md
gives medians and the per-round figures.

* plain loop 1 x N: one process, all cores as threads (bench.engine_loop).
* plain loop N x 1, longest first: one process per core, files dealt out
  longest first (the best a static split does).
* BatchedInferencePipeline b8: faster-whisper's own batched pipeline.
* spool: the daemon with its defaults, and with each mechanism switched off.
* the all-cores bound: the plain N x 1 processes' decode time, summed and
  spread evenly over the cores (no layout that decodes the same way beats it).
* cores and hosts: the spool pinned to 1 core vs all (taskset), and a fleet of
  one-core daemons on PostgreSQL, to check the model of how throughput grows.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import REPO, Daemon, clip_text, commit, machine, median, put_section, speech_clips, wait
from bench.quality import align, words
from schema import events as ev
from schema.store import open_store

CACHE = REPO / "bench" / "results" / "throughput"
BEGIN, END = "<!-- throughput bench: begin -->", "<!-- throughput bench: end -->"
ENV = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}:{REPO}"}
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def corpus() -> tuple[list[Path], dict[str, str]]:
    """11 files of about 23 s and one of about 395 s (653 s in all, as in issue 17), with their words."""
    d = CACHE / "corpus"
    long = speech_clips(d, 1, 395.0, seed=17)  # 13 distinct 30 s pieces joined
    shorts = speech_clips(d, 11, 23.0, seed=18)
    refs = {p.name: clip_text(18 * 1000 + i, 23.0) for i, p in enumerate(shorts)}
    refs[long[0].name] = " ".join(clip_text((10_000 + 17 * 100) * 1000 + j, 30.0) for j in range(13))
    return [*long, *shorts], refs


def seconds(path: Path) -> float:
    out = subprocess.run(["soxi", "-D", str(path)], capture_output=True, text=True, check=True)
    return float(out.stdout)


def wer(refs: dict[str, str], texts: dict[str, str]) -> float:
    errors = total = 0
    for name, ref in refs.items():
        if name in texts:
            e, n = align(words(ref), words(texts[name]))
            errors, total = errors + e, total + n
    return round(errors / max(1, total), 4)


def _loop(files: list[Path], threads: int, module: str = "bench.engine_loop", *extra: str) -> subprocess.Popen[str]:
    argv = [sys.executable, "-m", module, "--threads", str(threads), *extra, *map(str, files)]
    if module == "bench.engine_loop":
        argv[3:3] = ["--engine", "faster-whisper"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO, env=ENV)


def _result(proc: subprocess.Popen[str], files: list[Path]) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=3600)
    data = json.loads(out.strip().splitlines()[-1])
    data["texts"] = dict(zip([f.name for f in files], data["texts"], strict=True))
    return data


def plain(files: list[Path], processes: int) -> dict[str, Any]:
    """``processes`` plain loops side by side, one thread each (one: all threads), files dealt longest first."""
    if processes == 1:
        r = _result(_loop(files, CORES), files)
        return {"wall_s": r["elapsed_s"], "texts": r["texts"], "busy_s": [r["elapsed_s"]]}
    shares: list[list[Path]] = [[] for _ in range(processes)]
    load = [0.0] * processes
    for f in sorted(files, key=seconds, reverse=True):
        i = load.index(min(load))
        shares[i].append(f)
        load[i] += seconds(f)
    procs = [(_loop(share, 1), share) for share in shares if share]
    results = [_result(p, share) for p, share in procs]
    texts = {k: v for r in results for k, v in r["texts"].items()}
    return {"wall_s": max(r["elapsed_s"] for r in results), "texts": texts, "busy_s": [r["elapsed_s"] for r in results]}


def batched(files: list[Path], batch: int = 8) -> dict[str, Any]:
    r = _result(_loop(files, CORES, "bench.batched_loop", "--batch", str(batch)), files)
    return {"wall_s": r["elapsed_s"], "texts": r["texts"]}


def spool(files: list[Path], *, prefix: tuple[str, ...] = (), hosts: int = 0, **config: str) -> dict[str, Any]:
    """The files dropped at once (renamed in) into running daemons: first rename to last ``job.succeeded``.

    ``hosts`` > 0: that many daemons on one PostgreSQL schema, host i pinned to core i.
    """
    from bench.fleet import pg_schema

    base = Path(os.path.realpath(os.environ.get("TMPDIR", "/tmp"))) / f"spoolbench-tp-{os.getpid()}"
    shutil.rmtree(base, ignore_errors=True)
    root = base / "spool"
    common = {"SPOOL_ENGINE": "faster-whisper", "SPOOL_DUPLICATES": "rerun", "SPOOL_RECENT_S": "0", **config}
    daemons: list[Daemon] = []
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(pg_schema()) if hosts else ""
        for i in range(max(1, hosts)):
            extra = {"SPOOL_STORE": url, "SPOOL_STATE_DIR": str(base / f"state-{i}"), "SPOOL_HOST": f"h{i}"}
            pin = ("taskset", "-c", str(i % CORES)) if hosts else prefix
            d = Daemon(root, prefix=pin, **common, **(extra if hosts else {}))
            d.log = base / f"daemon-{i}.out"
            daemons.append(d)
        try:
            daemons[0].init()
            for d in daemons:
                d.start()
            staged = []
            for f in files:
                tmp = root / "inbox" / f".{f.name}.part"
                shutil.copyfile(f, tmp)
                staged.append((tmp, root / "inbox" / f.name))
            t0 = time.time()
            for tmp, final in staged:
                os.rename(tmp, final)
            store = open_store(url, base / "state-0" / "spool.db" if hosts else root / "state" / "spool.db")
            try:
                ended = lambda: sum(store.count_by_state().get(k, 0) for k in ("succeeded", "failed"))  # noqa: E731
                wait(lambda: ended() == len(files), 3600, "all transcribed")
                failed = store.count_by_state().get("failed", 0)
                if failed:
                    raise RuntimeError(f"{failed} job(s) failed in {root}: see {daemons[0].log}")
                done = store.read_all(types=[ev.JobSucceeded.type])
            finally:
                store.close()
            last = max(datetime.fromisoformat(r.at).timestamp() for r in done)
            texts = {f.name: json.loads((root / "outbox" / f"{f.stem}.json").read_text())["text"] for f in files}
            sized = [
                json.loads(ln) for d in daemons for ln in d.log.read_text().splitlines() if '"workers.sized"' in ln
            ]
        finally:
            for d in daemons:
                d.stop()
    shutil.rmtree(base, ignore_errors=True)
    layout = ", ".join(f"{s['workers']}x{s['threads']} lanes {s['lanes']} batch {s.get('batch', '?')}" for s in sized)
    return {"wall_s": last - t0, "texts": texts, "layout": layout}


def measure(rounds: int, fleet: bool) -> dict[str, Any]:
    files, refs = corpus()
    long = files[:1]
    audio = round(sum(map(seconds, files)), 1)
    backlog: dict[str, list[dict[str, Any]]] = {}
    single: dict[str, list[dict[str, Any]]] = {}
    layouts = {
        "plain loop, 1 process x all threads": lambda fs: plain(fs, 1),
        f"plain loop, {CORES} processes x 1 thread, longest first": lambda fs: plain(fs, CORES),
        "BatchedInferencePipeline, batch 8": batched,
        "spool, defaults": lambda fs: spool(fs),
        "spool, defaults without lanes (lanes = 1)": lambda fs: spool(fs, SPOOL_LANES="1"),
        "spool, 1 worker x all threads (the old defaults)": lambda fs: spool(fs, SPOOL_WORKERS="1", SPOOL_LANES="1"),
    }
    for _ in range(rounds):
        for name, run in layouts.items():
            backlog.setdefault(name, []).append(run(files))
            print(name, round(backlog[name][-1]["wall_s"], 2), file=sys.stderr, flush=True)
        for name in ("plain loop, 1 process x all threads", "BatchedInferencePipeline, batch 8", "spool, defaults"):
            single.setdefault(name, []).append(layouts[name](long))
            print("long:", name, round(single[name][-1]["wall_s"], 2), file=sys.stderr, flush=True)
    scaling = {
        "spool, defaults, 1 core (taskset -c 0)": spool(files, prefix=("taskset", "-c", "0")),
        f"spool, defaults, {CORES} cores": spool(files),
    }
    if fleet and CORES >= 2:
        from bench.fleet import reachable

        if reachable() is None:
            scaling["fleet: 1 host of 1 core on PostgreSQL"] = spool(files, hosts=1)
            scaling[f"fleet: {CORES} hosts of 1 core each on PostgreSQL"] = spool(files, hosts=CORES)
    return {
        "machine": machine(),
        "commit": commit(),
        "audio_s": audio,
        "files": len(files),
        "long_s": round(seconds(long[0]), 1),
        "rounds": rounds,
        "backlog": summarise(backlog, refs),
        "single": summarise(single, {long[0].name: refs[long[0].name]}),
        "scaling": summarise({k: [v] for k, v in scaling.items()}, refs),
        "bound_s": round(median([sum(r["busy_s"]) / CORES for r in backlog[list(layouts)[1]]]), 2),
    }


def summarise(runs: dict[str, list[dict[str, Any]]], refs: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "layout": name,
            "wall_s": round(median([r["wall_s"] for r in rs]), 2),
            "runs": [round(r["wall_s"], 2) for r in rs],
            "wer": wer(refs, rs[-1]["texts"]),
            "spool_layout": rs[-1].get("layout", ""),
        }
        for name, rs in runs.items()
    ]


def section(r: dict[str, Any]) -> str:
    m = r["machine"]
    best = min(row["wall_s"] for row in r["backlog"] if not row["layout"].startswith("spool"))
    loop_long = r["single"][0]["wall_s"]
    lines = [
        BEGIN,
        "## Using the whole machine (issue 17)",
        "",
        f"Measured {m['date']} on commit `{r['commit']}` with `make bench-throughput` (bench/throughput.py), "
        f"{m['cpu']}, {m['cores']} cores, load {m.get('load_1m', '?')} at start; {r['rounds']} interleaved rounds, "
        "medians (each round in brackets). faster-whisper tiny.en int8, greedy, word timestamps; spool runs are "
        "timed from the first rename into inbox/ to the last `job.succeeded`, plain ones exclude model loading. "
        "WER over all files against the words spoken.",
        "",
        f"**Backlog**: {r['files']} files, {r['audio_s']} s of audio, one of {r['long_s']} s, dropped at once.",
        "",
        "| layout | wall s | vs best plain | WER | spool chose |",
        "|---|---|---|---|---|",
    ]
    for row in r["backlog"]:
        runs = ", ".join(map(str, row["runs"]))
        lines.append(
            f"| {row['layout']} | {row['wall_s']} [{runs}] | {row['wall_s'] / best:.2f} | {row['wer']} "
            f"| {row['spool_layout']} |"
        )
    one_core = next((row["wall_s"] for row in r["scaling"] if "1 core" in row["layout"]), None)
    lines.append(
        f"| all-cores bound of one-by-one decoding (the {m['cores']} one-thread loops' decode time, spread evenly) "
        f"| {r['bound_s']} | {r['bound_s'] / best:.2f} | | |"
    )
    if one_core:
        bound = round(one_core / m["cores"], 2)
        lines.append(
            f"| all-cores bound of the spool's own decode (its 1-core time / {m['cores']}) | {bound} "
            f"| {bound / best:.2f} | | |"
        )
    lines += [
        "",
        f"**One long file** ({r['long_s']} s alone):",
        "",
        "| layout | wall s | vs plain loop | WER |",
        "|---|---|---|---|",
    ]
    for row in r["single"]:
        runs = ", ".join(map(str, row["runs"]))
        lines.append(f"| {row['layout']} | {row['wall_s']} [{runs}] | {row['wall_s'] / loop_long:.2f} | {row['wer']} |")
    lines += [
        "",
        "**Cores and hosts** (the backlog, one run each):",
        "",
        "| layout | wall s | audio s per s |",
        "|---|---|---|",
    ]
    for row in r["scaling"]:
        lines.append(
            f"| {row['layout']} ({row['spool_layout']}) | {row['wall_s']} | {r['audio_s'] / row['wall_s']:.1f} |"
        )
    lines += ["", *guidance(r), "", END]
    return "\n".join(lines)


def guidance(r: dict[str, Any]) -> list[str]:
    """The model of how throughput grows, checked against this run, and which settings to use where."""
    rows = {row["layout"].split(" (")[0]: row["wall_s"] for row in r["scaling"]}
    one = next((v for k, v in rows.items() if "1 core" in k), None)
    all_ = next((v for k, v in rows.items() if k.startswith("spool, defaults,") and "1 core" not in k), None)
    cores = r["machine"]["cores"]
    out = ["### How throughput grows, and which settings to use", ""]
    if one and all_:
        out.append(
            f"Model: a backlog's throughput is the cores times one core's rate (a one-thread, batched decode), "
            f"less what the last file leaves idle; a fleet adds its hosts' cores. Checked here: 1 core "
            f"{one} s, {cores} cores {all_} s, {one / all_:.2f}x for {cores}x the cores (the model says {cores}x; the "
            f"rest is the tail and the two cores' shared memory bandwidth). The all-cores bound with the spool's "
            f"own decode is the 1-core time spread over the cores: {one / cores:.1f} s."
        )
    fleet = [v for k, v in rows.items() if k.startswith("fleet")]
    if len(fleet) == 2:
        out.append(
            f"A fleet of {cores} one-core hosts on PostgreSQL did the backlog in {fleet[1]} s against one such "
            f"host's {fleet[0]} s ({fleet[0] / fleet[1]:.2f}x): hosts add like cores; coordination costs about "
            "18 ms per job (see Orchestration), nothing beside a transcription."
        )
    out += [
        "",
        "* **Laptop or desktop, CPU only (4-16 cores)**: the defaults. One worker per core, one thread each, "
        "as many as free memory holds (`workers.sized` in the log says what was chosen); a long file takes the "
        "idle cores as lanes; batches of 8. With a medium or large model the memory bound keeps fewer "
        "workers with more threads each, batches of 4 and at most 2 lanes; raise `worker_rss_limit_mb` if "
        "a worker is killed for memory. On Apple silicon: mlx on Metal, one worker (the GPU is the limit).",
        "* **16-core server**: the defaults give 16 workers x 1 thread (tiny to small) and a 2 h file is "
        "decoded 16 windows at a time when it is alone. With large models the memory bound sizes the workers "
        "(about 5 GB each on a CPU; say `workers` yourself if other services need the memory), with cores / "
        "workers threads each. For more, add hosts: a fleet on one "
        "PostgreSQL (docs/scale-out.md); these settings are per host.",
        '* **GPU box**: faster-whisper on CUDA, float16, one worker per GPU (`device = "cuda:N"`: one daemon '
        "per GPU, each with its own `host` name and state directory, on one spool and one PostgreSQL), "
        "batches of 8 (raise `batch_size` to 16 where the GPU's memory allows); lanes are off there (the device, not "
        "the "
        "cores, is the limit). Not measured on this machine, which has no GPU.",
    ]
    return out


def write(r: dict[str, Any]) -> None:
    put_section(REPO / "docs" / "performance.md", BEGIN, END, section(r))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.throughput", description=__doc__)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--no-fleet", action="store_true")
    p.add_argument("--render", action="store_true", help="write the section again from the last results")
    a = p.parse_args(argv)
    if a.render:
        write(json.loads((CACHE.parent / "throughput.json").read_text()))
        return 0
    r = measure(a.rounds, fleet=not a.no_fleet)
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE.parent / "throughput.json").write_text(json.dumps(r, indent=1))
    write(r)
    print(section(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
