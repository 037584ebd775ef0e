"""APScheduler inside the daemon: it decides when each ops job is due and hands it to the loop."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from ops.context import OpsContext
from ops.runner import OpsRunner

FIRST_AT_START = ("sweep", "metrics", "report")  # orphans at once; status and latest.json from the start


class Scheduled:
    """The daemon's handle on its scheduled work."""

    def __init__(self, runner: OpsRunner, scheduler: BackgroundScheduler) -> None:
        self.runner = runner
        self.scheduler = scheduler

    def run(self, name: str) -> None:
        self.runner.run(name)

    def overdue(self, now_mono: float) -> list[str]:
        return self.runner.overdue(now_mono)

    def shutdown(self) -> None:
        self.scheduler.shutdown(wait=False)
        self.runner.notifier.stop()
        if self.runner.exporter is not None:
            self.runner.exporter.stop()


def start(ctx: OpsContext, request: Callable[[str], None]) -> Scheduled:
    """Build the runner (validating [alerts] and [notify]), start APScheduler and the notifier."""
    runner = OpsRunner(ctx)
    scheduler = BackgroundScheduler(
        timezone=UTC,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
    )
    now = datetime.now(UTC)
    for name, period in runner.periods.items():
        kwargs: dict[str, Any] = {"next_run_time": now} if name in FIRST_AT_START else {}
        scheduler.add_job(request, "interval", seconds=period, args=[name], id=name, name=f"spool {name}", **kwargs)
    scheduler.start()
    runner.scheduler = scheduler
    runner.notifier.start()
    s = ctx.settings
    if s.metrics_port or s.metrics_textfile:
        from ops.prometheus import Exporter, SpoolCollector

        runner.exporter = Exporter(SpoolCollector(ctx.layout, s, ctx.now, ctx.counters), s)
        port = runner.exporter.start()
        if port:
            ctx.log.info("metrics.serving", url=f"http://{s.metrics_addr}:{port}/metrics")
    return Scheduled(runner, scheduler)
