"""The visual health report: one self-contained HTML page (inline SVG, no JavaScript, no network).

Everything on it is derived from the event log: one pass over the lifecycle
events (not the heartbeats) rebuilds, for the last 24 hours and 7 days, the
queue depth over time, throughput (audio seconds per wall second), x real
time per job, failures and alerts.  Firing alerts are on top; the slowest and
the failed jobs link to their logs.  Each window's section carries ``data-*``
attributes with its totals, so tests can check the page against the log.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from schema import events as ev
from schema.store import EventStore
from spool import names

LIFECYCLE = (
    ev.JobSubmitted.type,
    ev.JobStarted.type,
    ev.JobTranscribed.type,
    ev.JobDuplicate.type,
    ev.JobSucceeded.type,
    ev.JobFailed.type,
    ev.JobRetryScheduled.type,
    ev.JobCancelled.type,
    ev.JobRequeued.type,
    ev.JobInputChanged.type,
    ev.AlertRaised.type,
    ev.AlertResolved.type,
)
WAITING_STARTS = (ev.JobSubmitted, ev.JobRequeued, ev.JobInputChanged)


@dataclass
class JobFacts:
    id: str
    source: str = ""
    submitted: float = 0.0
    finished: float | None = None
    state: str = "queued"
    audio_s: float = 0.0
    elapsed_s: float = 0.0
    reason: str = ""
    message: str = ""
    waiting: list[tuple[float, float | None]] = field(default_factory=list)  # intervals in the queue

    @property
    def rtf(self) -> float | None:
        return self.audio_s / self.elapsed_s if self.elapsed_s > 0 and self.audio_s > 0 else None


@dataclass
class History:
    jobs: dict[str, JobFacts] = field(default_factory=dict)
    alerts: list[tuple[float, str, str]] = field(default_factory=list)  # (when, rule, level) raised


def _ts(at: str) -> float:
    return datetime.fromisoformat(at).timestamp()


def history(store: EventStore) -> History:
    """One pass over the lifecycle events, in order."""
    h = History()
    position = 0
    while True:
        batch = store.read_all(position, limit=5000, types=LIFECYCLE)
        if not batch:
            return h
        for rec in batch:
            position = rec.position
            _apply(h, rec.event, _ts(rec.at), ev.job_id_of(rec.stream))


def _apply(h: History, e: ev.Event, t: float, job_id: str | None) -> None:
    if isinstance(e, ev.AlertRaised):
        h.alerts.append((t, e.rule, e.level))
        return
    if job_id is None:
        return
    job = h.jobs.setdefault(job_id, JobFacts(job_id))
    if isinstance(e, WAITING_STARTS):
        if isinstance(e, ev.JobSubmitted):
            job.source, job.submitted = e.source, t
        job.state, job.finished = "queued", None
        _open_wait(job, t)
    elif isinstance(e, ev.JobStarted):
        _close_wait(job, t)
        job.state = "running"
    elif isinstance(e, ev.JobTranscribed):
        job.audio_s, job.elapsed_s = e.duration_s, e.elapsed_s
    elif isinstance(e, ev.JobSucceeded):
        job.state, job.finished = "succeeded", t
    elif isinstance(e, ev.JobFailed):
        job.reason, job.message = e.reason, e.message
        if e.final:
            _close_wait(job, t)
            job.state, job.finished = "failed", t
        else:
            _open_wait(job, t)
    elif isinstance(e, ev.JobCancelled):
        _close_wait(job, t)
        job.state, job.finished, job.reason = "cancelled", t, "cancelled"


def _open_wait(job: JobFacts, t: float) -> None:
    if not job.waiting or job.waiting[-1][1] is not None:
        job.waiting.append((t, None))


def _close_wait(job: JobFacts, t: float) -> None:
    if job.waiting and job.waiting[-1][1] is None:
        job.waiting[-1] = (job.waiting[-1][0], t)


@dataclass
class Window:
    name: str
    start: float
    end: float
    bucket_s: float
    queue: list[int]
    throughput: list[float]
    succeeded: list[int]
    failed: list[int]
    alerts: list[tuple[float, str, str]]
    rtf: list[tuple[float, float, str]]  # (finished, x real time, job id)
    totals: dict[str, float]


def peak_queue(h: History, start: float, size: float, buckets: int) -> list[int]:
    """The highest queue depth within each bucket (a sweep over every waiting interval's ends)."""
    steps = sorted(
        [(a, 1) for j in h.jobs.values() for a, _ in j.waiting]
        + [(b, -1) for j in h.jobs.values() for _, b in j.waiting if b is not None],
        key=lambda step: (step[0], -step[1]),  # at one instant, arrivals count before departures
    )
    peaks = [0] * buckets
    depth, k = 0, 0
    while k < len(steps) and steps[k][0] < start:  # depth when the window opens
        depth += steps[k][1]
        k += 1
    for i in range(buckets):
        end = start + size * (i + 1)
        peak = depth
        while k < len(steps) and steps[k][0] < end:
            depth += steps[k][1]
            peak = max(peak, depth)
            k += 1
        peaks[i] = peak
    return peaks


def window(h: History, name: str, end: float, span_s: float, buckets: int) -> Window:
    start = end - span_s
    size = span_s / buckets
    queue = peak_queue(h, start, size, buckets)
    audio, ok, bad = [0.0] * buckets, [0] * buckets, [0] * buckets
    rtf = []
    for j in h.jobs.values():
        if j.finished is None or not start <= j.finished < end:
            continue
        i = min(buckets - 1, int((j.finished - start) // size))
        if j.state == "succeeded":
            ok[i] += 1
            audio[i] += j.audio_s
            if j.rtf is not None:
                rtf.append((j.finished, j.rtf, j.id))
        elif j.state == "failed":
            bad[i] += 1
    alerts = [a for a in h.alerts if start <= a[0] < end]
    totals = {
        "succeeded": sum(ok),
        "failed": sum(bad),
        "audio_s": round(sum(audio), 3),
        "alerts": len(alerts),
        "max_queue": max(queue) if queue else 0,
    }
    return Window(name, start, end, size, queue, [a / size for a in audio], ok, bad, alerts, rtf, totals)


# --- SVG ----------------------------------------------------------------------

W, H, PAD = 640, 150, 32


def _fmt(t: float, span: float) -> str:
    d = datetime.fromtimestamp(t).astimezone()
    return d.strftime("%H:%M") if span <= 2 * 86400 else d.strftime("%a %d")


def bars(values: list[float], win: Window, label: str, colour: str, unit: str = "") -> str:
    top = max(values) if values and max(values) > 0 else 1.0
    n = max(1, len(values))
    bw = (W - 2 * PAD) / n
    parts = [
        f'<svg viewBox="0 0 {W} {H}" role="img" aria-label="{html.escape(label)}" class="chart">',
        f'<text x="{PAD}" y="14" class="t">{html.escape(label)} (max {top:.3g}{unit})</text>',
        f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - PAD}" y2="{H - PAD}" class="axis"/>',
    ]
    for i, v in enumerate(values):
        h = (H - 2 * PAD - 10) * (v / top)
        x = PAD + i * bw
        t0 = win.start + i * win.bucket_s
        parts.append(
            f'<rect x="{x + 1:.1f}" y="{H - PAD - h:.1f}" width="{max(1.0, bw - 2):.1f}" height="{h:.1f}" '
            f'fill="{colour}"><title>{_fmt(t0, win.end - win.start)}: {v:.3g}{unit}</title></rect>'
        )
    for frac in (0, 0.5, 1):
        t = win.start + frac * (win.end - win.start)
        x = PAD + frac * (W - 2 * PAD)
        parts.append(
            f'<text x="{x:.0f}" y="{H - 12}" class="l" text-anchor="middle">{_fmt(t, win.end - win.start)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def scatter(win: Window, label: str) -> str:
    points = win.rtf
    top = max((p[1] for p in points), default=1.0) or 1.0
    span = win.end - win.start
    parts = [
        f'<svg viewBox="0 0 {W} {H}" role="img" aria-label="{html.escape(label)}" class="chart">',
        f'<text x="{PAD}" y="14" class="t">{html.escape(label)} ({len(points)} jobs, max {top:.3g}x)</text>',
        f'<line x1="{PAD}" y1="{H - PAD}" x2="{W - PAD}" y2="{H - PAD}" class="axis"/>',
    ]
    for t, rtf, job_id in points:
        x = PAD + (W - 2 * PAD) * (t - win.start) / span
        y = H - PAD - (H - 2 * PAD - 10) * rtf / top
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" class="dot"><title>{job_id}: {rtf:.1f}x</title></circle>'
        )
    parts.append("</svg>")
    return "".join(parts)


def failures(win: Window) -> str:
    svg = bars([float(v) for v in win.failed], win, "failed jobs", "#c0392b")
    span = win.end - win.start
    marks = []
    for t, rule, level in win.alerts:
        x = PAD + (W - 2 * PAD) * (t - win.start) / span
        marks.append(
            f'<line x1="{x:.1f}" y1="20" x2="{x:.1f}" y2="{H - PAD}" class="alert {level}">'
            f"<title>alert {html.escape(rule)} ({level})</title></line>"
        )
    return svg.replace("</svg>", "".join(marks) + "</svg>")


# --- the page -------------------------------------------------------------------

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em auto;max-width:1000px;color:#222;padding:0 1em}
h1{font-size:1.4em} h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
.status{display:inline-block;padding:.2em .7em;border-radius:1em;color:#fff;font-weight:600}
.ok{background:#27ae60}.warning{background:#e67e22}.critical{background:#c0392b}.info{background:#2980b9}
table{border-collapse:collapse;width:100%;margin:.5em 0} td,th{border-bottom:1px solid #eee;padding:.25em .5em;
text-align:left} td.n{text-align:right;font-variant-numeric:tabular-nums}
.grid{display:grid;grid-template-columns:1fr 1fr;gap:1em} .chart{width:100%;background:#fafafa;border:1px solid #eee}
.chart .t{font-size:12px;fill:#333}.chart .l{font-size:10px;fill:#777}.axis{stroke:#999}
.dot{fill:#8e44ad}.alert{stroke-width:2;stroke-dasharray:3 2}.alert.critical{stroke:#c0392b}
.alert.warning{stroke:#e67e22}.alert.info{stroke:#2980b9} .alerts li{margin:.3em 0}
"""


def render(report: dict[str, Any], h: History, now: datetime, logs: Path, reports: Path) -> str:
    end = now.timestamp()
    wins = [window(h, "24h", end, 86400, 48), window(h, "7d", end, 7 * 86400, 56)]
    status = report["status"]
    out = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width,initial-scale=1'>",
        f"<title>spoolscribe health: {html.escape(status)}</title><style>{CSS}</style></head><body>",
        f"<h1>spoolscribe health <span class='status {status}' id='status'>{html.escape(status.upper())}</span></h1>",
        f"<p>{html.escape(report['root'])} &middot; generated {html.escape(report['generated_at'][:19])}Z</p>",
        "<section id='alerts'><h2>Firing alerts</h2>",
    ]
    if report["alerts"]:
        out.append("<ul class='alerts'>")
        for a in report["alerts"]:
            out.append(
                f"<li data-rule='{html.escape(a['rule'])}'><span class='status {a['level']}'>"
                f"{html.escape(a['level'])}</span> <b>{html.escape(a['rule'])}</b>: "
                f"{html.escape(a['message'])}</li>"
            )
        out.append("</ul>")
    else:
        out.append("<p>None firing.</p>")
    out.append("</section>")
    out.append(_summary(report))
    for win in wins:
        out.append(_window_section(win))
    out.append(_jobs_tables(h, wins[1], logs, reports))
    out.append("</body></html>")
    return "\n".join(out)


def _summary(report: dict[str, Any]) -> str:
    m = report["metrics"]
    keys = [
        "queue_depth",
        "oldest_queued_age_s",
        "jobs_running",
        "stuck_processes",
        "errors_count",
        "throughput",
        "orphaned_cleaned",
        "free_disk_mb",
        "db_size_mb",
        "log_files_size_mb",
        "total_jobs",
    ]
    rows = "".join(
        f"<tr><th>{k}</th><td class='n' data-metric='{k}'>{html.escape(str(m.get(k)))}</td></tr>"
        for k in keys
        if k in m
    )
    day = "".join(
        f"<tr><th>{html.escape(k)}</th><td class='n'>{html.escape(str(v))}</td></tr>"
        for k, v in report["last_24h"].items()
    )
    return (
        f"<section id='summary'><h2>Now</h2><div class='grid'><table>{rows}</table>"
        f"<table><caption>last 24 h</caption>{day}</table></div></section>"
    )


def _window_section(win: Window) -> str:
    attrs = " ".join(f"data-{k.replace('_', '-')}='{v}'" for k, v in win.totals.items())
    return (
        f"<section id='window-{win.name}' {attrs}><h2>Last {win.name}</h2><div class='grid'>"
        + bars([float(q) for q in win.queue], win, "queue depth", "#2980b9")
        + bars(win.throughput, win, "throughput (audio s per wall s)", "#27ae60", "x")
        + scatter(win, "x real time per job")
        + failures(win)
        + f"</div><p>{win.totals['succeeded']} succeeded, {win.totals['failed']} failed, "
        f"{win.totals['audio_s'] / 3600:.2f} h of audio, {win.totals['alerts']} alerts raised.</p></section>"
    )


def _log_link(job_id: str, logs: Path, reports: Path) -> str:
    path = logs / f"{job_id}.log"
    if not path.exists():
        return "&ndash;"
    rel = os.path.relpath(path, reports)
    return f"<a href='{html.escape(rel)}'>log</a>"


def _jobs_tables(h: History, week: Window, logs: Path, reports: Path) -> str:
    done = [j for j in h.jobs.values() if j.finished and j.finished >= week.start]
    slow = sorted((j for j in done if j.state == "succeeded" and j.elapsed_s), key=lambda j: -j.elapsed_s)[:10]
    failed = sorted((j for j in done if j.state in ("failed", "cancelled")), key=lambda j: -(j.finished or 0))[:20]
    out = [
        "<section id='slowest'><h2>Slowest jobs (7 d)</h2><table><tr><th>job</th><th>file</th>"
        "<th>audio s</th><th>processing s</th><th>x real time</th><th></th></tr>"
    ]
    for j in slow:
        out.append(
            f"<tr data-job='{j.id}'><td>{j.id}</td><td>{html.escape(names.display(j.source))}</td>"
            f"<td class='n'>{j.audio_s:.1f}</td><td class='n'>{j.elapsed_s:.1f}</td>"
            f"<td class='n'>{(j.rtf or 0):.1f}</td><td>{_log_link(j.id, logs, reports)}</td></tr>"
        )
    out.append(
        "</table></section><section id='failed'><h2>Failed and cancelled jobs (7 d)</h2><table><tr>"
        "<th>job</th><th>file</th><th>when</th><th>reason</th><th>message</th><th></th></tr>"
    )
    for j in failed:
        when = datetime.fromtimestamp(j.finished or 0).astimezone().strftime("%Y-%m-%d %H:%M")
        out.append(
            f"<tr data-job='{j.id}'><td>{j.id}</td><td>{html.escape(names.display(j.source))}</td><td>{when}</td>"
            f"<td>{html.escape(j.reason)}</td><td>{html.escape(j.message[:200])}</td>"
            f"<td>{_log_link(j.id, logs, reports)}</td></tr>"
        )
    out.append("</table></section>")
    return "".join(out)


def write(report: dict[str, Any], store: EventStore, now: datetime, logs: Path, reports: Path) -> Path:
    from spool import fsio

    page = render(report, history(store), now, logs, reports)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    path = reports / f"health-{stamp}.html"
    fsio.atomic_write(path, page.encode())
    fsio.atomic_write(reports / "latest.html", page.encode())
    return path


def prune(reports: Path, keep: int) -> None:
    for old in sorted(reports.glob("health-*.html"))[:-keep]:
        old.unlink(missing_ok=True)


__all__ = ["history", "render", "window", "write"]
