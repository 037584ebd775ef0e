"""Stored rows are not domain events: this module turns one into the other.

A row is ``(stream, version, type, class_version, data JSON, at)``.  When an
event's shape changes, bump its ``class_version`` and register an upcaster
from the old version here, so databases written earlier still load.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from schema.errors import UnknownEvent
from schema.events import CATALOGUE, Event

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

# (type, stored class_version) -> function returning data at class_version + 1
UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("job.submitted", 1): lambda data: {**data, "ticket": None},  # v2 added the hand-over ticket's nonce
    ("daemon.started", 1): lambda data: {**data, "settings": {}},  # v2 added the job-deciding settings
    ("job.requeued", 1): lambda data: {**data, "options": None, "options_key": None},  # v2: retry's options
}


@dataclass(frozen=True)
class Recorded:
    """An event as stored: its place in the global order and in its stream."""

    position: int
    stream: str
    version: int
    at: str
    event: Event
    idempotency_key: str | None = None

    @property
    def type(self) -> str:
        return self.event.type


def encode(event: Event) -> tuple[str, int, str]:
    """Return (type, class_version, data JSON).  ASCII JSON keeps surrogate-escaped names intact."""
    data = {f.name: getattr(event, f.name) for f in dataclasses.fields(event)}
    return event.type, event.class_version, json.dumps(data, separators=(",", ":"), sort_keys=True)


def decode(type_: str, class_version: int, data_json: str) -> Event:
    cls = CATALOGUE.get(type_)
    if cls is None or class_version > cls.class_version:
        raise UnknownEvent(type_, class_version)
    data = json.loads(data_json)
    version = class_version
    while version < cls.class_version:
        data = UPCASTERS[(type_, version)](data)
        version += 1
    return cls(**data)


def to_jsonable(rec: Recorded) -> dict[str, Any]:
    """The machine-readable form the CLI prints (``events --json``)."""
    _, _, data = encode(rec.event)
    return {
        "position": rec.position,
        "stream": rec.stream,
        "version": rec.version,
        "type": rec.type,
        "at": rec.at,
        "data": json.loads(data),
    }
