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
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ground.errors import ConfigError
from ops.metrics import DESCRIPTIONS
from schema import checks

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
        Rule("daemon_down", "daemon_alive", "<", 1, "warning", "no daemon is serving this spool"),
        Rule(
            "daemon_down_with_work",
            "daemon_down_with_work",
            ">",
            0,
            "critical",
            "no daemon is serving this spool and work is waiting (jobs queued or running, files in the inbox)",
        ),
        Rule(
            "spool_problem",
            "spool_problems",
            ">",
            0,
            "critical",
            "{value:g} problem(s) with the spool's folders or database; intake is paused until fixed",
        ),
        Rule("intake_paused", "intake_paused", ">", 0, "warning", "intake is paused (`spool status` says why)"),
        Rule(
            "fleet_host_lost",
            "fleet_hosts_lost",
            ">",
            0,
            "warning",
            "{value:g} host(s) of the fleet stopped renewing their lease: their jobs move to live hosts",
        ),
        Rule(
            "internal_errors",
            "internal_errors",
            ">",
            0,
            "warning",
            "{value:g} unexpected error(s) caught by the daemon's loop (daemon.internal_error in its log): a bug",
        ),
        Rule(
            "folder_recreated",
            "folders_recreated",
            ">",
            0,
            "warning",
            "{value:g} spool folder(s) were deleted and made again in the last window",
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


_WIDE = re.compile(r":[^{}]*[0-9]{4,}")  # "{value:>999999999}" would build a 1 GB string per alert
RULE_KEYS = ("metric", "op", "threshold", "level", "message", "enabled")
MAX_MESSAGE = 500


def parse_rules(config: dict[str, Any], free_disk_floor_mb: float) -> list[Rule]:
    """Defaults overridden/extended by ``[alerts]``; every mistake names the key.

    Checked completely here, at load: a rule that could fail when it is first
    evaluated (a list where a name belongs, an infinite threshold, a message
    that does not format) would otherwise fail inside the scheduler.
    """
    rules = {r.name: r for r in default_rules(free_disk_floor_mb)}
    for name, raw in config.items():
        key = f"alerts.{name}"
        problem = checks.text_problem(name, max_len=100)
        if problem:
            raise ConfigError(key, f"the rule name {problem}")
        if not isinstance(raw, dict):
            raise ConfigError(key, "must be a table of metric, op, threshold, level")
        unknown = sorted(set(raw) - set(RULE_KEYS))
        if unknown:
            raise ConfigError(key, f"unknown keys {unknown}", ", ".join(RULE_KEYS))
        enabled = raw.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError(f"{key}.enabled", f"{checks.show(enabled)} is not true or false")
        rule = _rule(name, key, raw, rules.get(name))
        if enabled:
            rules[name] = rule
        else:
            rules.pop(name, None)
    return list(rules.values())


def _choice(key: str, value: Any, allowed: Any, what: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ConfigError(key, f"{checks.show(value)} is not {what}", ", ".join(sorted(allowed)))
    return value


def _rule(name: str, key: str, raw: dict[str, Any], base: Rule | None) -> Rule:
    """One rule, its missing keys taken from the default rule of that name."""
    metric = _choice(f"{key}.metric", raw.get("metric", base.metric if base else None), DESCRIPTIONS, "a metric")
    op = _choice(f"{key}.op", raw.get("op", base.op if base else ">"), OPS, "a comparison")
    level = _choice(f"{key}.level", raw.get("level", base.level if base else "warning"), LEVELS, "a level")
    threshold = raw.get("threshold", base.threshold if base else None)
    problem = checks.number_problem(threshold)
    if problem:
        raise ConfigError(f"{key}.threshold", problem)
    message = raw.get("message", base.message if base else f"{metric} {op} {{threshold:g}} (now {{value:g}})")
    problem = checks.text_problem(message, max_len=MAX_MESSAGE)
    if problem:
        raise ConfigError(f"{key}.message", problem)
    if _WIDE.search(message):
        raise ConfigError(f"{key}.message", "a format width or precision above 999 is not allowed")
    assert isinstance(threshold, (int, float))  # number_problem said so
    rule = Rule(name, metric, op, float(threshold), level, message)
    try:
        rule.describe(0.5)  # fields and format specs are checked now, not at the first alert
    except (KeyError, IndexError, AttributeError, ValueError, TypeError) as e:
        raise ConfigError(
            f"{key}.message", f"does not format: {type(e).__name__}: {e}", "{value} {threshold} {metric}"
        ) from None
    return rule


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
