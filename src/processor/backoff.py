"""Backing off a refusing store: how long the loop leaves the store alone after a failed round.

0.25 s doubling to 5 s: an outage costs no CPU, and the first round after the store
returns comes soon.  The loop's liveness (lease renewal, systemd pings, a worker's
death) goes on meanwhile; only the store's work waits.
"""

from __future__ import annotations

from collections.abc import Callable

FIRST_S = 0.25
LONGEST_S = 5.0


class StoreBackoff:
    def __init__(self, mono: Callable[[], float]) -> None:
        self._mono = mono
        self.retry_at = 0.0  # monotonic: no store work before this
        self.failures = 0  # consecutive refused rounds

    def ready(self) -> bool:
        return self._mono() >= self.retry_at

    def failed(self) -> float:
        """One more refused round; returns the delay before the next try."""
        self.failures += 1
        delay = min(LONGEST_S, FIRST_S * 2 ** (self.failures - 1))
        self.retry_at = self._mono() + delay
        return delay

    def hold_off(self, seconds: float) -> None:
        """Leave the store alone this long without counting a refusal (after an unexpected error)."""
        self.retry_at = self._mono() + seconds

    def recovered(self) -> bool:
        """A round went through; True when it ended a run of refusals (worth saying so)."""
        ended, self.failures = self.failures > 0, 0
        return ended
