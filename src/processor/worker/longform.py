"""Long-form transcription shared by both engines: windows cut in silence, speech regions, stitching.

Why this exists (issue 13, numbers in docs/quality.md): handing Whisper a whole
recording holds all of it in memory (5.8 GB RSS for 2 h) and lets the model
decode silence, music and foreign speech, where it invents text ("you" 290
times) or loses the thread and skips what follows (1 of 4 repeated passages
kept).  So the audio is streamed in *windows* of at most ``window_s``, each cut
in a pause the voice-activity detector found, and only the speech regions of a
window are given to the engine (``clip_timestamps``, which both engines take).

Boundary rule: a window ends in the middle of a silence gap between two speech
regions, so no speech is cut; only when a stretch of ``window_s`` holds no gap
is it cut at its quietest 20 ms, with a region split there.  Windows tile the
audio exactly once, and a segment belongs to the window that produced it, so
nothing is doubled or dropped at an edge.  Everything here is pure (the VAD is
passed in), so those rules are property-tested without a model.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

RATE = 16_000
Regions = list[tuple[int, int]]  # speech [start, end) in samples, sorted, disjoint
SpeechFn = Callable[[np.ndarray], Regions]


@dataclass(frozen=True)
class Windowing:
    """How audio is cut: 120 s windows keep a worker's memory flat (docs/performance.md) and checkpoint often."""

    window_s: float = 120.0  # longest window: bounds memory and is a checkpoint
    min_window_s: float = 60.0  # a cut is looked for in (min_window_s, window_s]
    guard_s: float = 1.0  # the last second is never a cut point: the VAD sees little after it
    frame_s: float = 0.02  # resolution of the quietest-point fallback


@dataclass
class Window:
    """A stretch of the input: ``samples`` from absolute sample ``start``; ``regions`` relative to it."""

    start: int
    samples: np.ndarray
    regions: Regions = field(default_factory=list)

    @property
    def start_s(self) -> float:
        return self.start / RATE

    @property
    def end_s(self) -> float:
        return (self.start + len(self.samples)) / RATE

    def clips(self) -> list[float]:
        """The regions as the engines' ``clip_timestamps``: start, end, start, end... in seconds."""
        return [round(t / RATE, 3) for region in self.regions for t in region]


def whole(samples: np.ndarray) -> Regions:
    """The speech function when VAD is off: everything is speech."""
    return [(0, len(samples))] if len(samples) else []


def windows(
    chunks: Iterable[np.ndarray], speech: SpeechFn, *, start: int = 0, cut: Windowing | None = None
) -> Iterator[Window]:
    """Cut a stream of sample chunks into windows that tile it exactly, each with its speech regions.

    ``start`` is the absolute sample index of the first chunk (a resumed job
    skips what it has).  At most ``window_s`` plus one chunk is held at a time.
    """
    cut = cut or Windowing()
    limit, least = int(cut.window_s * RATE), int(cut.min_window_s * RATE)
    pieces: list[np.ndarray] = []
    held = 0
    for chunk in chunks:
        pieces.append(np.asarray(chunk, dtype=np.float32))
        held += len(chunk)
        while held >= limit:
            buf = np.concatenate(pieces)
            head = buf[:limit]
            regions = speech(head)
            at = choose_cut(regions, limit, least, head, cut)
            yield Window(start, buf[:at].copy(), clip(regions, at))
            start += at
            pieces, held = [buf[at:]], len(buf) - at
    if held:
        buf = np.concatenate(pieces)
        yield Window(start, buf, clip(speech(buf), len(buf)))


def choose_cut(regions: Regions, length: int, least: int, samples: np.ndarray, cut: Windowing) -> int:
    """Where a full window ends: in its latest silence within [least, length - guard], else its quietest frame.

    The cut is the middle of that silence (as far from speech as the range
    allows), so whenever the VAD heard any silence in the range, no speech is cut.
    """
    hi = length - int(cut.guard_s * RATE)
    bounds = [0, *[t for region in regions for t in region], length]
    for gap_start, gap_end in reversed(list(zip(bounds[0::2], bounds[1::2], strict=False))):
        a, b = max(gap_start, least), min(gap_end, hi)
        if b > a:
            return (a + b) // 2 if b - a > 1 else a
    return quietest(samples, least, hi, int(cut.frame_s * RATE))


