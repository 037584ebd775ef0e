"""The repetition guard: Whisper's loops, found and dropped without touching real repeated speech.

Whisper falls into two kinds of loop (both measured in docs/quality.md): the
same segment emitted back to back ("you" once per 30 s of silence, a phrase
again and again), and one segment repeating a short phrase inside itself
("subdomains, subdomains, ..." 15 times).  A person who says the same sentence
twice leaves a pause or other words between; a loop does not.  So:

* a segment whose normalised text equals the previous kept segment's and that
  starts within ``gap_s`` of its end is dropped (and counted);
* inside a segment, a phrase of 1 to 8 words said three or more times in a
  row, six or more words in all, is kept once.

Pure: segments in, segments out, so both engines use it and it is tested alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_WORD = re.compile(r"[\w']+")


def normalised(text: str) -> str:
    """Case and punctuation folded: how a loop is recognised whatever the commas."""
    return " ".join(_WORD.findall(text.lower()))


def loop_cut(tokens: list[str], min_repeats: int = 3, min_words: int = 6, max_n: int = 8) -> list[int]:
    """Indexes of ``tokens`` to keep: a phrase said ``min_repeats`` or more times in a row, ``min_words``
    or more words in all, is kept once ("no, no, no" stays; a loop of "I can't tell you what" does not)."""
    keys = [normalised(t) for t in tokens]
    keep: list[int] = []
    i = 0
    while i < len(keys):
        best_n, best_reps = 0, 1
        for n in range(1, max_n + 1):
            unit = keys[i : i + n]
            if len(unit) < n or not all(unit):
                break
            reps = 1
            while keys[i + reps * n : i + (reps + 1) * n] == unit:
                reps += 1
            if reps >= min_repeats and reps * n >= min_words and reps * n > best_reps * best_n:
                best_n, best_reps = n, reps
        if best_n:
            keep.extend(range(i, i + best_n))
            i += best_reps * best_n
        else:
            keep.append(i)
            i += 1
    return keep


def cut_loops(seg: dict[str, Any]) -> dict[str, Any]:
    """``seg`` with any in-segment loop cut back (its words too, when it has them)."""
    words = seg.get("words")
    if words:
        kept = loop_cut([str(w["word"]) for w in words])
        if len(kept) == len(words):
            return seg
        new_words = [words[i] for i in kept]
        return {**seg, "words": new_words, "text": "".join(str(w["word"]) for w in new_words)}
    tokens = str(seg.get("text", "")).split(" ")
    kept = loop_cut(tokens)
    if len(kept) == len(tokens):
        return seg
    return {**seg, "text": " ".join(tokens[i] for i in kept)}


@dataclass
class RepetitionGuard:
    """Stateful over one job's segments in time order (it sees each window's segments in turn)."""

    gap_s: float = 1.0
    dropped: int = 0
    trimmed: int = 0
    _last: str = field(default="", repr=False)
    _last_end: float = field(default=-1e9, repr=False)

    def __call__(self, segments: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for seg in segments:
            cut = cut_loops(seg)
            self.trimmed += cut is not seg
            key = normalised(str(cut.get("text", "")))
            if not key:
                continue
            if key == self._last and float(cut["start"]) - self._last_end < self.gap_s:
                self.dropped += 1
                self._last_end = float(cut["end"])
                continue
            self._last, self._last_end = key, float(cut["end"])
            out.append(cut)
        return out


def repeat_runs(segments: list[dict[str, Any]], min_run: int = 2) -> tuple[int, int]:
    """(runs, longest): maximal runs of ``min_run`` or more consecutive same-text segments; a metric."""
    runs = longest = 0
    length, last = 0, None
    for seg in segments:
        key = normalised(str(seg.get("text", "")))
        length = length + 1 if key == last and key else 1
        last = key
        longest = max(longest, length)
        if length == min_run:
            runs += 1
    return runs, (longest if runs else 0)
