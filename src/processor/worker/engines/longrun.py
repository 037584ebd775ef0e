"""The one long-form loop both engines run: stream, window, VAD, transcribe speech, stitch, guard.

An engine supplies only :data:`WindowFn`, "transcribe these clips of this
window"; everything that decides what is kept (windows, regions, absolute
times, the repetition guard, checkpoints) is here and in
:mod:`processor.worker.longform` / :mod:`processor.worker.repeats`, so the engines cannot
drift apart.  The defaults (VAD on, no conditioning on previous text) were
chosen by measurement: docs/quality.md.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np

from processor.worker import audio, longform
from processor.worker.engines.base import OnProgress, OnSegments, clean_segment
from processor.worker.lanes import Lanes, LookAhead
from processor.worker.repeats import RepetitionGuard

# Emit(raw segments in seconds from the window start, position reached in the window)
Emit = Callable[[list[dict[str, Any]], float], None]
# WindowFn(samples, clip_timestamps, decode options, emit) -> the language the engine used
WindowFn = Callable[[np.ndarray, list[float], dict[str, Any], Emit], str]

# --- the spool's long-form defaults (docs/quality.md says why) -------------------------------
VAD = True
CONDITION_ON_PREVIOUS_TEXT = False
HALLUCINATION_SILENCE_S: float | None = None  # 2 s measured no better once VAD cut the silences (quality.md)
VAD_THRESHOLD = 0.35  # speech above this probability (Silero's 0.5 missed a soft JFK opening after music)
VAD_MIN_SILENCE_MS = 2000  # pauses shorter than this stay inside one region (Whisper wants context)
VAD_PAD_MS = 400  # each region is widened by this much, so word onsets are not clipped
VAD_MERGE_S = 3.0  # regions closer than this become one clip: a soft word between them is not lost


@dataclass
class Outcome:
    """What a long-form run produced: the kept segments, the language, what the guard removed."""

    segments: list[dict[str, Any]]
    language: str | None
    dropped_repeats: int
    trimmed_loops: int
    windows: int
    ran_ahead: int = 0  # windows decoded on another lane


@functools.cache
def silero(threshold: float, min_silence_ms: int, pad_ms: int, merge_s: float) -> Any:
    """Silero VAD as faster-whisper ships it (an ONNX asset, offline): samples -> speech regions."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    opts = VadOptions(threshold=threshold, min_silence_duration_ms=min_silence_ms, speech_pad_ms=pad_ms)

    def speech(samples: np.ndarray) -> longform.Regions:
        found = get_speech_timestamps(samples, opts, sampling_rate=longform.RATE)
        return longform.merge([(int(t["start"]), int(t["end"])) for t in found], int(merge_s * longform.RATE))

    return speech


@functools.cache
def pauses() -> longform.SpeechFn:
    """Silero at the batched pipeline's own settings (pauses of 160 ms count): where a batch piece may end."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    opts = VadOptions(threshold=VAD_THRESHOLD, min_silence_duration_ms=160, speech_pad_ms=0)

    def speech(samples: np.ndarray) -> longform.Regions:
        return [(int(t["start"]), int(t["end"])) for t in get_speech_timestamps(samples, opts)]

    return speech


def decode_options(options: dict[str, Any]) -> dict[str, Any]:
    """The Whisper decoding options both engines take, from a job's options (spool defaults filled in)."""
    words = bool(options.get("word_timestamps"))
    return {
        "language": options.get("language") or None,
        "task": options.get("task") or "transcribe",
        "initial_prompt": options.get("initial_prompt") or None,
        "word_timestamps": words,
        "condition_on_previous_text": bool(options.get("condition_on_previous_text", CONDITION_ON_PREVIOUS_TEXT)),
        "hallucination_silence_threshold": HALLUCINATION_SILENCE_S if words else None,  # it needs word times
    }


def skip(chunks: Iterable[np.ndarray], n: int) -> Iterator[np.ndarray]:
    """The stream without its first ``n`` samples (a resumed job starts at its checkpoint)."""
    for chunk in chunks:
        if n >= len(chunk):
            n -= len(chunk)
            continue
        yield chunk[n:] if n else chunk
        n = 0


