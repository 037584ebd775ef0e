"""Per-job transcription options: defaults, then folder profile, then sidecar.

Sidecars come from whoever can write to the inbox, so they are validated
against a strict allow-list of keys and types; nothing in them can name a
path (outputs are always named after the input).  Profiles come from the
operator's spool.toml and may also choose the engine and model.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ground.errors import SpoolError
from processor import languages

FORMATS = ("txt", "srt", "vtt", "tsv", "json")
ENGINES = ("auto", "mlx", "faster-whisper", "test")
TASKS = ("transcribe", "translate")
MAX_PROMPT = 2000
SIDECAR_MAX_BYTES = 64 * 1024

# key -> (checker, description of what is allowed)
_SIDECAR_KEYS = {
    "language": "a Whisper language code such as 'en' or 'de', or 'auto' / null to detect",
    "task": "'transcribe' or 'translate'",
    "word_timestamps": "true or false",
    "initial_prompt": f"text of at most {MAX_PROMPT} characters without control characters, or null",
    "formats": f"a list drawn from {', '.join(FORMATS)}",
    "beam_size": "an integer from 1 to 10",
    # --- long-form quality (issue 13 items 1-2; defaults measured in docs/quality.md) ---
    **{
        "vad": "true or false (Silero voice-activity detection: only speech is transcribed)",
        "condition_on_previous_text": "true or false (feed each window's text to the next one as a prompt)",
    },
}
# --- issue 13: language detection, shaped subtitles, decoding hints (kept in one block) ---
SHAPE_KEYS = ("max_line_width", "max_line_count", "max_words_per_line", "highlight_words")
SHAPE_LIMITS = {"max_line_width": 1000, "max_line_count": 100, "max_words_per_line": 1000}
_SIDECAR_KEYS.update(
    {
        "multilingual": "true or false (detect the language of every window; faster-whisper only)",
        "hotwords": f"text of at most {MAX_PROMPT} characters without control characters, or null",
        "max_line_width": f"null or an integer from 1 to {SHAPE_LIMITS['max_line_width']} (characters a line)",
        "max_line_count": f"null or an integer from 1 to {SHAPE_LIMITS['max_line_count']} (lines per subtitle)",
        "max_words_per_line": f"null or an integer from 1 to {SHAPE_LIMITS['max_words_per_line']}",
        "highlight_words": "true or false (underline each word as it is spoken in srt/vtt)",
    }
)
_NEW_TRANSCRIPT_KEYS = ("hotwords", "multilingual")  # in the duplicate digest only when set (old digests hold)
_OPERATOR_KEYS = {
    "engine": f"one of {', '.join(ENGINES)}",
    "model": "a model name, model directory or Hub repo id",
}
JOB_KEYS = (*_SIDECAR_KEYS, *_OPERATOR_KEYS)
# Options that change the words of a transcript (formats only change its shape).
TRANSCRIPT_KEYS = (
    "engine",
    "model",
    "language",
    "task",
    "word_timestamps",
    "initial_prompt",
    "beam_size",
    *("vad", "condition_on_previous_text"),  # long-form quality
)


class InvalidOptions(SpoolError):
    """A sidecar or profile names an unknown key or a value of the wrong type."""

    def __init__(self, source: str, problem: str) -> None:
        self.source, self.problem = source, problem
        super().__init__(f"{source}: {problem}")


def _text(value: Any, max_len: int) -> bool:
    """Text an engine, a log and a JSON document can all take: encodable, no control characters."""
    if not isinstance(value, str) or len(value) > max_len:
        return False
    try:
        value.encode("utf-8")  # a lone surrogate ("\\ud800") is valid JSON but no engine can take it
    except UnicodeEncodeError:
        return False
    return not any((ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) < 0xA0 for c in value)


def _whole(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _check(key: str, value: Any) -> bool:
    if key == "language":
        return languages.valid(value)
    if key in SHAPE_LIMITS:
        return value is None or _whole(value, 1, SHAPE_LIMITS[key])
    if key in ("highlight_words", "multilingual"):
        return isinstance(value, bool)
    if key == "hotwords":
        return value is None or _text(value, MAX_PROMPT)
    if key == "task":
        return value in TASKS
    if key in ("word_timestamps", "vad", "condition_on_previous_text"):
        return isinstance(value, bool)
    if key == "initial_prompt":
        return value is None or _text(value, MAX_PROMPT)
    if key == "formats":
        return isinstance(value, list) and len(value) > 0 and all(isinstance(f, str) and f in FORMATS for f in value)
    if key == "beam_size":
        return isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 10
    if key == "engine":
        return value in ENGINES
    if key == "model":
        return isinstance(value, str) and len(value) > 0 and _text(value, 512) and "\n" not in value
    return False


def _shown(value: Any) -> str:
    """A bad value in a message: short, one line, printable whatever it held."""
    text = repr(value)
    return (text[:200] + "...") if len(text) > 200 else text


def validate(options: Any, *, source: str, allow_operator_keys: bool = False) -> dict[str, Any]:
    """Return a clean copy of ``options`` or raise :class:`InvalidOptions`."""
    if not isinstance(options, dict):
        raise InvalidOptions(source, f"must be a JSON object of options, not {type(options).__name__}")
    allowed = dict(_SIDECAR_KEYS)
    if allow_operator_keys:
        allowed.update(_OPERATOR_KEYS)
    clean: dict[str, Any] = {}
    for key, value in options.items():
        if not isinstance(key, str) or key not in allowed:
            raise InvalidOptions(source, f"unknown option {_shown(key)} (allowed: {', '.join(sorted(allowed))})")
        if not _check(key, value):
            raise InvalidOptions(source, f"option {key!r} must be {allowed[key]}; got {_shown(value)}")
        clean[key] = list(value) if isinstance(value, list) else value
    if "language" in clean:
        clean["language"] = languages.normalise(clean["language"])  # "auto" is null: detect
    return clean


def check_combination(options: dict[str, Any], source: str) -> None:
    """Options that are each fine but together do nothing (the writers would ignore them silently)."""
    shaped = [k for k in SHAPE_KEYS if options.get(k)]
    if shaped and not options.get("word_timestamps"):
        raise InvalidOptions(source, f"{', '.join(shaped)} need word_timestamps = true")
    if options.get("max_line_count") and not options.get("max_line_width"):
        raise InvalidOptions(source, "max_line_count needs max_line_width (lines are cut by width)")
    if options.get("max_words_per_line") and options.get("max_line_width"):
        raise InvalidOptions(source, "max_words_per_line has no effect with max_line_width; set one of them")


def writer_options(options: dict[str, Any]) -> dict[str, Any]:
    """What the whisper writers take: the shape of subtitles, nothing else."""
    return {k: options.get(k) or (False if k == "highlight_words" else None) for k in SHAPE_KEYS}


def parse_sidecar(raw: bytes, source: str) -> dict[str, Any]:
    if len(raw) > SIDECAR_MAX_BYTES:
        raise InvalidOptions(source, f"sidecar is larger than {SIDECAR_MAX_BYTES} bytes")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as e:  # bad UTF-8 or JSON, an integer of 5000 digits, deep nesting
        raise InvalidOptions(source, f"sidecar is not valid JSON ({type(e).__name__}: {e})"[:300]) from None
    return validate(data, source=source)


def profile_for(source: str, profiles: dict[str, dict[str, Any]]) -> tuple[str | None, dict[str, Any]]:
    """The profile of the deepest inbox sub-folder holding ``source`` that has one."""
    parts = source.split("/")[:-1]
    for depth in range(len(parts), 0, -1):
        folder = "/".join(parts[:depth])
        if folder in profiles:
            return folder, dict(profiles[folder])
    return None, {}


def resolve(defaults: dict[str, Any], profile: dict[str, Any], sidecar: dict[str, Any]) -> dict[str, Any]:
    merged = {**defaults, **profile, **sidecar}
    merged["formats"] = [f for f in FORMATS if f in merged["formats"]]
    merged["language"] = languages.normalise(merged.get("language"))  # a profile's "auto" is null too
    return merged


def options_key(options: dict[str, Any]) -> str:
    """Digest of the options that change a transcript: half of a duplicate's identity."""
    relevant = {k: options.get(k) for k in TRANSCRIPT_KEYS}
    relevant.update({k: options[k] for k in _NEW_TRANSCRIPT_KEYS if options.get(k) not in (None, False)})
    blob = json.dumps(relevant, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
