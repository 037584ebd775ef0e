"""Job options: sidecars validated against an allow-list; profiles merged; identity digest."""

from __future__ import annotations

import json

import pytest

from processor import options as opt

DEFAULTS = {
    "engine": "faster-whisper",
    "model": "tiny.en",
    "formats": ["txt", "json"],
    "language": None,
    "task": "transcribe",
    "word_timestamps": True,
    "beam_size": 1,
    "initial_prompt": None,
}


def test_valid_sidecar() -> None:
    side = opt.parse_sidecar(json.dumps({"language": "de", "formats": ["srt"]}).encode(), "a.wav.json")
    assert side == {"language": "de", "formats": ["srt"]}


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"output": "../../etc/x"}, "unknown option 'output'"),
        ({"formats": ["../x"]}, "option 'formats' must be"),
        ({"engine": "mlx"}, "unknown option 'engine'"),  # operator-only key
        ({"beam_size": True}, "option 'beam_size' must be"),
        ({"vad": "yes"}, "option 'vad' must be true or false"),
        ({"condition_on_previous_text": 1}, "option 'condition_on_previous_text' must be true or false"),
        ({"initial_prompt": "x" * 5000}, "option 'initial_prompt' must be"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_invalid_sidecars_are_rejected_clearly(doc: object, message: str) -> None:
    with pytest.raises(opt.InvalidOptions, match=message):
        opt.parse_sidecar(json.dumps(doc).encode(), "a.wav.json")


def test_not_json() -> None:
    with pytest.raises(opt.InvalidOptions, match="not valid JSON"):
        opt.parse_sidecar(b"{nope", "a.wav.json")


def test_profile_of_deepest_folder() -> None:
    profiles = {"a": {"language": "de"}, "a/b": {"language": "fr"}}
    assert opt.profile_for("a/b/c/x.wav", profiles) == ("a/b", {"language": "fr"})
    assert opt.profile_for("a/x.wav", profiles) == ("a", {"language": "de"})
    assert opt.profile_for("x.wav", profiles) == (None, {})


def test_resolve_order_and_format_order() -> None:
    merged = opt.resolve(DEFAULTS, {"language": "de", "formats": ["json", "txt"]}, {"language": "fr"})
    assert merged["language"] == "fr" and merged["formats"] == ["txt", "json"]


def test_options_key_ignores_formats_only() -> None:
    a = opt.options_key(DEFAULTS)
    assert a == opt.options_key({**DEFAULTS, "formats": ["srt"]})
    assert a != opt.options_key({**DEFAULTS, "language": "de"})
