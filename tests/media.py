"""Encode 16 kHz mono float32 audio into real containers with PyAV (test inputs, made offline)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# name -> (container format, audio codec, audio rate, video codec or None)
CONTAINERS: dict[str, tuple[str, str, int, str | None]] = {
    "wav": ("wav", "pcm_s16le", 16000, None),
    "flac": ("flac", "flac", 16000, None),
    "mp3": ("mp3", "libmp3lame", 16000, None),
    "m4a": ("ipod", "aac", 16000, None),
    "ogg": ("ogg", "libopus", 48000, None),
    "opus": ("opus", "libopus", 48000, None),
    "wma": ("asf", "wmav2", 16000, None),
    "mp4": ("mp4", "aac", 16000, "mpeg4"),
    "mkv": ("matroska", "libopus", 48000, "mpeg4"),
    "webm": ("webm", "libopus", 48000, "libvpx"),
    "mov": ("mov", "aac", 16000, "mpeg4"),
}


def encode(samples: np.ndarray, path: Path, kind: str, rate: int = 16000) -> Path:
    fmt, codec, out_rate, video = CONTAINERS[kind]
    with av.open(str(path), mode="w", format=fmt) as out:
        vstream = None
        if video:
            vstream = out.add_stream(video, rate=5)
            vstream.width, vstream.height, vstream.pix_fmt = 64, 48, "yuv420p"
        astream = out.add_stream(codec, rate=out_rate)
        astream.layout = "mono"
        if codec in ("wmav2", "aac", "libmp3lame", "libopus"):
            astream.bit_rate = 64000
        resampler = av.AudioResampler(
            format=astream.format.name if astream.format else "s16", layout="mono", rate=out_rate
        )
        frame_len = 1024 if codec != "libopus" else 960
        pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
        src = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        src.sample_rate = rate
        src.time_base = Fraction(1, rate)
        chunks = resampler.resample(src) + resampler.resample(None)
        frames = []
        for chunk in chunks:
            arr = chunk.to_ndarray()
            for i in range(0, arr.shape[1], frame_len):
                piece = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(arr[:, i : i + frame_len]), format=chunk.format.name, layout="mono"
                )
                piece.sample_rate = out_rate
                frames.append(piece)
        pts = 0
        for piece in frames:
            piece.pts = pts
            pts += piece.samples
            for packet in astream.encode(piece):
                out.mux(packet)
        for packet in astream.encode(None):
            out.mux(packet)
        if vstream is not None:
            seconds = len(samples) / rate
            for i in range(max(1, int(seconds * 5))):
                img = av.VideoFrame.from_ndarray(np.full((48, 64, 3), i % 255, dtype=np.uint8), format="rgb24")
                img.pts = i
                for packet in vstream.encode(img):
                    out.mux(packet)
            for packet in vstream.encode(None):
                out.mux(packet)
    return path
