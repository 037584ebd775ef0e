"""Alert rules: configurable, and each rule raised once and resolved once however often it is evaluated."""

from __future__ import annotations

import pytest
import structlog

from ground.errors import ConfigError
from ops import alerts
from ops.runner import OpsRunner
from schema import events as ev
from tests.ops.conftest import MakeCtx


def test_default_rules() -> None:
    rules = {r.name: r for r in alerts.parse_rules({}, free_disk_floor_mb=500)}
    assert (rules["orphans"].metric, rules["orphans"].op, rules["orphans"].threshold, rules["orphans"].level) == (
        "orphaned_cleaned",
        ">",
        0,
        "critical",
    )
    assert rules["stuck"].level == "warning" and rules["log_size"].threshold == 10240
    assert rules["jobs_with_pid"].level == "info" and rules["disk_low"].threshold == 500


def test_rules_override_add_and_disable() -> None:
    rules = {
        r.name: r
        for r in alerts.parse_rules(
            {
                "orphans": {"level": "warning"},
                "backlog": {"metric": "queue_depth", "op": ">=", "threshold": 100, "level": "critical"},
                "jobs_with_pid": {"enabled": False},
            },
            500,
        )
    }
    assert rules["orphans"].level == "warning" and rules["orphans"].threshold == 0
    assert rules["backlog"].check(100) and not rules["backlog"].check(99)
    assert "jobs_with_pid" not in rules


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"x": {"metric": "nope", "threshold": 1}}, "alerts.x.metric: 'nope' is not a metric"),
        ({"x": {"metric": "queue_depth", "op": "~", "threshold": 1}}, "alerts.x.op"),
        ({"x": {"metric": "queue_depth", "threshold": "lots"}}, "alerts.x.threshold"),
        ({"x": {"metric": "queue_depth", "threshold": 1, "level": "panic"}}, "alerts.x.level"),
        ({"x": {"metric": "queue_depth", "threshold": 1, "colour": "red"}}, "unknown keys"),
    ],
)
def test_bad_rules_name_the_key(config: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        alerts.parse_rules(config, 500)


def test_raised_once_and_resolved_once_across_many_evaluations(make_ctx: MakeCtx) -> None:
    ctx = make_ctx(
        alerts={"backlog": {"metric": "queue_depth", "op": ">", "threshold": 2, "level": "warning"}},
        free_disk_floor_mb=0,
    )
    runner = OpsRunner(ctx)
    for i in range(3):
        ctx.store.append(
            ev.job_stream(f"j{i}"), [ev.JobSubmitted(job_id=f"j{i}", source=f"{i}.wav", size=1, mtime_ns=1)]
        )
    with structlog.testing.capture_logs() as logged:
        for _ in range(5):
            runner.job_metrics()
        assert [a["rule"] for a in ctx.store.firing_alerts()] == ["backlog"]
        for i in range(3):
            ctx.store.append(ev.job_stream(f"j{i}"), [ev.JobCancelled(failed_path=f"{i}.wav")])
        for _ in range(5):
            runner.job_metrics()
    types = [r.type for r in ctx.store.read(ev.DAEMON_STREAM)]
    assert types == ["alert.raised", "alert.resolved"]
    assert ctx.store.firing_alerts() == []
    raised = [entry for entry in logged if entry["event"] == "alert.raised"]
    assert len(raised) == 1 and raised[0]["log_level"] == "warning" and raised[0]["rule"] == "backlog"


def test_firing_state_survives_a_restart(make_ctx: MakeCtx) -> None:
    ctx = make_ctx(
        alerts={"any": {"metric": "total_jobs", "op": ">=", "threshold": 0, "level": "info"}}, free_disk_floor_mb=0
    )
    OpsRunner(ctx).job_metrics()
    OpsRunner(ctx).job_metrics()  # a new runner (daemon restart) reads the firing set from the store
    assert [r.type for r in ctx.store.read(ev.DAEMON_STREAM)] == ["alert.raised"]


def test_status_and_exit_codes() -> None:
    assert alerts.status_of([]) == "ok" and alerts.status_of(["info"]) == "ok"
    assert alerts.status_of(["info", "warning"]) == "warning"
    assert alerts.status_of(["warning", "critical"]) == "critical"
    assert alerts.EXIT_CODES == {"ok": 0, "warning": 1, "critical": 2}
