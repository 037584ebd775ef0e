"""``spool``: processor's CLI with ops' and web's commands, their settings checks and the scheduler plugged in."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ops import cli as ops_cli
from ops import scheduler
from ops.context import OpsContext
from ops.settings_check import check_sections
from processor import cli as processor_cli
from processor import config
from processor import logs as logs_mod
from processor.config import Settings
from processor.daemon import Daemon
from web import cli as web_cli
from web.settings import check_web


def ops_context(daemon: Daemon) -> OpsContext:
    """What the scheduled jobs may use of a running daemon, and nothing more."""
    return OpsContext(
        store=daemon.store,
        layout=daemon.layout,
        settings=daemon.settings,
        now=daemon.clock.wall,
        log=logs_mod.get("ops"),
        supervised=daemon.control.owned,
        sweep=daemon.orphans.sweep,
        rescan=daemon.rescan_now,
        is_leader=daemon.fleet.confirm_leader,
        counters=daemon.counters,
    )


def start_ops(daemon: Daemon) -> Any:
    """The daemon's scheduler: APScheduler's jobs request work; the daemon's loop runs it."""
    return scheduler.start(ops_context(daemon), daemon.request_ops)


ASSEMBLY = processor_cli.Assembly(
    commands=(ops_cli.register, web_cli.register),
    checks=(check_sections, check_web),
    scheduler=start_ops,
)


def load_settings(
    flags: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None, config_file: Path | None = None
) -> Settings:
    """Settings as ``spool`` builds them: every section checked, ops' included."""
    return config.load(flags, env if env is not None else os.environ, config_file, checks=ASSEMBLY.checks)


def main(argv: Sequence[str] | None = None) -> int:
    return processor_cli.main(argv, assembly=ASSEMBLY)
