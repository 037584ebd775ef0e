"""The look-ahead that decodes windows on several lanes: order, exactly once, bounded, lanes honoured."""

from __future__ import annotations

import threading
import time

from hypothesis import given, settings
from hypothesis import strategies as st

from processor.worker.lanes import Lanes, LookAhead


class Probe:
    """Work that records how many decodes run at once."""

    def __init__(self, delay: float = 0.002) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0
        self.done: list[int] = []
        self.delay = delay

    def __call__(self, w: int) -> int:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
        time.sleep(self.delay)
        with self.lock:
            self.now -= 1
            self.done.append(w)
        return w * 10


def drain(look: LookAhead[int, int], work: Probe, busy: set[int]) -> list[int]:
    out = []
    with look:
        for w, fut in look:
            if w in busy:
                out.append(fut.result() if fut is not None else work(w))  # None: this lane decodes it
            else:
                out.append(w * 10)
    return out


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 25), st.integers(1, 4), st.integers(1, 4), st.sets(st.integers(0, 25)))
def test_every_window_once_in_order_with_at_most_lanes_decoding(n: int, most: int, value: int, quiet: set[int]) -> None:
    work = Probe()
    busy = set(range(n)) - quiet
    lanes = Lanes(most, value)
    look = LookAhead(iter(range(n)), work, lanes, busy=lambda w: w in busy)
    assert drain(look, work, busy) == [w * 10 for w in range(n)]
    assert sorted(work.done) == sorted(busy)  # each decoded exactly once: ahead or here, never both
    assert work.peak <= min(most, value)


def test_one_lane_never_runs_ahead_and_more_lanes_run_in_parallel() -> None:
    work = Probe(0.05)
    assert drain(LookAhead(iter(range(6)), work, Lanes(2, 1), busy=lambda w: True), work, set(range(6)))
    assert work.peak == 1
    work = Probe(0.05)
    look = LookAhead(iter(range(6)), work, Lanes(2, 2), busy=lambda w: True)
    drain(look, work, set(range(6)))
    assert work.peak == 2 and look.ran_ahead >= 2


def test_a_lane_given_while_a_window_decodes_starts_the_next_one_at_once() -> None:
    lanes = Lanes(2, 1)
    started = threading.Event()
    release = threading.Event()

    def work(w: int) -> int:
        started.set()
        release.wait(5)
        return w

    look = LookAhead(iter(range(3)), work, lanes, busy=lambda w: True)
    with look:
        it = iter(look)
        w, fut = next(it)
        assert (w, fut) == (0, None)  # the caller decodes window 0 itself
        lanes.set(2)  # as the protocol reader does, mid-window
        assert started.wait(5)  # window 1 began on the other lane before window 0 ended
        release.set()
        assert next((w, f is not None) for w, f in it) == (1, True)


def test_no_run_ahead_until_allowed_and_an_error_reaches_the_caller() -> None:
    allowed = threading.Event()
    work = Probe()
    look = LookAhead(iter(range(4)), work, Lanes(2, 2), busy=lambda w: True, may_run_ahead=allowed.is_set)
    with look:
        it = iter(look)
        assert next(it) == (0, None)
        assert look.ran_ahead == 0  # the language is not known yet: one lane
        allowed.set()
        look.top_up()
        assert look.ran_ahead == 1
        assert [w for w, _ in it] == [1, 2, 3]

    def boom(w: int) -> int:
        raise ValueError("decode failed")

    look = LookAhead(iter(range(3)), boom, Lanes(2, 2), busy=lambda w: True)
    with look:
        results = []
        try:
            for _w, fut in look:
                results.append(fut.result() if fut is not None else 0)
        except ValueError as e:
            assert "decode failed" in str(e)
        else:
            raise AssertionError("the lane's error was lost")
