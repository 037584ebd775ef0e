"""The scheduled jobs themselves.  Each runs on the daemon's loop, one at a time.

APScheduler decides *when* (interval triggers, coalescing, misfire grace); the
daemon's loop runs *what*, so ops code never races the supervisor's state.
As a backstop against wall-clock jumps (APScheduler 3 schedules by the wall
clock) the loop also asks :meth:`OpsRunner.overdue` on its monotonic clock.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from ground.times import iso
from ops import alerts as alerts_mod
from ops import backup as backup_mod
from ops import html_report, retention
from ops import metrics as metrics_mod
from ops import report as report_mod
from ops.context import OpsContext
from ops.notify import Notifier, parse
from schema import events as ev
from schema.jobs import JobState

LEVEL_METHOD = {"critical": "critical", "warning": "warning", "info": "info"}
LEADER_ONLY = frozenset({"sweep", "metrics", "report", "retention", "compaction", "backup"})


class OpsRunner:
    def __init__(self, ctx: OpsContext) -> None:
        self.ctx = ctx
        s = ctx.settings
        self.rules = alerts_mod.parse_rules(s.alerts, s.free_disk_floor_mb)  # bad config stops the start
        self.notifier = Notifier(s.open_store, parse(s.notify), str(ctx.layout.root), ctx.log)
        self.periods = {
            "sweep": s.sweep_s,
            "rescan": s.rescan_s,
            "metrics": s.metrics_s,
            "report": s.report_s,
            "retention": s.retention_s,
            "compaction": s.compaction_s,
            "backup": s.backup_s,
        }
        if ctx.store.fleet:
            del self.periods["backup"]  # a file copy of SQLite; PostgreSQL has its own (pg_dump, base backups)
        self.last_run: dict[str, float] = {name: time.monotonic() for name in self.periods}
        self.last_metrics: dict[str, Any] = {}
        self.last_report: dict[str, Any] | None = None
        self.runs: dict[str, int] = dict.fromkeys(self.periods, 0)
        self.scheduler: Any = None
        self.exporter: Any = None  # ops.prometheus.Exporter when metrics are exported

    def run(self, name: str) -> None:
        """Run one job now; a failing job is logged, never fatal to the daemon.

        In a fleet only the leader runs the shared work; every host rescans its view of the inbox.
        """
        self.last_run[name] = time.monotonic()
        if name in LEADER_ONLY and not self.ctx.is_leader():
            return
        if name in LEADER_ONLY and self.ctx.store.fleet:
            self.ctx.log.debug("ops.leader_job", job=name)  # what the one-leader test reads
        self.runs[name] += 1
        try:
            getattr(self, f"job_{name}")()
        except Exception as e:  # noqa: BLE001 - ops must not take the spool down
            self.ctx.log.error("ops.failed", job=name, error=repr(e)[:500])

    def overdue(self, now_mono: float) -> list[str]:
        return [n for n, p in self.periods.items() if now_mono - self.last_run[n] > 2 * p + 5]

    # --- the jobs -------------------------------------------------------------------

    def job_sweep(self) -> None:
        if self.ctx.sweep is not None:
            self.ctx.sweep()

    def job_rescan(self) -> None:
        if self.ctx.rescan is not None:
            self.ctx.rescan()

    def job_metrics(self) -> None:
        s, store = self.ctx.settings, self.ctx.store
        m = metrics_mod.compute(
            store,
            self.ctx.layout,
            now=self.ctx.now(),
            window_s=s.metrics_window_s,
            stuck_after_s=s.stuck_after_s,
            counters=self.ctx.counters(),
        )
        self.last_metrics = m
        if self.exporter is not None:
            self.exporter.write_textfile()
        evaluation = alerts_mod.evaluate(self.rules, m)
        firing = {a["rule"] for a in store.firing_alerts()}
        raised, resolved = alerts_mod.transitions(self.rules, evaluation, firing)
        for rule, value in raised:
            message = rule.describe(value)
            store.append(
                ev.DAEMON_STREAM,
                [
                    ev.AlertRaised(
                        rule=rule.name,
                        level=rule.level,
                        metric=rule.metric,
                        value=value,
                        threshold=rule.threshold,
                        message=message,
                    )
                ],
            )
            getattr(self.ctx.log, LEVEL_METHOD[rule.level])(
                "alert.raised", rule=rule.name, alert_level=rule.level, metric=rule.metric, value=value, message=message
            )
        for name, value in resolved:
            store.append(ev.DAEMON_STREAM, [ev.AlertResolved(rule=name, value=value)])
            self.ctx.log.info("alert.resolved", rule=name, value=value)
        if raised or resolved:
            self.notifier.poke()

    def job_report(self) -> None:
        now = self.ctx.now()
        report = report_mod.build(self.ctx.store, self.ctx.layout, self.ctx.settings, now, self.ctx.counters())
        path = report_mod.write(report, self.ctx.layout.reports, self.ctx.settings.reports_keep)
        html_report.write(report, self.ctx.store, now, self.ctx.layout.logs, self.ctx.layout.reports)
        html_report.prune(self.ctx.layout.reports, self.ctx.settings.reports_keep)
        self.last_report = report
        self.ctx.store.append(ev.DAEMON_STREAM, [ev.ReportWritten(path=str(path), status=report["status"])])
        for hook in self.ctx.extra.get("report_hooks", []):
            hook(report)

    def job_retention(self) -> None:
        s = self.ctx.settings
        keep = {
            j.id
            for j in self.ctx.store.jobs([JobState.queued, JobState.running, JobState.retry_wait, JobState.publishing])
        }
        pruned = retention.prune_logs(
            self.ctx.layout.logs,
            now_ts=self.ctx.now().timestamp(),
            max_age_s=s.log_max_age_days * 86400,
            max_total_bytes=s.log_total_max_mb * 2**20,
            keep=keep,
        )
        if pruned.files:
            self.ctx.store.append(ev.DAEMON_STREAM, [ev.LogsPruned(files=pruned.files, bytes=pruned.bytes)])
            self.ctx.log.info("logs.pruned", files=pruned.files, bytes=pruned.bytes)

    def job_compaction(self) -> None:
        cutoff = iso(self.ctx.now() - timedelta(days=self.ctx.settings.heartbeat_keep_days))
        jobs, removed = self.ctx.store.compact_heartbeats(cutoff)
        leases = self.ctx.store.compact_leases(cutoff)
        if removed or leases:
            self.ctx.store.append(ev.DAEMON_STREAM, [ev.EventsCompacted(jobs=jobs, removed=removed, leases=leases)])
            self.ctx.log.info("events.compacted", jobs=jobs, removed=removed, leases=leases)

    def job_backup(self) -> None:
        path = backup_mod.backup(
            self.ctx.layout.db, self.ctx.layout.backups, self.ctx.now(), self.ctx.settings.backups_keep
        )
        self.ctx.log.info("db.backup", path=str(path))
