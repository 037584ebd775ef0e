"""Prometheus metrics: an opt-in ``/metrics`` endpoint (127.0.0.1 by default) and a textfile option.

Built on ``prometheus_client``: a custom collector computes, at each scrape,
the same metrics as ``spool health`` (gauges, ``spoolscribe_<name>``) plus
what Prometheus users expect:

* ``spoolscribe_jobs_total{state}`` - jobs submitted / succeeded / failed / cancelled (counters)
* ``spoolscribe_job_duration_seconds`` - processing time of successful jobs (histogram)
* ``spoolscribe_job_latency_seconds`` - drop to transcript (histogram)
* ``spoolscribe_audio_seconds_total`` - audio transcribed (counter)
* ``spoolscribe_realtime_factor`` - x real time per job (histogram)
* ``spoolscribe_queue_depth``, ``spoolscribe_oldest_queued_age_seconds``
* ``spoolscribe_worker_rss_bytes{worker}`` - resident size of busy workers (from heartbeats)
* ``spoolscribe_alerts_firing{rule,level}`` - 1 per firing alert

Counters and histograms are folded from the event log (from its start, then
incrementally), so they survive daemon restarts.  The collector has its own
database connection: a scrape never touches the daemon's loop.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server, write_to_textfile
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from ops import metrics as metrics_mod
from processor.config import Settings
from schema import events as ev
from schema.jobs import JobState
from schema.store import EventStore
from spool.layout import Layout

DURATION_BUCKETS = (1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
LATENCY_BUCKETS = (1, 5, 10, 30, 60, 120, 300, 900, 1800, 3600, 7200, 21600)
RTF_BUCKETS = (0.5, 1, 2, 4, 8, 16, 32, 64, 128)
FINISHED = {
    ev.JobSucceeded.type: "succeeded",
    ev.JobFailed.type: "failed",
    ev.JobCancelled.type: "cancelled",
    ev.JobSubmitted.type: "submitted",
}


class Histogram:
    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def family(self, name: str, doc: str) -> HistogramMetricFamily:
        cumulative, running = [], 0
        for bound, count in zip((*map(floatToGoString, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            cumulative.append((bound, running))
        return HistogramMetricFamily(name, doc, buckets=cumulative, sum_value=self.total)


class SpoolCollector(Collector):
    def __init__(
        self,
        layout: Layout,
        settings: Settings,
        now: Callable[[], datetime],
        counters: Callable[[], dict[str, Any]] = dict,
    ) -> None:
        self.layout = layout
        self.settings = settings
        self.now = now
        self.counters = counters
        self._lock = threading.Lock()
        self._store: EventStore | None = None
        self._cursor = 0
        self.jobs_total = dict.fromkeys(FINISHED.values(), 0)
        self.audio_seconds = 0.0
        self.duration = Histogram(DURATION_BUCKETS)
        self.latency = Histogram(LATENCY_BUCKETS)
        self.rtf = Histogram(RTF_BUCKETS)

    def _follow(self, store: EventStore) -> None:
        """Fold finished jobs appended since the last scrape into the counters and histograms."""
        while True:
            batch = store.read_all(self._cursor, limit=5000, types=tuple(FINISHED))
            if not batch:
                return
            for rec in batch:
                self._cursor = rec.position
                if isinstance(rec.event, ev.JobFailed) and not rec.event.final:
                    continue
                self.jobs_total[FINISHED[rec.type]] += 1
                if isinstance(rec.event, ev.JobSucceeded):
                    self._observe_success(store, ev.job_id_of(rec.stream) or "", rec.at)

    def _observe_success(self, store: EventStore, job_id: str, at: str) -> None:
        job = store.job(job_id)
        if job is None:
            return
        audio = job.duration_s or 0.0
        self.audio_seconds += audio
        self.latency.observe((datetime.fromisoformat(at) - datetime.fromisoformat(job.submitted_at)).total_seconds())
        if job.elapsed_s and job.duplicate_of is None:
            self.duration.observe(job.elapsed_s)
            if audio:
                self.rtf.observe(audio / job.elapsed_s)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            if self._store is None:
                self._store = self.settings.open_store()
            store = self._store
            self._follow(store)
            m = metrics_mod.compute(
                store,
                self.layout,
                now=self.now(),
                window_s=self.settings.metrics_window_s,
                stuck_after_s=self.settings.stuck_after_s,
                counters=self.counters(),
            )
            yield from self._gauges(m)
            yield from self._families(store)

    def _gauges(self, m: dict[str, Any]) -> Iterator[Metric]:
        for name, doc in metrics_mod.DESCRIPTIONS.items():
            yield GaugeMetricFamily(f"spoolscribe_{name}", doc, value=float(m.get(name, 0) or 0))
        yield GaugeMetricFamily(
            "spoolscribe_oldest_queued_age_seconds",
            "age of the oldest queued job",
            value=float(m["oldest_queued_age_s"]),
        )
        states = GaugeMetricFamily("spoolscribe_jobs", "jobs by current state", labels=["state"])
        for state in JobState:
            states.add_metric([state.value], float(m["counts"].get(state.value, 0)))
        yield states

    def _families(self, store: EventStore) -> Iterator[Metric]:
        total = CounterMetricFamily(
            "spoolscribe_jobs", "jobs that were submitted or reached an end state", labels=["state"]
        )
        for state, count in self.jobs_total.items():
            total.add_metric([state], float(count))
        yield total
        yield CounterMetricFamily("spoolscribe_audio_seconds", "audio transcribed, seconds", value=self.audio_seconds)
        yield self.duration.family("spoolscribe_job_duration_seconds", "processing time of successful jobs")
        yield self.latency.family("spoolscribe_job_latency_seconds", "drop to published transcript")
        yield self.rtf.family("spoolscribe_realtime_factor", "audio seconds per processing second, per job")
        rss = GaugeMetricFamily("spoolscribe_worker_rss_bytes", "resident size of busy workers", labels=["worker"])
        for job in store.jobs([JobState.running]):
            if job.worker and job.rss_bytes is not None:
                rss.add_metric([job.worker], float(job.rss_bytes))
        yield rss
        firing = GaugeMetricFamily("spoolscribe_alerts_firing", "1 per firing alert", labels=["rule", "level"])
        for alert in store.firing_alerts():
            firing.add_metric([alert["rule"], alert["level"]], 1.0)
        yield firing

    def close(self) -> None:
        with self._lock:
            if self._store is not None:
                self._store.close()
                self._store = None


class Exporter:
    """The registry, the optional HTTP server and the optional textfile."""

    def __init__(self, collector: SpoolCollector, settings: Settings) -> None:
        self.collector = collector
        self.settings = settings
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(collector)
        self._server: Any = None

    def start(self) -> int | None:
        if not self.settings.metrics_port:
            return None
        server, _thread = start_http_server(
            self.settings.metrics_port, addr=self.settings.metrics_addr, registry=self.registry
        )
        self._server = server
        return int(server.server_port)

    def write_textfile(self) -> Path | None:
        """For node_exporter's textfile collector on hosts without a Prometheus scrape of their own."""
        if not self.settings.metrics_textfile:
            return None
        path = Path(self.settings.metrics_textfile)
        write_to_textfile(str(path), self.registry)
        return path

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self.collector.close()
