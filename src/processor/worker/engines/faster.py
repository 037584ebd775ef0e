"""faster-whisper (CTranslate2): the default engine off Apple silicon (~36x real time, int8)."""

from __future__ import annotations

import functools
import os
from typing import Any, BinaryIO

import processor.worker.engines.longrun as longrun  # the module, not the package: no init cycle
from processor.worker import audio
from processor.worker.engines.base import OnProgress, OnSegments, Transcript


class FasterWhisperEngine:
    name = "faster-whisper"

    def __init__(
        self,
        model: str,
        model_path: str,
        threads: int = 0,
        compute_type: str = "int8",
        *,
        device: str = "cpu",
        device_index: int = 0,
    ) -> None:
        self.model = model
        self._path = model_path
        self._threads = threads
        self._compute_type = compute_type
        self._device, self._device_index = device, device_index
        self._model: Any = None
        self._language_probability: float | None = None

    def load(self) -> dict[str, Any]:
        from faster_whisper import WhisperModel

        self._model = WhisperModel(
            self._path,
            device=self._device,
            device_index=self._device_index,
            compute_type=self._compute_type,
            cpu_threads=self._threads,
            local_files_only=True,  # resolved to a directory before: a worker never downloads
        )
        return {
            "compute_type": self._compute_type,
            "device": f"cuda:{self._device_index}" if self._device == "cuda" else self._device,
            "threads": self._threads or os.cpu_count(),
            "multilingual": bool(self._model.model.is_multilingual),  # the weights' answer, not the name's
        }

    def probe(self, fh: BinaryIO) -> float:
        return audio.probe(fh)

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
        self._language_probability = None
        outcome = longrun.run(
            fh,
            duration_s,
            options,
            functools.partial(
                self._window,
                beam_size=int(options.get("beam_size") or 1),
                hotwords=options.get("hotwords") or None,  # a decoding hint (mlx has none of its own)
                multilingual=bool(options.get("multilingual")),  # the language of every window
            ),
            resume_from=resume_from,
            on_progress=on_progress,
            on_segments=on_segments,
        )
        multilingual = bool(self._model.model.is_multilingual)
        return Transcript(
            language=outcome.language or ("" if multilingual else "en"),
            segments=outcome.segments,
            info={
                "language_probability": self._language_probability,
                "windows": outcome.windows,
                "repeats_dropped": outcome.dropped_repeats,
                "loops_trimmed": outcome.trimmed_loops,
            },
        )

    def _window(
        self,
        samples: Any,
        clips: list[float],
        decoding: dict[str, Any],
        emit: longrun.Emit,
        *,
        beam_size: int,
        hotwords: str | None,
        multilingual: bool,
    ) -> str:
        """One window's speech clips; segments are emitted as the lazy generator finishes each."""
        segments_iter, info = self._model.transcribe(
            samples,
            beam_size=beam_size,
            clip_timestamps=clips,
            vad_filter=False,
            hotwords=hotwords,
            multilingual=multilingual,
            **decoding,
        )
        for seg in segments_iter:
            raw = {
                "start": seg.start,
                "end": seg.end,
                "text": seg.text,
                "avg_logprob": seg.avg_logprob,
                "no_speech_prob": seg.no_speech_prob,
                "compression_ratio": seg.compression_ratio,
                "temperature": seg.temperature,
            }
            if seg.words:
                raw["words"] = [w._asdict() for w in seg.words]
            emit([raw], float(seg.end))
        if self._language_probability is None:
            self._language_probability = round(float(info.language_probability), 4)
        return str(info.language)

    def between_jobs(self) -> None:
        return None
