"""Time is an input: the daemon reads wall time for event stamps and a monotonic
clock for every interval, so a clock jump of an hour neither kills a job nor
stalls a schedule.  Tests pass a :class:`FakeClock`."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


class Clock:
    def wall(self) -> datetime:
        return datetime.now(UTC)

    def mono(self) -> float:
        return time.monotonic()

    def wall_ns(self) -> int:
        return time.time_ns()


@dataclass
class FakeClock(Clock):
    """A clock that moves only when told to."""

    now: datetime = datetime(2026, 1, 1, tzinfo=UTC)
    monotonic: float = 1000.0

    def wall(self) -> datetime:
        return self.now

    def mono(self) -> float:
        return self.monotonic

    def wall_ns(self) -> int:
        return int(self.now.timestamp() * 1e9)

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
        self.monotonic += seconds
