"""A baseline: faster-whisper's own BatchedInferencePipeline over the clips in one process (a subprocess of
bench.throughput).  Its VAD cuts each file into chunks of up to 30 s and decodes ``--batch`` of them at once."""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from processor.worker import models


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--models-dir", type=Path, default=Path(tempfile.gettempdir()) / "spoolbench-models")
    p.add_argument("clips", nargs="+", type=Path)
    a = p.parse_args()
    from faster_whisper import BatchedInferencePipeline, WhisperModel

    path = models.for_engine(
        models.resolve("tiny.en", a.models_dir, engine="faster-whisper"), "faster-whisper", a.models_dir
    )
    model = WhisperModel(str(path), device="cpu", compute_type="int8", cpu_threads=a.threads)
    pipeline = BatchedInferencePipeline(model=model)
    texts, audio_s = [], 0.0
    t0 = time.monotonic()
    for clip in a.clips:
        segments, info = pipeline.transcribe(
            str(clip), batch_size=a.batch, word_timestamps=True, language="en", beam_size=1
        )
        texts.append(" ".join(s.text for s in segments))
        audio_s += info.duration
    elapsed = time.monotonic() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    json.dump({"elapsed_s": elapsed, "audio_s": audio_s, "texts": texts, "peak_rss_mb": peak}, sys.stdout)


if __name__ == "__main__":
    main()
