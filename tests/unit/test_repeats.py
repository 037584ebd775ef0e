"""The repetition guard drops Whisper's loops and nothing a speaker really said twice."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.worker.repeats import RepetitionGuard, loop_cut, normalised, repeat_runs
from tests.fuzz import examples


def seg(start: float, end: float, text: str, **extra: Any) -> dict[str, Any]:
    return {"start": start, "end": end, "text": text, **extra}


def test_back_to_back_copies_of_a_segment_are_one() -> None:
    guard = RepetitionGuard()
    loop = [seg(i * 2.0, i * 2.0 + 2.0, " you") for i in range(290)]
    assert guard(loop) == loop[:1]
    assert guard.dropped == 289


def test_a_passage_said_again_after_a_pause_is_kept() -> None:
    guard = RepetitionGuard()
    passage = "And so my fellow Americans, ask not what your country can do for you."
    kept = guard([seg(0, 5, passage), seg(9, 14, passage), seg(30, 35, passage.upper())])
    assert len(kept) == 3 and guard.dropped == 0


def test_the_guard_carries_its_state_across_windows() -> None:
    guard = RepetitionGuard()
    assert len(guard([seg(0, 10, " Thank you.")])) == 1
    assert guard([seg(10.2, 12, " thank you")]) == []  # the next window starts with the same line


def test_a_loop_inside_a_segment_is_kept_once_with_its_words() -> None:
    words = [{"word": w, "start": i, "end": i + 0.5} for i, w in enumerate([" Click", *[" subdomains,"] * 15, " done"])]
    (out,) = RepetitionGuard()([seg(0, 20, "".join(w["word"] for w in words), words=words)])
    assert out["text"] == " Click subdomains, done"
    assert [w["word"] for w in out["words"]] == [" Click", " subdomains,", " done"]


def test_short_real_repetitions_inside_a_segment_stay() -> None:
    assert loop_cut(["no", ",", "no", ",", "no"]) == [0, 1, 2, 3, 4]  # ',' is no word: 'no' said 3 times
    text = "I can't tell you what, I can't tell you what, I can't tell you what."
    kept = " ".join(text.split(" ")[i] for i in loop_cut(text.split(" ")))
    assert normalised(kept) == "i can't tell you what"


@given(texts=st.lists(st.sampled_from(["a b", "c", "a b", "d e f", ""]), max_size=30))
@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
def test_the_guard_keeps_every_segment_that_differs_from_the_one_before(texts: list[str]) -> None:
    segments = [seg(i / 32, i / 32 + 1 / 32, t) for i, t in enumerate(texts)]  # blanks leave gaps < gap_s
    kept = RepetitionGuard()(segments)
    spoken = [s for s in segments if normalised(s["text"])]
    expected = [s for i, s in enumerate(spoken) if i == 0 or normalised(s["text"]) != normalised(spoken[i - 1]["text"])]
    assert kept == expected
    assert repeat_runs(kept) == (0, 0)


def test_repeat_runs_counts_runs_and_the_longest() -> None:
    texts = ["a", "a", "b", "c", "c", "c", "a"]
    assert repeat_runs([seg(i, i + 1, t) for i, t in enumerate(texts)]) == (2, 3)
