"""Pure decisions of the supervisor: retries, timeouts, liveness.  Time is an argument."""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from schema.reasons import Reason

# Failures that are not the job's fault: the attempt does not count toward max_attempts.
NOT_COUNTED = frozenset(
    {Reason.interrupted, Reason.daemon_died, Reason.input_changed, Reason.input_unsettled, Reason.unrecorded}
)


@dataclass(frozen=True)
class RetryDecision:
    final: bool
    delay_s: float
    counted: bool


def backoff(attempt: int, base_s: float, cap_s: float, job_id: str = "") -> float:
    """Exponential backoff with a deterministic +-10 % jitter per job (no retry storms in step)."""
    delay = min(cap_s, base_s * (2 ** max(0, attempt - 1)))
    if not job_id or delay == 0:
        return delay
    frac = int(hashlib.sha256(job_id.encode()).hexdigest()[:4], 16) / 0xFFFF  # 0..1
    return round(min(cap_s, delay * (0.9 + 0.2 * frac)), 3)


def decide_retry(
    *,
    attempts: int,
    total_attempts: int,
    max_attempts: int,
    retryable: bool,
    reason: str,
    base_s: float,
    cap_s: float,
    job_id: str,
) -> RetryDecision:
    counted = reason not in NOT_COUNTED
    effective = attempts if counted else attempts - 1
    # Even uncounted failures stop somewhere: a job that keeps killing its daemon must end.
    # ``total_attempts`` leaves out clean daemon stops (an operator restarting the service
    # is no evidence against the job being worked on).
    runaway = total_attempts >= 3 * max_attempts
    final = (not retryable) or effective >= max_attempts or runaway
    delay = 0.0 if not counted else backoff(max(1, effective), base_s, cap_s, job_id)
    return RetryDecision(final=final, delay_s=delay, counted=counted)


def not_before(now: datetime, delay_s: float) -> str:
    return (now + timedelta(seconds=delay_s)).isoformat(timespec="microseconds")


def hard_timeout(duration_s: float, base_s: float, factor: float) -> float:
    """A job may take ``base_s`` plus ``factor`` x its audio length before it is killed."""
    return base_s + factor * max(0.0, duration_s)


class Verdict(enum.StrEnum):
    """What to do about a job recorded as running."""

    alive = "alive"
    """Process alive and making progress (even if slow): leave it alone."""
    dead = "dead"
    """Process gone: orphaned, retry."""
    pid_mismatch = "pid_mismatch"
    """The PID now belongs to another process (reuse): never signal it; orphaned, retry."""
    hung = "hung"
    """Alive but no progress for ``stall_s``: kill its tree, orphaned, retry."""
    lease_expired = "lease_expired"
    """A fleet host stopped renewing its lease (dead, frozen or cut off): orphaned, retried elsewhere."""


def judge(*, exists: bool, identity_matches: bool, progress_age_s: float, stall_s: float) -> Verdict:
    """Liveness *and* progress, never elapsed time alone (a slow long job is not an orphan)."""
    if not exists:
        return Verdict.dead
    if not identity_matches:
        return Verdict.pid_mismatch
    if progress_age_s >= stall_s:
        return Verdict.hung
    return Verdict.alive
