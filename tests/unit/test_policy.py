"""Pure supervisor decisions: retry/backoff, timeouts, liveness verdicts."""

from __future__ import annotations

import pytest

from processor import policy
from processor.policy import Verdict


def decide(attempts: int, retryable: bool = True, reason: str = "engine_error", total: int | None = None):
    return policy.decide_retry(
        attempts=attempts,
        total_attempts=total or attempts,
        max_attempts=3,
        retryable=retryable,
        reason=reason,
        base_s=5,
        cap_s=60,
        job_id="j",
    )


def test_retry_until_max_attempts() -> None:
    assert not decide(1).final and not decide(2).final and decide(3).final


def test_non_retryable_is_final_at_once() -> None:
    assert decide(1, retryable=False).final


def test_backoff_doubles_and_is_capped() -> None:
    assert [policy.backoff(a, 5, 60) for a in (1, 2, 3, 4, 5)] == [5, 10, 20, 40, 60]


def test_jitter_is_deterministic_and_bounded() -> None:
    a = policy.backoff(2, 5, 60, job_id="abc")
    assert a == policy.backoff(2, 5, 60, job_id="abc")
    assert 9.0 <= a <= 11.0


def test_interruptions_do_not_count_but_cannot_loop_forever() -> None:
    d = decide(3, reason="daemon_died")
    assert not d.final and not d.counted and d.delay_s == 0
    assert decide(1, reason="daemon_died", total=9).final


def test_hard_timeout_scales_with_duration() -> None:
    assert policy.hard_timeout(600, 300, 3) == 2100


@pytest.mark.parametrize(
    ("exists", "matches", "age", "verdict"),
    [
        (False, False, 0, Verdict.dead),
        (True, False, 0, Verdict.pid_mismatch),
        (True, True, 200, Verdict.hung),
        (True, True, 5, Verdict.alive),  # slow but progressing: never killed
    ],
)
def test_judge(exists: bool, matches: bool, age: float, verdict: Verdict) -> None:
    assert policy.judge(exists=exists, identity_matches=matches, progress_age_s=age, stall_s=120) is verdict
