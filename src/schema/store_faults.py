"""Store refusals for the reliability suite (test-only), the store's twin of ``spool/faults.py``.

``SPOOL_STORE_FAULT=job.transcribed:refuse:3`` makes the next three appends whose
first event is a ``job.transcribed`` fail the way the backend itself fails:

* ``refuse`` - nothing is written.  SQLite raises what it raises when another
  process holds the write lock beyond the retry deadline (:class:`StoreBusy`);
  PostgreSQL has its own session terminated just before the statement, so the
  daemon meets the server's real error and the real reconnect.
* ``lost_ack`` - the append commits, then the acknowledgement is lost (the
  session is cut as the commit returns): the caller cannot tell whether it was
  recorded, the case idempotency keys exist for.

Several rules are separated by commas.  The entry point arms it from its
environment once; nothing else reads the variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

MODES = ("refuse", "lost_ack")


@dataclass
class _Rule:
    event_type: str
    mode: str
    left: int


_rules: list[_Rule] = []


def configure(env: Mapping[str, str]) -> None:
    _rules.clear()
    spec = env.get("SPOOL_STORE_FAULT", "")
    for part in filter(None, (p.strip() for p in spec.split(","))):
        event_type, _, rest = part.partition(":")
        mode, _, count = rest.partition(":")
        if mode not in MODES or not event_type or (count and not count.isdigit()):
            raise ValueError(f"SPOOL_STORE_FAULT={spec!r}: expected TYPE:{'|'.join(MODES)}[:COUNT], ...")
        _rules.append(_Rule(event_type, mode, int(count or 1)))


def take(event_type: str) -> str | None:
    """The fault to inject into this append, if one is armed for its first event's type."""
    for rule in _rules:
        if rule.event_type == event_type and rule.left > 0:
            rule.left -= 1
            return rule.mode
    return None
