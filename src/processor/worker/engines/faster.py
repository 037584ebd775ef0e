"""faster-whisper (CTranslate2): the default engine off Apple silicon (~36x real time, int8)."""

from __future__ import annotations

import os
from typing import Any, BinaryIO

from processor.worker import audio
from processor.worker.engines.base import OnProgress, OnSegments, Transcript, clean_segment


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
        samples = audio.decode(fh, duration_s)
        words = bool(options.get("word_timestamps"))
        segments_iter, info = self._model.transcribe(
            samples,
            language=options.get("language") or None,
            task=options.get("task", "transcribe"),
            beam_size=int(options.get("beam_size") or 1),
            word_timestamps=words,
            initial_prompt=options.get("initial_prompt") or None,
            hotwords=options.get("hotwords") or None,  # issue 13: decoding hint
            multilingual=bool(options.get("multilingual")),  # issue 13: language per window
            clip_timestamps=[float(resume_from)] if resume_from > 0 else "0",
            vad_filter=False,
        )
        out = []
        for seg in segments_iter:
            d = clean_segment(
                {
                    "start": seg.start,
                    "end": seg.end,
                    "text": seg.text,
                    "avg_logprob": seg.avg_logprob,
                    "no_speech_prob": seg.no_speech_prob,
                    "compression_ratio": seg.compression_ratio,
                    "temperature": seg.temperature,
                    "words": [w._asdict() for w in (seg.words or [])],
                },
                words,
            )
            out.append(d)
            on_segments([d], d["end"])
            on_progress(d["end"])
        return Transcript(
            language=info.language,
            segments=out,
            info={"language_probability": round(float(info.language_probability), 4)},
        )

    def between_jobs(self) -> None:
        return None
