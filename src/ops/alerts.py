"""Alert rules: metrics in, alert.raised / alert.resolved out, each transition once.

Pure: :func:`evaluate` compares metrics with thresholds, :func:`transitions`
compares that with what is firing now.  Rules come from defaults overridden by
``[alerts.<name>]`` tables in spool.toml::

    [alerts.queue_backlog]
    metric = "queue_depth"
    op = ">"
    threshold = 500
    level = "warning"
    message = "{value} jobs waiting"

    [alerts.jobs_with_pid]      # turn a default rule off
    enabled = false
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ops.metrics import DESCRIPTIONS
from schema.errors import ConfigError

LEVELS = ("info", "warning", "critical")
OPS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True)
class Rule:
    name: str
    metric: str
    op: str
    threshold: float
    level: str
    message: str

    def check(self, value: float) -> bool:
        return OPS[self.op](value, self.threshold)

    def describe(self, value: float) -> str:
        return self.message.format(value=value, threshold=self.threshold, metric=self.metric)


def default_rules(free_disk_floor_mb: float) -> list[Rule]:
    return [
        Rule(
            "orphans",
            "orphaned_cleaned",
            ">",
            0,
            "critical",
            "{value:g} job(s) orphaned in the last window: a worker or the daemon died or hung",
        ),
        Rule("stuck", "stuck_processes", ">", 0, "warning", "{value:g} running job(s) without progress"),
        Rule("log_size", "log_files_size_mb", ">", 10240, "warning", "job logs use {value:.0f} MB (> {threshold:g})"),
        Rule(
            "jobs_with_pid",
            "jobs_with_pid",
            "<",
            100,
            "info",
            "only {value:g} % of running jobs have a recorded worker pid",
        ),
        Rule(
            "disk_low",
            "free_disk_mb",
            "<",
            free_disk_floor_mb,
            "warning",
            "{value:.0f} MB free, below the floor of {threshold:g} MB: intake is paused",
        ),
    ]


def parse_rules(config: dict[str, Any], free_disk_floor_mb: float) -> list[Rule]:
    """Defaults overridden/extended by ``[alerts]``; every mistake names the key."""
    rules = {r.name: r for r in default_rules(free_disk_floor_mb)}
    known_metrics = set(DESCRIPTIONS)
    for name, raw in config.items():
        key = f"alerts.{name}"
        if not isinstance(raw, dict):
            raise ConfigError(key, "must be a table of metric, op, threshold, level")
        unknown = set(raw) - {"metric", "op", "threshold", "level", "message", "enabled"}
        if unknown:
            raise ConfigError(key, f"unknown keys {sorted(unknown)}", "metric, op, threshold, level, message, enabled")
        if raw.get("enabled", True) is False:
            rules.pop(name, None)
            continue
        base = rules.get(name)
        metric = raw.get("metric", base.metric if base else None)
        if metric not in known_metrics:
            raise ConfigError(f"{key}.metric", f"{metric!r} is not a metric", ", ".join(sorted(known_metrics)))
        op = raw.get("op", base.op if base else ">")
        if op not in OPS:
            raise ConfigError(f"{key}.op", f"{op!r} is not a comparison", " ".join(OPS))
        level = raw.get("level", base.level if base else "warning")
        if level not in LEVELS:
            raise ConfigError(f"{key}.level", f"{level!r} is not a level", ", ".join(LEVELS))
        threshold = raw.get("threshold", base.threshold if base else None)
        if not isinstance(threshold, (int, float)) or isinstance(threshold, bool):
            raise ConfigError(f"{key}.threshold", f"{threshold!r} is not a number")
        message = raw.get("message", base.message if base else f"{metric} {op} {{threshold:g}} (now {{value:g}})")
        rules[name] = Rule(name, metric, op, float(threshold), level, str(message))
    return list(rules.values())


def evaluate(rules: list[Rule], metrics: dict[str, Any]) -> dict[str, tuple[bool, float]]:
    out = {}
    for rule in rules:
        value = float(metrics.get(rule.metric, 0) or 0)
        out[rule.name] = (rule.check(value), value)
    return out


def transitions(
    rules: list[Rule], evaluation: dict[str, tuple[bool, float]], firing: set[str]
) -> tuple[list[tuple[Rule, float]], list[tuple[str, float]]]:
    """(rules that start firing, rules that stop); nothing for rules that stay as they are."""
    by_name = {r.name: r for r in rules}
    raised = [(by_name[n], v) for n, (fire, v) in evaluation.items() if fire and n not in firing]
    resolved = [
        (n, evaluation.get(n, (False, 0.0))[1]) for n in sorted(firing) if not evaluation.get(n, (False, 0.0))[0]
    ]
    return raised, resolved


def status_of(firing_levels: list[str]) -> str:
    """ok / warning / critical: the worst firing level (info alerts do not degrade health)."""
    if "critical" in firing_levels:
        return "critical"
    if "warning" in firing_levels:
        return "warning"
    return "ok"


EXIT_CODES = {"ok": 0, "warning": 1, "critical": 2}
