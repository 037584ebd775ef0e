"""The one contract every engine keeps, so the worker and the daemon never branch on engine."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

import numpy as np

OnProgress = Callable[[float], None]  # audio position reached, seconds
OnSegments = Callable[[list[dict[str, Any]], float], None]  # finished segments, checkpoint upto_s


@dataclass
class Transcript:
    language: str
    segments: list[dict[str, Any]]
    info: dict[str, Any] = field(default_factory=dict)


class Engine(Protocol):
    name: str
    model: str

    def load(self) -> dict[str, Any]:
        """Load weights once per worker; return facts worth logging (threads, BLAS, dtype)."""
        ...

    def probe(self, fh: BinaryIO) -> float:
        """Audio duration in seconds, before any decoding (timeouts scale with it)."""
        ...

    def transcribe(
        self,
        fh: BinaryIO,
        duration_s: float,
        options: dict[str, Any],
        *,
        resume_from: float,
        on_progress: OnProgress,
        on_segments: OnSegments,
    ) -> Transcript:
        """Transcribe from ``resume_from`` to the end; segments before it are not returned."""
        ...

    def between_jobs(self) -> None:
        """Release per-job memory (MLX cache) while keeping the model loaded."""
        ...


def clean_segment(seg: dict[str, Any], with_words: bool) -> dict[str, Any]:
    """The segment shape both engines emit and the writers read: plain JSON numbers."""
    out: dict[str, Any] = {
        "start": round(float(seg["start"]), 3),
        "end": round(float(seg["end"]), 3),
        "text": str(seg["text"]),
    }
    for key in ("avg_logprob", "no_speech_prob", "compression_ratio", "temperature"):
        if seg.get(key) is not None:
            out[key] = round(float(seg[key]), 4)
    if with_words:
        out["words"] = [
            {
                "word": str(w["word"]),
                "start": round(float(w["start"]), 3),
                "end": round(float(w["end"]), 3),
                "probability": round(float(w.get("probability", 0.0)), 4),
            }
            for w in (seg.get("words") or [])
        ]
    return out


def trim_to(audio: np.ndarray, resume_from: float, rate: int = 16_000) -> np.ndarray:
    return audio[int(resume_from * rate) :] if resume_from > 0 else audio
