"""How one host's cores are shared between jobs: which waiting job goes first, and lanes.

Pure decisions (no clock, no store), so every rule is property-tested.  Why
these rules (issue 17, measured in docs/performance.md):

* **Largest first within a batch.**  Files dropped together finish soonest
  when the longest starts first (a long file dispatched last runs alone at
  the end).  Only jobs submitted within ``BATCH_S`` of the oldest waiting
  one are reordered, so no job waits behind an endless stream of larger
  ones, and a single drop still starts at once.
* **Lanes.**  A worker slot no waiting job needs is lent to the running job
  with the most audio left, as one more lane (a window decoded beside the
  others); it goes back the moment a job waits for it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol, TypeVar

BATCH_S = 60.0  # jobs submitted this close to the oldest waiting one count as one batch
LANE_MIN_S = 30.0  # a lane is lent only if each lane would still have this much audio to decode


class Waiting(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def submitted_at(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def duration_s(self) -> float | None: ...
    @property
    def checkpoint_s(self) -> float: ...


def remaining(job: Waiting) -> float:
    """How much work a waiting job holds: audio left once probed, else its size in bytes as a proxy."""
    if job.duration_s:
        return max(0.0, job.duration_s - job.checkpoint_s) * 32_000  # as bytes of 16 kHz 16-bit mono
    return float(job.size)


J = TypeVar("J", bound=Waiting)


def dispatch_order(jobs: Sequence[J]) -> list[J]:
    """Oldest first across batches; within the oldest batch, largest first (ties: oldest, then id)."""
    if not jobs:
        return []
    by_age = sorted(jobs, key=lambda j: (j.submitted_at, j.id))
    head = datetime.fromisoformat(by_age[0].submitted_at)
    batch = [j for j in by_age if (datetime.fromisoformat(j.submitted_at) - head).total_seconds() <= BATCH_S]
    rest = by_age[len(batch) :]
    return sorted(batch, key=lambda j: (-remaining(j), j.submitted_at, j.id)) + rest


def share_lanes(spare: int, left_s: Mapping[str, float | None], most: int) -> dict[str, int]:
    """Lanes per running job: one each, and ``spare`` slots lent one at a time where the most audio waits.

    ``left_s`` is each running job's audio still to decode (None: not probed yet,
    so it gets no extra lane).  No job gets more than ``most`` lanes, nor a lane
    that would leave each of its lanes less than ``LANE_MIN_S`` of audio.
    """
    shares = dict.fromkeys(left_s, 1)
    for _ in range(max(0, spare)):
        fits = [
            (left / (shares[job] + 1), job)
            for job, left in left_s.items()
            if left is not None and shares[job] < most and left / (shares[job] + 1) >= LANE_MIN_S
        ]
        if not fits:
            break
        _, job = max(fits)
        shares[job] += 1
    return shares
