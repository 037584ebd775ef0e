"""/metrics scraped over HTTP and parsed with prometheus_client's own parser; the textfile option."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from ops.prometheus import Exporter, SpoolCollector
from processor.clock import FakeClock
from schema import events as ev
from schema.sqlite_store import SQLiteEventStore
from tests.ops.conftest import MakeCtx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def finished(store: SQLiteEventStore, clock: FakeClock, i: int, ok: bool, audio: float = 30.0) -> None:
    sid = ev.job_stream(f"j{i}")
    store.append(
        sid,
        [
            ev.JobSubmitted(job_id=f"j{i}", source=f"{i}.wav", size=1, mtime_ns=1),
            ev.JobStarted(attempt=1, worker="w1", pid=1, create_time=1.0, engine="t", model="m"),
        ],
    )
    clock.advance(10)
    if ok:
        store.append(
            sid,
            [
                ev.JobTranscribed(out_stem=str(i), outputs=["t.txt"], language="en", duration_s=audio, elapsed_s=3.0),
                ev.JobSucceeded(outputs=[f"{i}.txt"], done_path=None),
            ],
        )
    else:
        store.append(
            sid,
            [
                ev.JobFailed(
                    reason="bad_input", message="x", retryable=False, final=True, attempt=1, failed_path=f"{i}.wav"
                )
            ],
        )


def scrape(port: int) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            out.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def test_scrape_and_parse(make_ctx: MakeCtx, clock: FakeClock, tmp_path: Path) -> None:
    port = free_port()
    ctx = make_ctx(metrics_port=port, metrics_textfile=str(tmp_path / "spool.prom"), free_disk_floor_mb=0)
    for i in range(3):
        finished(ctx.store, clock, i, ok=True)
    finished(ctx.store, clock, 3, ok=False)
    ctx.store.append(
        ev.DAEMON_STREAM,
        [ev.AlertRaised(rule="stuck", level="warning", metric="stuck_processes", value=1, threshold=0, message="m")],
    )
    ctx.store.append("job-q", [ev.JobSubmitted(job_id="q", source="q.wav", size=1, mtime_ns=1)])
    exporter = Exporter(SpoolCollector(ctx.layout, ctx.settings, clock.wall), ctx.settings)
    assert exporter.start() == port
    try:
        m = scrape(port)
        assert m["spoolscribe_jobs_total"][(("state", "succeeded"),)] == 3
        assert m["spoolscribe_jobs_total"][(("state", "failed"),)] == 1
        assert m["spoolscribe_jobs_total"][(("state", "submitted"),)] == 5
        assert m["spoolscribe_audio_seconds_total"][()] == 90.0
        assert m["spoolscribe_job_duration_seconds_count"][()] == 3
        assert m["spoolscribe_job_duration_seconds_bucket"][(("le", "5.0"),)] == 3
        assert m["spoolscribe_realtime_factor_bucket"][(("le", "8.0"),)] == 0  # 30 s in 3 s: 10x
        assert m["spoolscribe_realtime_factor_bucket"][(("le", "16.0"),)] == 3
        assert m["spoolscribe_queue_depth"][()] == 1
        assert m["spoolscribe_alerts_firing"][(("level", "warning"), ("rule", "stuck"))] == 1
        assert m["spoolscribe_jobs"][(("state", "queued"),)] == 1
        finished(ctx.store, clock, 4, ok=True)  # counters move on between scrapes
        assert scrape(port)["spoolscribe_jobs_total"][(("state", "succeeded"),)] == 4
        path = exporter.write_textfile()
        assert path is not None
        families = {f.name for f in text_string_to_metric_families(path.read_text())}
        assert {"spoolscribe_jobs", "spoolscribe_queue_depth", "spoolscribe_realtime_factor"} <= families
        assert exporter._server.server_address[0] == "127.0.0.1"  # bound to loopback by default
    finally:
        exporter.stop()
