"""faster-whisper (CTranslate2): the default engine off Apple silicon (~36x real time, int8)."""

from __future__ import annotations

import dataclasses
import functools
import os
import threading
from typing import Any, BinaryIO

import processor.worker.engines.longrun as longrun  # the module, not the package: no init cycle
from processor.worker import audio, longform
from processor.worker.engines.base import OnProgress, OnSegments, Transcript
from processor.worker.lanes import Lanes


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
        lanes: Lanes | None = None,
        batch: int = 1,
    ) -> None:
        """``lanes``: the windows one job may decode side by side (one model replica each, sharing weights);
        ``batch``: how many 30 s pieces of a window are decoded in one batch (1: one after the other)."""
        self.model = model
        self.lanes = lanes or Lanes()
        self.batch = max(1, batch)
        self._pipelines = threading.local()  # a batched pipeline keeps word-timing state: one per lane
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
            num_workers=self.lanes.most,  # concurrent decodes from the lanes' threads run in parallel
            local_files_only=True,  # resolved to a directory before: a worker never downloads
        )
        return {
            "compute_type": self._compute_type,
            "device": f"cuda:{self._device_index}" if self._device == "cuda" else self._device,
            "threads": self._threads or os.cpu_count(),
            "lanes": self.lanes.most,
            "batch": self.batch,
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
        if not self._model.model.is_multilingual:  # English-only weights: known before the first window, so
            options = {**options, "language": options.get("language") or "en"}  # every lane can start at once
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
            lanes=self.lanes,
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
                "windows_ahead": outcome.ran_ahead,
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
        """One window's speech clips; segments are emitted as the lazy generator finishes each.

        With ``batch`` > 1 the clips, cut into pieces of at most 30 s, are decoded
        ``batch`` at a time (faster-whisper's BatchedInferencePipeline): on a CPU
        as on a GPU that is far less work per second of audio than one by one.
        """
        rate = longform.RATE
        chunks: longform.Regions = []
        if self.batch > 1 and not multilingual and decoding["word_timestamps"]:  # words: cut to sentences after
            n = len(samples)  # clips are rounded to the millisecond: the last may end past the samples
            regions = [
                (min(n, round(a * rate)), min(n, round(b * rate)))
                for a, b in zip(clips[0::2], clips[1::2], strict=False)
            ]
            chunks = longform.pieces(regions, samples, 30 * rate, rate // 10, longrun.pauses())
        batched = len(chunks) > 1
        if batched:
            segments_iter, info = self._pipeline().transcribe(
                samples,
                beam_size=beam_size,
                clip_timestamps=[{"start": a / rate, "end": b / rate} for a, b in chunks],
                vad_filter=False,
                batch_size=self.batch,
                hotwords=hotwords,
                without_timestamps=True,  # with timestamp tokens a batched decode drops text (WER 0.08 -> 0.2)
                **decoding,
            )
        else:
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
                raw["words"] = [_word(w) for w in seg.words]
            emit(longform.by_sentence(raw) if batched else [raw], float(seg.end))
        if self._language_probability is None:
            self._language_probability = round(float(info.language_probability), 4)
        return str(info.language)

    def _pipeline(self) -> Any:
        pipeline = getattr(self._pipelines, "pipeline", None)
        if pipeline is None:
            from faster_whisper import BatchedInferencePipeline

            pipeline = self._pipelines.pipeline = BatchedInferencePipeline(model=self._model)
        return pipeline

    def between_jobs(self) -> None:
        return None


def _word(w: Any) -> dict[str, Any]:
    """A word as a dict: faster-whisper 1.2 made Word a dataclass (``_asdict`` warns), earlier a NamedTuple."""
    if dataclasses.is_dataclass(w) and not isinstance(w, type):
        return dataclasses.asdict(w)
    return dict(w._asdict())
