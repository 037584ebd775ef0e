"""ops' sections of the configuration, checked when settings are built (the composition root hands this in).

``[alerts.*]`` and ``[notify]`` are parsed by the code that uses them, completely,
so a mistake there stops ``spool run`` (and any command) with one line naming the key.
"""

from __future__ import annotations

from ops import alerts, notify
from processor.config import Settings


def check_sections(settings: Settings) -> None:
    alerts.parse_rules(settings.alerts, settings.free_disk_floor_mb)
    notify.parse(settings.notify)
