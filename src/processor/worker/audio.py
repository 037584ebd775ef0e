"""Audio in: PyAV decodes any common container to 16 kHz mono float32 (no ffmpeg binary)."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from typing import BinaryIO

import av
import numpy as np

from ground.errors import SpoolError

SAMPLE_RATE = 16_000


class BadInput(SpoolError):
    """The input cannot be decoded as audio; retrying will not help."""

    def __init__(self, message: str, reason: str = "bad_input") -> None:
        self.reason = reason
        super().__init__(message)


def _why(e: av.FFmpegError) -> str:
    """The decoder's own words, without the file-object 'name' PyAV appends."""
    return str(getattr(e, "strerror", None) or e)


def _open(fh: BinaryIO) -> av.container.InputContainer:
    fh.seek(0)
    try:
        return av.open(fh, mode="r", metadata_errors="ignore")
    except av.FFmpegError as e:
        raise BadInput(f"not an audio or video file the decoder understands: {_why(e)}") from None


def probe(fh: BinaryIO) -> float:
    """Duration in seconds the file claims, without decoding (0.0 if it does not say).

    For WAV the header's own data size is used: FFmpeg clamps a WAV's duration
    to the bytes present, which would hide a truncated copy.
    """
    size = os.fstat(fh.fileno()).st_size
    if size == 0:
        raise BadInput("the file is empty (0 bytes)", reason="empty")
    claimed = 0.0
    with _open(fh) as container:
        stream = _audio_stream(container)
        if stream.duration is not None and stream.time_base is not None:
            claimed = max(0.0, float(stream.duration * stream.time_base))
        elif container.duration is not None:
            claimed = max(0.0, container.duration / av.time_base)
    return max(claimed, riff_claim(fh))


def riff_claim(fh: BinaryIO) -> float:
    """Seconds of audio a RIFF/WAVE header says its data chunk holds (0.0: not WAV or unknown)."""
    fh.seek(0)
    head = fh.read(4096)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return 0.0
    byte_rate, pos = 0, 12
    while pos + 8 <= len(head):
        chunk, size = head[pos : pos + 4], struct.unpack_from("<I", head, pos + 4)[0]
        if chunk == b"fmt " and pos + 16 <= len(head):
            byte_rate = struct.unpack_from("<I", head, pos + 16)[0]
        if chunk == b"data":
            # 0 and 0xFFFFFFFF are written by streaming recorders that never patched the header.
            if byte_rate <= 0 or size in (0, 0xFFFFFFFF):
                return 0.0
            return size / byte_rate
        pos += 8 + size + (size & 1)
    return 0.0


def _audio_stream(container: av.container.InputContainer) -> av.audio.stream.AudioStream:
    streams = container.streams.audio
    if not streams:
        raise BadInput("the file has no audio track", reason="no_audio")
    return streams[0]


def decode(fh: BinaryIO, claimed_s: float = 0.0) -> np.ndarray:
    """All of the first audio track as 16 kHz mono float32 (short inputs, tests, benches).

    The engines read :func:`stream` instead, so memory does not grow with duration.
    """
    chunks = list(stream(fh, claimed_s))
    return np.concatenate(chunks).astype(np.float32, copy=False)


def stream(fh: BinaryIO, claimed_s: float = 0.0, chunk_s: float = 30.0) -> Iterator[np.ndarray]:
    """The first audio track as 16 kHz mono float32 pieces of about ``chunk_s`` seconds.

    Streaming keeps a worker's memory independent of the input's length: a 2 h
    file decoded at once held 5.8 GB (issue 13); the caller holds only the
    window it transcribes.  A file that decodes to much less than its container
    claims is truncated (a copy cut short, a crashed recorder): that is bad
    input, not a short transcript the user would mistake for the whole
    recording; the check runs when the stream ends, so a caller may already
    have used the pieces before (the worker publishes nothing until the end).
    """
    want = max(1, int(chunk_s * SAMPLE_RATE))
    pending: list[np.ndarray] = []
    held = got = 0
    with _open(fh) as container:
        track = _audio_stream(container)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        try:
            for frame in container.decode(track):
                for out in resampler.resample(frame):
                    pending.append(out.to_ndarray().reshape(-1))
                    held += pending[-1].size
                if held >= want:
                    got += held
                    yield _joined(pending)
                    pending, held = [], 0
            for out in resampler.resample(None):
                pending.append(out.to_ndarray().reshape(-1))
                held += pending[-1].size
        except av.FFmpegError as e:
            seen = (got + held) / SAMPLE_RATE
            raise BadInput(
                f"the audio is corrupt after {seen:.1f} s: {_why(e)}", reason="corrupt" if got + held else "bad_input"
            ) from None
    got += held
    if got == 0:
        raise BadInput("the audio track holds no samples", reason="no_audio")
    seconds = got / SAMPLE_RATE
    if claimed_s > 0 and claimed_s - seconds > max(2.0, 0.1 * claimed_s):
        raise BadInput(
            f"the file is truncated: its header says {claimed_s:.1f} s but only {seconds:.1f} s decode",
            reason="truncated",
        )
    if held:
        yield _joined(pending)


def _joined(pieces: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(pieces).astype(np.float32, copy=False)
