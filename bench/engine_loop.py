"""The ceiling: one process, one engine, a plain loop over the clips (run as a subprocess)."""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

from processor.worker.engines import make_engine


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--engine", required=True)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--models-dir", type=Path, default=Path(tempfile.gettempdir()) / "spoolbench-models")
    p.add_argument("clips", nargs="+", type=Path)
    a = p.parse_args()
    options = {
        "formats": ["txt"],
        "language": None,
        "task": "transcribe",
        "word_timestamps": True,
        "beam_size": 1,
        "initial_prompt": None,
    }
    t0 = time.monotonic()
    engine = make_engine(a.engine, "tiny.en", a.models_dir, a.threads)
    info = engine.load()
    load_s = time.monotonic() - t0
    audio_s = 0.0
    texts = []
    t1 = time.monotonic()
    for clip in a.clips:
        with open(clip, "rb") as fh:
            duration = engine.probe(fh)
            result = engine.transcribe(
                fh, duration, options, resume_from=0.0, on_progress=lambda _p: None, on_segments=lambda _s, _u: None
            )
        audio_s += max(duration, result.segments[-1]["end"] if result.segments else 0.0)
        texts.append(" ".join(s["text"] for s in result.segments))
        engine.between_jobs()
    elapsed = time.monotonic() - t1
    json.dump(
        {
            "load_s": load_s,
            "elapsed_s": elapsed,
            "audio_s": audio_s,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "info": info,
            "texts": texts,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
