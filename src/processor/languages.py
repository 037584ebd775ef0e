"""Whisper's languages, and whether a model can serve a request: decided before any decoding.

An English-only model (``tiny.en``...) asked for German transcribes the
English it hears and silently drops the rest; asked to translate, it just
transcribes.  Both "succeed" with a transcript that is not what was asked
for.  So a request the model cannot serve fails the job, not retryable, with
a reason naming model and request, before the audio is decoded.
"""

from __future__ import annotations

from typing import Any

# Whisper's language codes (openai-whisper / faster-whisper tokenizer order; "yue" came with large-v3)
_SPELLED = (
    "af am ar as az ba be bg bn bo br bs ca cs cy da de el en es et eu fa fi fo fr gl gu ha haw he hi hr ht "
    "hu hy id is it ja jw ka kk km kn ko la lb ln lo lt lv mg mi mk ml mn mr ms mt my ne nl nn no oc pa pl "
    "ps pt ro ru sa sd si sk sl sn so sq sr su sv sw ta te tg th tk tl tr tt uk ur uz vi yi yo zh yue"
)
CODES: tuple[str, ...] = tuple(_SPELLED.split())
DETECT = "auto"  # and null / "": the model detects the language


def valid(value: Any) -> bool:
    """A Whisper language code, ``auto``, or None (detect)."""
    return value is None or value == DETECT or (isinstance(value, str) and value in CODES)


def normalise(value: Any) -> str | None:
    """What engines take: a code, or None to detect."""
    return None if value in (None, "", DETECT) else str(value)


def unsupported(options: dict[str, Any], model: str, multilingual: bool | None) -> tuple[str, str] | None:
    """``(reason, message)`` when ``model`` cannot serve ``options``; None when it can (or nobody knows).

    ``multilingual`` is what the loaded model (or its files) says; None means
    unknown, and the request goes ahead as before.
    """
    if multilingual is not False:
        return None
    language = normalise(options.get("language"))
    bigger = model.removesuffix(".en") if model.endswith(".en") else "small"
    if language not in (None, "en"):
        return (
            "language_unsupported",
            f"model {model} is English-only and cannot transcribe language {language!r}; "
            f"use a multilingual model (e.g. model = {bigger!r})",
        )
    if options.get("task") == "translate":
        return (
            "task_unsupported",
            f"model {model} is English-only and cannot translate (task 'translate'); "
            f"use a multilingual model (e.g. model = {bigger!r})",
        )
    return None
