"""structlog, configured once at the entry point.

JSON lines when stderr is not a terminal (and always in ``logs/daemon.log``),
a readable console format on a terminal; ``job_id`` comes from contextvars;
ISO UTC timestamps; exceptions as dicts.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path
from typing import Any, TextIO

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def configure(level: str = "info", daemon_log: Path | None = None, stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.dict_tracebacks,
    ]
    root = logging.getLogger("spoolscribe")
    root.handlers.clear()
    root.setLevel(_LEVELS[level])
    root.propagate = False
    tty = hasattr(stream, "isatty") and stream.isatty()
    console = logging.StreamHandler(stream)
    console.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.dev.ConsoleRenderer(colors=False) if tty else structlog.processors.JSONRenderer(),
            ],
        )
    )
    root.addHandler(console)
    if daemon_log is not None:
        daemon_log.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        fh = logging.handlers.RotatingFileHandler(daemon_log, maxBytes=10 * 1024 * 1024, backupCount=5)
        fh.setFormatter(
            structlog.stdlib.ProcessorFormatter(
                processors=[
                    structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.JSONRenderer(),
                ],
            )
        )
        root.addHandler(fh)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def get(name: str = "spoolscribe") -> Any:
    return structlog.get_logger("spoolscribe." + name if name != "spoolscribe" else name)