def quietest(samples: np.ndarray, lo: int, hi: int, frame: int) -> int:
    """The start of the lowest-energy frame in [lo, hi): the least harmful place to cut speech."""
    frame = max(1, frame)
    lo, hi = max(1, lo), max(lo + 1, min(hi, len(samples)))
    n = max(1, (hi - lo) // frame)
    span = samples[lo : lo + n * frame].astype(np.float64)
    if len(span) < n * frame:
        return lo
    energy = (span.reshape(n, frame) ** 2).sum(axis=1)
    return lo + int(np.argmin(energy)) * frame


def clip(regions: Regions, length: int) -> Regions:
    """Regions limited to [0, length), empty ones dropped."""
    out = [(max(0, a), min(b, length)) for a, b in regions]
    return [(a, b) for a, b in out if b > a]


def pieces(regions: Regions, samples: np.ndarray, longest: int, frame: int, pauses: SpeechFn | None = None) -> Regions:
    """The regions split so that none is longer than ``longest`` samples (a batched decode takes 30 s at most).

    A long region is cut in the latest pause that ``pauses`` (a fine-grained VAD:
    speech between pauses) finds in it within ``longest`` of the piece's start,
    in the middle of that pause; where it finds none, at the quietest ``frame``
    of the piece's last third.  The pieces tile each region exactly, so no
    sample of speech is dropped or decoded twice.
    """
    out: Regions = []
    for a, b in regions:
        cuts: list[int] = []
        if pauses is not None and b - a > longest:
            spoken = pauses(samples[a:b])
            cuts = [a + (x + y) // 2 for (_, x), (y, _) in itertools.pairwise(spoken)]
        while b - a > longest:
            fits = [c for c in cuts if a + longest // 3 < c <= a + longest]
            if fits:
                at = fits[-1]
            else:
                lo = a + max(1, longest * 2 // 3)
                at = min(a + longest, max(lo, quietest(samples, lo, a + longest, frame)))
            out.append((a, at))
            a = at
        if b > a:
            out.append((a, b))
    return out


SENTENCE_END = (".", "?", "!", "\u3002", "\uff1f", "\uff01")  # and their ideographic forms


def by_sentence(segment: dict[str, Any], longest_s: float = 12.0) -> list[dict[str, Any]]:
    """A segment of up to 30 s (a batched piece) cut at its words into segments of sentence length.

    A segment ends after a word closing a sentence, or before a word that would
    make it longer than ``longest_s``; every word stays, in order, in exactly one
    segment, whose text is its words' text.  Without words it stays as it is.
    """
    words = segment.get("words") or []
    if not words:
        return [segment]
    groups: list[list[dict[str, Any]]] = [[]]
    for w in words:
        current = groups[-1]
        if current and float(w["end"]) - float(current[0]["start"]) > longest_s:
            groups.append([w])
        else:
            current.append(w)
        if str(w["word"]).strip().endswith(SENTENCE_END):
            groups.append([])
    out = []
    for group in (g for g in groups if g):
        text = "".join(str(w["word"]) for w in group)
        out.append({**segment, "start": group[0]["start"], "end": group[-1]["end"], "text": text, "words": group})
    return out


def merge(regions: Regions, gap: int) -> Regions:
    """Join regions less than ``gap`` apart: a soft word between two detections stays in one clip."""
    out: Regions = []
    for a, b in sorted(regions):
        if out and a - out[-1][1] < gap:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        elif b > a:
            out.append((a, b))
    return out


def place(window: Window, segments: Iterable[dict[str, Any]], after: float) -> list[dict[str, Any]]:
    """Engine segments (seconds from the window's start) at absolute times, monotone, inside the window.

    ``after`` is where the previous kept segment ended: a segment never starts
    before it.  Blank segments are dropped (a window of noise gives none).
    """
    lo, hi = window.start_s, window.end_s
    out = []
    for seg in segments:
        if not str(seg.get("text", "")).strip():
            continue
        start = min(hi, max(lo + float(seg["start"]), after, lo))
        end = min(hi, max(lo + float(seg["end"]), start))
        placed = {**seg, "start": round(start, 3), "end": round(end, 3)}
        if "words" in seg:
            placed["words"] = _place_words(seg["words"], lo, start, end)
        out.append(placed)
        after = placed["end"]
    return out


def _place_words(words: list[dict[str, Any]], offset: float, lo: float, hi: float) -> list[dict[str, Any]]:
    out, after = [], lo
    for w in words:
        start = min(hi, max(offset + float(w["start"]), after))
        end = min(hi, max(offset + float(w["end"]), start))
        out.append({**w, "start": round(start, 3), "end": round(end, 3)})
        after = end
    return out