def run(
    fh: BinaryIO,
    duration_s: float,
    options: dict[str, Any],
    window_fn: WindowFn,
    *,
    resume_from: float,
    on_progress: OnProgress,
    on_segments: OnSegments,
    cut: longform.Windowing | None = None,
    lanes: Lanes | None = None,
) -> Outcome:
    """Transcribe ``fh`` from ``resume_from`` window by window; checkpoints as segments become final.

    With more than one lane (:mod:`processor.worker.lanes`) the next windows are
    decoded ahead on other threads; everything below the decode (placing,
    the repetition guard, checkpoints) still runs here, in window order.
    """
    words = bool(options.get("word_timestamps"))
    speech = (
        silero(VAD_THRESHOLD, VAD_MIN_SILENCE_MS, VAD_PAD_MS, VAD_MERGE_S)
        if options.get("vad", VAD)
        else longform.whole
    )
    decoding = decode_options(options)
    first = round(resume_from * longform.RATE)
    guard = RepetitionGuard()
    kept: list[dict[str, Any]] = []
    after = resume_from
    count = 0

    def emit(win: longform.Window, raw: list[dict[str, Any]], position: float) -> None:
        nonlocal after
        placed = longform.place(win, raw, after)
        if placed:
            after = placed[-1]["end"]
        new = [clean_segment(s, words) for s in guard(placed)]
        kept.extend(new)
        reached = min(win.end_s, win.start_s + position)
        if new:
            on_segments(new, max(reached, new[-1]["end"]))
        on_progress(reached)

    def ahead(win: longform.Window) -> Decoded:
        """One window decoded on another lane: its segments kept until the window's turn comes."""
        got = live[win.start] = Decoded()

        def keep(raw: list[dict[str, Any]], position: float) -> None:
            got.emitted.append((raw, position))
            got.position = position

        got.language = window_fn(win.samples, win.clips(), dict(decoding), keep)
        return got

    live: dict[int, Decoded] = {}  # windows decoding ahead, by start: their progress is read from here
    known = lambda: bool(decoding["language"]) or bool(options.get("multilingual"))  # noqa: E731
    windows = longform.windows(skip(audio.stream(fh, duration_s), first), speech, start=first, cut=cut)
    look = LookAhead(windows, ahead, lanes or Lanes(), busy=lambda w: bool(w.regions), may_run_ahead=known)
    with look:
        for win, decoded in look:
            count += 1
            if win.regions:
                if decoded is None:
                    used = window_fn(win.samples, win.clips(), decoding, functools.partial(emit, win))
                else:
                    where = functools.partial(_position, live, win.start)
                    used = _replay(win, decoded, where, emit, on_progress)
                    live.pop(win.start, None)
                if not options.get("multilingual"):  # one language per job, from its first speech
                    decoding["language"] = decoding["language"] or used
            on_progress(win.end_s)
    return Outcome(kept, decoding["language"], guard.dropped, guard.trimmed, count, look.ran_ahead)


@dataclass
class Decoded:
    """What a window decoded ahead gave: its raw segments with their positions, and its language."""

    emitted: list[tuple[list[dict[str, Any]], float]] = field(default_factory=list)
    position: float = 0.0  # how far into the window the decode got (read while it runs)
    language: str = ""


def _position(live: dict[int, Decoded], start: int) -> float:
    """How far a window decoding ahead got (0 until its lane has begun it)."""
    got = live.get(start)
    return got.position if got is not None else 0.0


def _replay(
    win: longform.Window,
    decoded: Future[Decoded],
    position_of: Callable[[], float],
    emit: Callable[[longform.Window, list[dict[str, Any]], float], None],
    on_progress: OnProgress,
) -> str:
    """Wait for a window that ran ahead, reporting its progress as it goes, then emit it in order.

    Progress is reported only when the position moved: a decode that hangs on its
    lane looks hung to the daemon, as it would on the main one.
    """
    state: Decoded | None = None
    reported = -1.0
    while state is None:
        try:
            state = decoded.result(timeout=0.5)
        except TimeoutError:
            pass
        position = position_of()
        if position > reported:
            reported = position
            on_progress(min(win.end_s, win.start_s + position))
    for raw, position in state.emitted:
        emit(win, raw, position)
    return state.language
