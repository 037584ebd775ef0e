"""Long-form windows and stitching: the audio is covered exactly once, speech is cut only when it must be,
and segments keep exact, monotone absolute times without being doubled or dropped at an edge."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from processor.worker import longform as lf
from tests.fuzz import examples


def fuzz(n: int) -> settings:
    """``n`` examples (scaled by SPOOL_FUZZ_SCALE); no deadline: a loaded machine is not a failure."""
    return settings(
        max_examples=examples(n), deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
    )


# Small windows (in samples at 16 kHz) keep the arrays tiny; the rules do not depend on scale.
CUT = lf.Windowing(window_s=0.05, min_window_s=0.02, guard_s=0.004, frame_s=0.001)
LIMIT, LEAST, GUARD = 800, 320, 64


def speech_fn(intervals: list[tuple[int, int]]) -> lf.SpeechFn:
    """A VAD that knows where speech is: samples carry their absolute index as their value."""

    def speech(samples: np.ndarray) -> lf.Regions:
        if not len(samples):
            return []
        base, n = int(samples[0]), len(samples)
        out = [(max(0, a - base), min(n, b - base)) for a, b in intervals]
        return [(a, b) for a, b in out if b > a]

    return speech


@st.composite
def layouts(draw: st.DrawFn) -> tuple[int, list[int], list[tuple[int, int]], int]:
    total = draw(st.integers(1, 6000))
    sizes = draw(st.lists(st.integers(1, 1500), min_size=1, max_size=40))
    points = sorted(draw(st.lists(st.integers(0, total), max_size=30, unique=True)))
    intervals = [(a, b) for a, b in zip(points[0::2], points[1::2], strict=False) if b > a]
    start = draw(st.integers(0, 500))
    return total, sizes, intervals, start


def chunked(start: int, total: int, sizes: list[int]) -> list[np.ndarray]:
    data = np.arange(start, start + total, dtype=np.float32)
    out, at = [], 0
    for size in itertools.cycle(sizes):
        if at >= total:
            return out
        out.append(data[at : at + size])
        at += size
    return out


@fuzz(300)
@given(layout=layouts())
def test_windows_tile_the_audio_exactly_once(layout: tuple[int, list[int], list[tuple[int, int]], int]) -> None:
    total, sizes, intervals, start = layout
    shifted = [(a + start, b + start) for a, b in intervals]
    wins = list(lf.windows(chunked(start, total, sizes), speech_fn(shifted), start=start, cut=CUT))
    assert wins[0].start == start
    for a, b in itertools.pairwise(wins):
        assert b.start == a.start + len(a.samples)  # no gap, no overlap
    joined = np.concatenate([w.samples for w in wins])
    assert np.array_equal(joined, np.arange(start, start + total, dtype=np.float32))
    assert all(0 < len(w.samples) <= LIMIT for w in wins)
    for w in wins:
        assert all(0 <= a < b <= len(w.samples) for a, b in w.regions)
        assert all(x[1] <= y[0] for x, y in itertools.pairwise(w.regions))


@fuzz(300)
@given(layout=layouts())
def test_a_window_cuts_speech_only_where_its_range_holds_no_silence(
    layout: tuple[int, list[int], list[tuple[int, int]], int],
) -> None:
    total, sizes, intervals, _ = layout
    wins = list(lf.windows(chunked(0, total, sizes), speech_fn(intervals), cut=CUT))
    for w in wins[:-1]:
        cut_at = w.start + len(w.samples)
        inside = [(a, b) for a, b in intervals if a < cut_at < b]
        if inside:  # speech was cut: every sample of the allowed range must have been speech
            lo, hi = w.start + LEAST, w.start + LIMIT - GUARD
            assert all(any(a <= x < b for a, b in intervals) for x in range(lo, hi)), (w.start, cut_at)
        assert LEAST <= len(w.samples) <= LIMIT - GUARD


def test_vad_off_is_one_region_per_window() -> None:
    data = np.zeros(2000, dtype=np.float32)
    wins = list(lf.windows([data], lf.whole, cut=CUT))
    assert [w.regions for w in wins] == [[(0, len(w.samples))] for w in wins]
    assert sum(len(w.samples) for w in wins) == 2000


def test_a_cut_without_silence_falls_on_the_quietest_frame() -> None:
    data = np.ones(LIMIT, dtype=np.float32)
    data[500:532] = 0.0  # the only quiet stretch: two 1 ms frames long
    assert 500 <= lf.choose_cut([(0, LIMIT)], LIMIT, LEAST, data, CUT) <= 532 - 16


def test_clips_are_seconds_from_the_window_start() -> None:
    w = lf.Window(start=16_000, samples=np.zeros(32_000, dtype=np.float32), regions=[(1600, 8000), (16_000, 24_000)])
    assert w.clips() == [0.1, 0.5, 1.0, 1.5]
    assert (w.start_s, w.end_s) == (1.0, 3.0)


seg_times = st.floats(-5, 40, allow_nan=False)


@st.composite
def raw_segments(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for _ in range(draw(st.integers(0, 8))):
        a, b = draw(seg_times), draw(seg_times)
        n = draw(st.integers(0, 3))
        words = [{"word": " w", "start": draw(seg_times), "end": draw(seg_times)} for _ in range(n)]
        text = draw(st.sampled_from([" hello", " there", "  ", ""]))
        out.append({"start": a, "end": b, "text": text, "words": words})
    return out


@fuzz(300)
@given(
    starts=st.lists(st.integers(0, 3), min_size=1, max_size=5),
    lengths=st.lists(st.integers(1, 30), min_size=5, max_size=5),
    batches=st.lists(raw_segments(), min_size=5, max_size=5),
)
def test_stitched_segments_are_absolute_monotone_and_all_there(
    starts: list[int], lengths: list[int], batches: list[list[dict[str, Any]]]
) -> None:
    at, after = float(starts[0]), float(starts[0])
    stitched: list[dict[str, Any]] = []
    expected = 0
    for length, raw in zip(lengths, batches, strict=False):
        win = lf.Window(start=int(at * lf.RATE), samples=np.zeros(length * lf.RATE, dtype=np.float32))
        placed = lf.place(win, raw, after)
        expected += sum(1 for s in raw if s["text"].strip())
        for s in placed:
            assert win.start_s <= s["start"] <= s["end"] <= win.end_s
            assert all(s["start"] <= w["start"] <= w["end"] <= s["end"] for w in s["words"])
            assert all(x["end"] <= y["start"] for x, y in itertools.pairwise(s["words"]))
        stitched += placed
        after = placed[-1]["end"] if placed else after
        at += length
    assert len(stitched) == expected  # nothing dropped, nothing doubled
    assert all(a["end"] <= b["start"] for a, b in itertools.pairwise(stitched))


def test_segment_times_are_offset_by_the_window_start() -> None:
    win = lf.Window(start=120 * lf.RATE, samples=np.zeros(60 * lf.RATE, dtype=np.float32))
    (seg,) = lf.place(win, [{"start": 1.25, "end": 3.5, "text": " hi", "words": [{"start": 1.3, "end": 2.0}]}], 0.0)
    assert (seg["start"], seg["end"]) == (121.25, 123.5)
    assert (seg["words"][0]["start"], seg["words"][0]["end"]) == (121.3, 122.0)


def test_decoding_streams_in_pieces_that_add_up_to_the_file(tmp_path: Path) -> None:
    from processor.worker import audio
    from tests.media import encode

    t = np.arange(70 * lf.RATE) / lf.RATE
    path = encode((0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), tmp_path / "tone.flac", "flac")
    with open(path, "rb") as fh:
        pieces = list(audio.stream(fh, audio.probe(fh), chunk_s=30.0))
    assert [round(len(p) / lf.RATE) for p in pieces] == [30, 30, 10]
    assert sum(len(p) for p in pieces) == 70 * lf.RATE


# --- batched decoding: 30 s pieces, and sentence-length segments again (issue 17) -----------------


@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.integers(0, 4000), st.integers(1, 4000)), max_size=6),
    st.integers(50, 700),
    st.lists(st.integers(0, 4000), max_size=12),
    st.booleans(),
)
def test_pieces_tile_every_region_and_none_is_longer_than_the_limit(
    spans: list[tuple[int, int]], longest: int, pause_at: list[int], with_pauses: bool
) -> None:
    regions, at = [], 0
    for gap, length in spans:
        regions.append((at + gap, at + gap + length))
        at += gap + length
    samples = np.random.default_rng(len(regions)).standard_normal(at + 10).astype(np.float32)

    def pauses(stretch: np.ndarray) -> lf.Regions:  # speech between the given pause points
        bounds = sorted({p for p in pause_at if 0 < p < len(stretch) - 2})
        edges = [0, *bounds, len(stretch)]
        return [(a, b - 1) for a, b in itertools.pairwise(edges) if b - 1 > a]

    out = lf.pieces(regions, samples, longest, 10, pauses if with_pauses else None)
    assert all(b - a <= longest and b > a for a, b in out)
    rebuilt = []  # consecutive pieces of one region join up: together they are exactly the region
    for a, b in out:
        if rebuilt and rebuilt[-1][1] == a and any(r[0] <= rebuilt[-1][0] and b <= r[1] for r in regions):
            rebuilt[-1] = (rebuilt[-1][0], b)
        else:
            rebuilt.append((a, b))
    assert rebuilt == [r for r in regions if r[1] > r[0]]


def test_a_long_region_is_cut_in_its_latest_pause_within_the_limit() -> None:
    samples = np.ones(1000, dtype=np.float32)
    spoken = lambda s: [(0, 300), (320, 590), (610, len(s))]  # noqa: E731 - pauses at 300-320 and 590-610
    assert lf.pieces([(0, 1000)], samples, 700, 10, spoken) == [(0, 600), (600, 1000)]


words_st = st.lists(
    st.tuples(st.sampled_from(["a", "b.", "c?", "d", "e!", "f,"]), st.floats(0.01, 3.0)), min_size=1, max_size=40
)


@given(words_st, st.floats(1.0, 15.0))
def test_by_sentence_keeps_every_word_once_in_order_and_bounds_the_length(
    spoken: list[tuple[str, float]], longest: float
) -> None:
    t, words = 0.0, []
    for text, length in spoken:
        words.append({"word": " " + text, "start": round(t, 3), "end": round(t + length, 3), "probability": 0.9})
        t += length + 0.05
    segment = {"start": 0.0, "end": t, "text": "".join(w["word"] for w in words), "words": words, "avg_logprob": -0.2}
    out = lf.by_sentence(segment, longest)
    assert [w for s in out for w in s["words"]] == words
    assert "".join(s["text"] for s in out) == segment["text"]
    for s in out:
        assert s["start"] == s["words"][0]["start"] and s["end"] == s["words"][-1]["end"]
        assert len(s["words"]) == 1 or s["end"] - s["start"] <= longest
        assert not any(w["word"].strip()[-1] in ".?!" for w in s["words"][:-1])  # a sentence end closes it
        assert s["avg_logprob"] == -0.2
    assert lf.by_sentence({"start": 0, "end": 1, "text": "x"}) == [{"start": 0, "end": 1, "text": "x"}]
