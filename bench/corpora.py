"""Corpora for the long-form quality harness, built offline and cached under bench/results/corpora/.

Each corpus is a 16 kHz mono WAV plus its reference (the English words a
listener hears; German stretches, tones, noise and silence have none, so any
words there count as insertions). Pieces: real clips from ../shared/audio,
synthetic speech (espeak-ng -v en-us -s 130 -g 10, resampled with sox),
German (espeak-ng -v de), music-like tones, noise and silence (sox).
"""

from __future__ import annotations

import json
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.common import REPO, SHARED, clip_text
from processor.worker import audio

CACHE = REPO / "bench" / "results" / "corpora"
JFK = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."
MULTI_EN = (
    "Permission is hereby granted, free of charge, to any person obtaining a copy of the software and associated "
    "documentation files to deal in the software without restriction, including without limitation the rights to "
    "use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the software, and to permit "
    "persons to whom the software is furnished to do so, subject to the following conditions. The above copyright "
    "notice and this permission notice shall be included in all copies or substantial portions of the software."
)
GERMAN = (
    "Der Hafen war vor der Morgendämmerung still. Die Fischer prüften ihre Netze und sprachen leise miteinander. "
    "Eine Möwe landete auf der Reling und sah ihnen bei der Arbeit zu. Weit draußen läutete zweimal eine Glocke. "
    "Als die Sonne aufging, waren die ersten Boote schon hinter dem Wellenbrecher."
)
PASSAGE = "ask not what your country can do for you"


@dataclass(frozen=True)
class Corpus:
    name: str
    path: Path
    reference: str
    about: str


def _run(*argv: str) -> None:
    subprocess.run(list(argv), check=True, capture_output=True)


def _speak(text: str, out: Path, voice: str = "en-us") -> Path:
    if not out.exists():
        raw = out.with_suffix(".raw.wav")
        _run("espeak-ng", "-v", voice, "-s", "130", "-g", "10", "-w", str(raw), "--", text)
        _run("sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(out))
        raw.unlink()
    return out


def _real(name: str, out: Path) -> Path:
    """A shared clip as 16 kHz mono 16-bit WAV, decoded by PyAV (this sox may lack mp3)."""
    if not out.exists():
        with open(SHARED / name, "rb") as fh:
            samples = audio.decode(fh)
        with wave.open(str(out), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(audio.SAMPLE_RATE)
            w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return out


def _silence(seconds: float, out: Path) -> Path:
    if not out.exists():
        _run("sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(out), "trim", "0", str(seconds))
    return out


def _tones(seconds: float, out: Path) -> Path:
    """Music-like: a chord progression of sines with a little pink noise, at speech level."""
    if not out.exists():
        parts = []
        chords = [(220, 277, 330), (196, 247, 294), (175, 220, 262), (196, 247, 311)]
        step = seconds / 8
        for i in range(8):
            a, b, c = chords[i % 4]
            part = out.with_name(f"{out.stem}-{i}.wav")
            _run(
                "sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(part), "synth", f"{step}",
                "sine", str(a), "sine", str(b), "sine", str(c), "pinknoise", "remix", "-", "gain", "-n", "-12",
            )  # fmt: skip
            parts.append(str(part))
        _run("sox", *parts, str(out))
        for p in parts:
            Path(p).unlink()
    return out


def _noise(seconds: float, out: Path) -> Path:
    if not out.exists():
        _run("sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(out), "synth", str(seconds), "brownnoise",
             "gain", "-n", "-18")  # fmt: skip
    return out


def _join(out: Path, parts: list[Path]) -> Path:
    if not out.exists():
        _run("sox", *map(str, parts), str(out))
    return out


def build(quick: bool = False) -> list[Corpus]:
    """Every corpus (cached); ``quick`` keeps the short ones (tests of the harness itself)."""
    d = CACHE
    d.mkdir(parents=True, exist_ok=True)
    have_shared = (SHARED / "jfk.flac").exists()
    texts = [clip_text(900 + i, 30) for i in range(12)]
    en = [_speak(t, d / f"en-{i}.wav") for i, t in enumerate(texts)]
    de = _speak(GERMAN, d / "de.wav", voice="de")
    out: list[Corpus] = []
    if have_shared:
        jfk = _real("jfk.flac", d / "jfk.wav")
        multi = _real("multilingual.mp3", d / "multilingual.wav")
        gap = _silence(20, d / "silence-20.wav")
        music = _tones(24, d / "tones-24.wav")
        path = _join(d / "jfk-repeats.wav", [en[0], jfk, de, jfk, gap, jfk, music, jfk, multi])
        ref = " ".join([texts[0], JFK, JFK, JFK, JFK, MULTI_EN])
        out.append(Corpus("jfk-repeats", path, ref, "English, JFK, German, JFK, 20 s silence, JFK, tones, JFK, "
                                                    "multilingual.mp3"))  # fmt: skip
    parts = [_silence(60, d / "silence-60.wav"), en[1], _tones(40, d / "tones-40.wav"), en[2],
             _noise(40, d / "noise-40.wav"), en[3], de, en[4]]  # fmt: skip
    path = _join(d / "after-stretches.wav", parts)
    out.append(
        Corpus("after-stretches", path, " ".join(texts[1:5]), "English after 60 s silence, tones, noise, German")
    )
    out.append(Corpus("silence-10min", _silence(600, d / "silence-600.wav"), "", "10 minutes of digital silence"))
    if quick:
        return out
    pause = _silence(1.5, d / "silence-1.5.wav")
    long_parts: list[Path] = []
    for p in en[5:12]:
        long_parts += [p, pause]
    path = _join(d / "long-speech.wav", long_parts)
    out.append(Corpus("long-speech", path, " ".join(texts[5:12]), "3.5 min of English, 1.5 s pauses between parts"))
    (d / "references.json").write_text(json.dumps({c.name: c.reference for c in out}, indent=1))
    return out
