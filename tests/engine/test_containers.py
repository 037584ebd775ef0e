"""Every common container decodes to 16 kHz mono with the right duration, audio and video alike."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from processor.worker import audio
from schema.jobs import JobState
from tests.conftest import Spool, reference_speech
from tests.media import CONTAINERS, encode


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    path, _, _ = reference_speech(tmp_path_factory.mktemp("speech"))
    with open(path, "rb") as fh:
        return audio.decode(fh, audio.probe(fh))


@pytest.mark.parametrize("kind", sorted(CONTAINERS))
def test_container_decodes_with_its_duration(kind: str, speech: np.ndarray, tmp_path: Path) -> None:
    path = encode(speech, tmp_path / f"speech.{kind}", kind)
    with open(path, "rb") as fh:
        claimed = audio.probe(fh)
        decoded = audio.decode(fh, claimed)
    seconds = len(speech) / audio.SAMPLE_RATE
    assert decoded.dtype == np.float32 and decoded.ndim == 1
    assert abs(len(decoded) / audio.SAMPLE_RATE - seconds) < 0.2, kind
    assert abs(claimed - seconds) < 0.5, (kind, claimed)
    # the same sound came out: loudness within 3 dB of the source
    rms = lambda x: float(np.sqrt(np.mean(np.square(x))))  # noqa: E731
    assert abs(20 * np.log10(rms(decoded) / rms(speech))) < 3.0, kind


def test_every_container_goes_through_the_spool(spool: Spool, speech: np.ndarray, tmp_path: Path) -> None:
    """The test engine decodes real media with PyAV exactly as the real engines do."""
    spool.start()
    for kind in CONTAINERS:
        src = encode(speech[: 3 * audio.SAMPLE_RATE], tmp_path / f"clip.{kind}", kind)
        spool.drop(f"clip-{kind}.{kind}", src.read_bytes())
    jobs = spool.wait_terminal(len(CONTAINERS), timeout=90)
    assert {j.source: j.state for j in jobs} == {f"clip-{k}.{k}": JobState.succeeded for k in CONTAINERS}
    assert all(abs((j.duration_s or 0) - 3.0) < 0.3 for j in jobs), [(j.source, j.duration_s) for j in jobs]


def test_undecodable_input_names_the_decoder_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.m4a"
    bad.write_bytes(b"\x00\x00\x00\x18ftypM4A " + b"\x13" * 4000)
    with open(bad, "rb") as fh, pytest.raises(audio.BadInput, match="decoder"):
        audio.decode(fh, audio.probe(fh))
