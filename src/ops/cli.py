"""CLI commands that belong to operations: ``spool health`` and ``spool top``."""

from __future__ import annotations

import argparse
import curses
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ground.errors import SpoolError
from ops import alerts as alerts_mod
from ops import report as report_mod
from processor import liveness
from processor.config import Settings
from schema.errors import StoreError
from schema.jobs import JobState
from schema.store import EventStore
from spool import names

Add = Callable[[str, Callable[[argparse.Namespace, Settings], int], str], argparse.ArgumentParser]


def _store(settings: Settings) -> EventStore:
    layout = settings.layout
    if not layout.root.is_dir():
        raise SpoolError(f"{layout.root} is not a spool (no such directory)")
    return settings.open_store()


def cmd_health(args: argparse.Namespace, settings: Settings) -> int:
    """Exit 0 ok, 1 warning, 2 critical (the monitoring-plugin convention).

    What the daemon cannot say about itself (dead, frozen, writing into a deleted database) is
    looked at here from outside; a store that cannot be reached is critical, not a crash.
    """
    layout = settings.layout
    now = datetime.now(UTC)
    try:
        store = _store(settings)
    except StoreError as e:
        report = report_mod.unavailable(layout, now, str(e), liveness.inspect(layout, None, now))
    else:
        try:
            live = liveness.inspect(layout, store, now)
            report = report_mod.build(store, layout, settings, now, counters=live.counters(), problems=live.notes())
        except StoreError as e:
            report = report_mod.unavailable(layout, now, str(e), liveness.inspect(layout, None, now))
        finally:
            store.close()
    if args.json:
        sys.stdout.write(names.json_safe(json.dumps(report, indent=2, default=str, ensure_ascii=False)) + "\n")
    else:
        sys.stdout.write(names.printable(report_mod.text(report), keep="\n\t") + "\n")
    return alerts_mod.EXIT_CODES[report["status"]]


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    """Write the health report now (JSON and HTML) and print where."""
    from ops import html_report

    layout = settings.layout
    store = _store(settings)
    try:
        now = datetime.now(UTC)
        report = report_mod.build(store, layout, settings, now)
        report_mod.write(report, layout.reports, settings.reports_keep)
        page = html_report.write(report, store, now, layout.logs, layout.reports)
    finally:
        store.close()
    latest = layout.reports / "latest.html"
    if args.json:
        sys.stdout.write(json.dumps({"html": str(latest), "snapshot": str(page), "status": report["status"]}) + "\n")
    else:
        sys.stdout.write(f"{latest}\n")
    if args.open:
        import webbrowser

        webbrowser.open(latest.as_uri())
    return 0


def top_snapshot(settings: Settings, store: EventStore) -> dict[str, Any]:
    from processor.status import status_data

    data = status_data(settings, store)
    running = store.jobs([JobState.running, JobState.publishing])
    data["workers"] = {
        j.id: {"cpu": j.cpu_percent, "rss_mb": (j.rss_bytes or 0) / 2**20, "pid": j.pid} for j in running
    }
    return data


def render(data: dict[str, Any], width: int) -> list[str]:
    from processor.views import bar

    d = data["daemon"]
    lines = [
        f"spool top - {data['root']} - daemon {'pid ' + str(d['pid']) if d['running'] else 'NOT RUNNING'}"
        f" - {datetime.now(UTC).strftime('%H:%M:%S')}Z   (q quits)",
        f"queue {data['queue_depth']}   inbox {data['inbox_files']}   "
        + "  ".join(f"{k} {v}" for k, v in data["counts"].items() if v),
        "",
        f"{'JOB':12}  {'PROGRESS':32}  {'AUDIO':>11}  {'CPU%':>6}  {'RSS MB':>7}  NAME",
    ]
    for r in data["running"]:
        w = data["workers"].get(r["id"], {})
        pos = f"{r['position_s'] or 0:.0f}/{r['duration_s'] or 0:.0f}s"
        cpu = f"{w.get('cpu') or 0:.0f}"
        lines.append(
            f"{r['id']:12}  {bar(r['progress'], 24)} {r['progress'] * 100:5.1f}%  {pos:>11}  {cpu:>6}  "
            f"{w.get('rss_mb', 0):7.0f}  {r['name']}"
        )
    if not data["running"]:
        lines.append("(nothing running)")
    lines += ["", "alerts:" + ("" if data["alerts"] else " none firing")]
    lines += [f"  {a['level'].upper():8} {a['rule']}: {a['message']}" for a in data["alerts"]]
    return [line[: max(10, width - 1)] for line in lines]


def cmd_top(args: argparse.Namespace, settings: Settings) -> int:
    if not sys.stdout.isatty():
        raise SpoolError("spool top needs a terminal; for scripts use `spool status --json`")
    store = _store(settings)
    try:
        curses.wrapper(_top_loop, settings, store, args.interval)
    except KeyboardInterrupt:
        pass
    finally:
        store.close()
    return 0


def _top_loop(screen: Any, settings: Settings, store: EventStore, interval: float) -> None:
    curses.curs_set(0)
    screen.timeout(int(interval * 1000))  # getch() waits at most this long: the refresh period
    while True:
        height, width = screen.getmaxyx()
        screen.erase()
        for y, line in enumerate(render(top_snapshot(settings, store), width)[: height - 1]):
            screen.addstr(y, 0, names.printable(line))  # a name must not drive the terminal
        screen.refresh()
        key = screen.getch()
        if key in (ord("q"), ord("Q"), 27):
            return


def register(add: Add) -> None:
    add("health", cmd_health, "health report now; exit 0 ok, 1 warning, 2 critical")
    report = add("report", cmd_report, "write the health report now (state/reports/latest.html) and print its path")
    report.add_argument("--open", action="store_true", help="also open it in a web browser, where there is one")
    from processor.argtypes import seconds

    top = add("top", cmd_top, "live view of running jobs, workers, queue and alerts (q quits)")
    top.add_argument("--interval", type=seconds, default=0.5, help="refresh period in seconds (<= 1)")
