"""Write docs/reliability.md from the rows the soak tests recorded (``make reliability``)."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from bench.common import REPO, commit, machine

RESULTS = REPO / "bench" / "results" / "reliability.jsonl"
PLAN = {  # row -> the fault as ../shared/RELIABILITY.md names it
    "1": "daemon kill -9 at random instants and at every named crash point",
    "2": "power loss between transcript write and event append",
    "3": "worker segfault / OOM kill",
    "4": "worker hang: silent, busy loop, SIGSTOP",
    "5": "worker ignores SIGTERM",
    "6": "grandchild left behind",
    "7": "daemon crash with live workers; PID reused",
    "8": "disk full on log / outbox / DB",
    "9": "database is locked",
    "10": "two daemons on one spool",
    "11": "corrupt / zero-byte / non-audio / truncated / 4 GB header / 20 GB sparse / wrong extension",
    "12": "file still being written",
    "13": "renamed into the inbox",
    "14": "same file twice / same content under two names",
    "15": "hostile and non-UTF-8 names",
    "16": "symlink, hardlink, FIFO, device, folder loop",
    "17": "hostile sidecars",
    "18": "inbox without change events",
    "19": "inotify overflow",
    "20": "clock jump +-1 h",
    "21": "SIGTERM to the daemon",
    "22": "daemon frozen",
    "23": "event store damaged",
    "24": "input deleted or replaced mid-job",
    "25": "fd / process / memory limits; 100k-file backlog",
    "26": "one input whose handling raises anything",
    "27": "configuration from any source wrong",
    "28": "recorders writing in place",
    "29": "the store refuses writes at the moment a worker reports",
    "30": "CLI and HTTP mistakes and OS errors",
    "31": "fleet: long or odd host names, foreign schema, minimal rights, outages, frozen leader",
}


def load(path: Path) -> list[dict[str, Any]]:
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        entry = json.loads(line)
        latest[(entry["row"], entry["fault"])] = entry
    return order(list(latest.values()))


def order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda e: (int("".join(c for c in e["row"] if c.isdigit())), e["row"], e["fault"]))


def commits(rows: list[dict[str, Any]]) -> str:
    """The commit the rows measured; when rows were re-run after a fix, which rows measured which."""
    by: dict[str, list[str]] = {}
    for r in rows:
        by.setdefault(r.get("commit") or commit(), []).append(r["row"])
    if len(by) == 1:
        return f"`{next(iter(by))}`"
    main = max(by, key=lambda c: len(by[c]))
    rest = "; ".join(f"row{'s' * (len(v) > 1)} {', '.join(v)} re-run on `{c}`" for c, v in by.items() if c != main)
    return f"`{main}` ({rest})"


def carried(doc: Path) -> tuple[list[dict[str, Any]], str]:
    """The rows of an earlier docs/reliability.md, each with the commit it names, and that run's date.

    ``make reliability-rerun`` measures only some rows; the others are carried over as they were
    measured (the header then says which commit measured which row), never re-dated.
    """
    if not doc.exists():
        return [], ""
    text = doc.read_text()
    head = re.search(r"Measured (.+?) on commit `(\w+)`(?: \((.*?)\))?, (.+?), \d+ cores", text)
    if head is None:
        return [], ""
    earlier = re.search(r"carried over from the run of (.+?)\) on commit", text)
    since = earlier.group(1) if earlier else f"{head.group(1)} on {head.group(4)}"
    by_row = {}
    for rows, sha in re.findall(r"rows? ([\w, ]+?) re-run on `(\w+)`", head.group(3) or ""):
        by_row.update({r.strip(): sha for r in rows.split(",")})
    out = []
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if not line.startswith("| ") or len(cells) != 7 or not cells[0][:1].isdigit():
            continue
        row, fault, n, failures, figure, target, met = cells
        entry = {"row": row, "fault": fault, "runs": int(n), "failures": int(failures), "figure": figure}
        entry |= {"target": target, "met": met == "yes", "notes": "", "scale": 1.0}
        out.append(entry | {"commit": by_row.get(row, head.group(2))})
    return out, since


def markdown(rows: list[dict[str, Any]], command: str, since: str = "") -> str:
    m = machine()
    scale = sorted({r["scale"] for r in rows})
    when = m["date"] + (f" (rows not re-run carried over from the run of {since})" if since else "")
    lines = [
        "# Reliability",
        "",
        f"Each row below is one fault from `../shared/RELIABILITY.md`, injected against the real daemon, "
        f"workers, SQLite file and watcher by `{command}` (pytest marker `soak`, `tests/reliability/`). "
        f"Measured {when} on commit {commits(rows)}, {m['cpu']}, {m['cores']} cores"
        + (f"; run counts scaled by {scale}" if scale != [1.0] else "")
        + ".",
        "Every run ends with the same check: each input in exactly one terminal place, no duplicate outputs, "
        "`replay --verify` ok, `PRAGMA integrity_check` ok, no process of the spool left alive.",
        "",
        "| # | fault | runs | failures | measured | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    seen = set()
    for r in rows:
        seen.add("".join(c for c in r["row"] if c.isdigit()))
        note = f" ({r['notes']})" if r.get("notes") else ""
        lines.append(
            f"| {r['row']} | {r['fault']} | {r['runs']} | {r['failures']} | {r['figure']}{note} | "
            f"{r['target']} | {'yes' if r['met'] else '**NO**'} |"
        )
    missing = [f"{k} ({v})" for k, v in PLAN.items() if k not in seen]
    if missing:
        lines += ["", "Not measured in this run: " + "; ".join(missing) + "."]
    short = [r for r in rows if not r["met"]]
    lines += ["", f"{len(rows) - len(short)} of {len(rows)} rows at their target."]
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.reliability_report")
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--out", type=Path, default=REPO / "docs" / "reliability.md")
    p.add_argument("--keep", action="store_true", help="carry over the rows of --out that were not re-run")
    a = p.parse_args()
    rows = load(a.results)
    if not rows:
        print(f"no results in {a.results}; run `make reliability` first", file=sys.stderr)
        return 1
    since = ""
    if a.keep:
        old, since = carried(a.out)
        fresh = {(r["row"], r["fault"]) for r in rows}
        rows = order([r for r in old if (r["row"], r["fault"]) not in fresh] + rows)
    a.out.write_text(markdown(rows, "make reliability", since))
    print(a.out.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
