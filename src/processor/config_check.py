"""The one path every configuration value goes through; its field's type and metadata decide.

Per value, the same two steps whatever the source:

1. :func:`coerce` turns what a source gave into the field's type.  Text from
   the environment or the command line is parsed; typed values (spool.toml,
   code) must already have the type: a TOML string is not a number, a bool is
   not an int, a string is not a list.
2. :func:`check_field` checks the typed value: numbers finite and of sensible
   size, the field's range (``minimum``/``maximum``) and ``choices``, text
   that is UTF-8 without control characters, then the field's own ``check``.

Then :func:`check_settings` checks what spans fields or nests: the job
defaults through the same options schema as profiles and sidecars, and the
sections ``[profiles.*]`` (and, through ``load(checks=)``, ops' ``[alerts.*]`` and ``[notify]``), parsed completely
now rather than when the scheduler first needs them.  A field added to
:class:`processor.config.Settings` gets all of this from its type alone.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ground.errors import ConfigError
from processor import options as opt
from processor.config_sources import Given
from schema import checks
from spool import names

Field = dataclasses.Field[Any]
STORE_SCHEMES = ("postgresql://", "postgres://")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_INT_TEXT = re.compile(r"^[+-]?[0-9]{1,30}$")
_DESCRIBE = {
    "bool": "true or false",
    "int": "a whole number",
    "float": "a number",
    "str": "text",
    "Path": "a path",
    "list": "a list of names",
    "dict": "a table",
}


def _type_name(f: Field) -> str:
    return f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))


def kind(f: Field) -> str:
    """``int``, ``float``, ``bool``, ``str``, ``Path``, ``list`` or ``dict``: the field's type, without parameters.

    ``X | None`` is ``X`` that may also be None (a default meaning "not set").
    """
    return _type_name(f).replace(" | None", "").split("[")[0]


def optional(f: Field) -> bool:
    return _type_name(f).endswith("| None")


def _toml_kind(value: Any) -> str:
    for types, word in (
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a float"),
        (str, "text"),
        (list, "an array"),
        (dict, "a table"),
    ):
        if isinstance(value, types):
            return word
    return f"a {type(value).__name__}"


# --- step 1: the field's type ------------------------------------------------------


def coerce(f: Field, given: Given) -> Any:
    """``given`` as the field's type, or a :class:`ConfigError` naming its source."""
    k = kind(f)
    if f.metadata.get("auto") and isinstance(given.value, str) and given.value.strip().lower() == "auto":
        return 0  # the daemon works the number out (processor.sizing)
    try:
        value = _parse_text(k, given.value) if given.text else _typed(k, given.value)
    except ValueError:
        problem = f"{checks.show(given.value)} is {_toml_kind(given.value)}, not {_DESCRIBE[k]}"
        if given.text:
            problem = f"{checks.show(given.value)} is not {_DESCRIBE[k]}"
        raise ConfigError(f.name, problem, source=given.source) from None
    except _FileOnly:
        raise ConfigError(f.name, f"is set in spool.toml only ([{f.name}...] tables)", source=given.source) from None
    return value


class _FileOnly(Exception):
    """A table-valued setting given as text: there is no text form for it."""


def _parse_text(k: str, text: Any) -> Any:
    if not isinstance(text, str):
        raise ValueError(text)
    word = text.strip()
    if k == "bool":
        if word.lower() in ("1", "true", "yes", "on"):
            return True
        if word.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(text)
    if k == "int":
        if not _INT_TEXT.match(word):
            raise ValueError(text)
        return int(word)
    if k == "float":
        if not word.isascii():
            raise ValueError(text)
        return float(word)  # nan/inf parse here and are refused by check_field, with their own message
    if k == "list":
        return [p for p in word.replace(",", " ").split() if p]  # the documented env form: "txt, json"
    if k == "dict":
        raise _FileOnly
    if k == "Path":
        return _path(text)
    return text


def _typed(k: str, value: Any) -> Any:
    ok = {
        "bool": isinstance(value, bool),
        "int": checks.is_number(value) and isinstance(value, int),
        "float": checks.is_number(value),
        "str": isinstance(value, str),
        "Path": isinstance(value, (str, Path)),
        "list": isinstance(value, list) and all(isinstance(x, str) for x in value),
        "dict": isinstance(value, dict),
    }[k]
    if not ok:
        raise ValueError(value)
    if k == "float" and isinstance(value, int):
        if abs(value) > checks.MAX_INT:
            return float("inf")  # too large for a float: refused by check_field as not finite
        return float(value)
    if k == "Path":
        return _path(str(value))
    return list(value) if k == "list" else value


def _path(text: str) -> Path:
    if not text.strip():
        raise ValueError(text)  # Path("") would quietly mean the current directory
    return Path(os.path.expanduser(text))


# --- step 2: the value ----------------------------------------------------------------


def check_field(f: Field, value: Any) -> None:
    """Everything the field's type and metadata say about ``value`` (no source: the caller adds it)."""
    if value is None and optional(f):
        return
    k = kind(f)
    problem = None
    if k in ("int", "float"):
        problem = checks.number_problem(value, integer=k == "int") or _range_problem(f, value)
    elif k in ("str", "Path"):
        problem = checks.text_problem(str(value) if isinstance(value, Path) else value)
    elif k == "list":
        problem = next((p for p in map(checks.text_problem, value) if p), None)
    elif k == "bool" and not isinstance(value, bool):
        problem = f"{checks.show(value)} is not true or false"
    if problem:
        raise ConfigError(f.name, problem, _allowed(f))
    choices = f.metadata.get("choices")
    for item in value if k == "list" else [value]:
        if choices and item not in choices:
            raise ConfigError(f.name, f"{checks.show(item)} is not allowed", ", ".join(choices))
    check = f.metadata.get("check")
    if check is not None:
        check(f.name, value)


def _range_problem(f: Field, value: float) -> str | None:
    low, high = f.metadata.get("min"), f.metadata.get("max")
    if low is not None and value < low:
        return f"{checks.show(value)} is below the minimum"
    if high is not None and value > high:
        return f"{checks.show(value)} is above the maximum"
    return None


def _allowed(f: Field) -> str | None:
    low, high = f.metadata.get("min"), f.metadata.get("max")
    if low is not None and high is not None:
        return f"{low:g} to {high:g}"
    if low is not None:
        return f">= {low:g}"
    if high is not None:
        return f"<= {high:g}"
    return None


# --- field rules named in Settings' metadata ------------------------------------------------


def store_url(key: str, value: str) -> None:
    """Only the stores that exist: an unknown scheme must never quietly mean SQLite."""
    if value == "" or value.startswith(STORE_SCHEMES):
        return
    scheme, sep, _ = value.partition("://")
    problem = f"the scheme {scheme + sep!r} is not implemented" if sep and ":" not in scheme else "is not a store URL"
    # the value itself is never shown: it may hold a password
    raise ConfigError(
        key, problem, "empty for SQLite in the state directory, " + " or ".join(s + "..." for s in STORE_SCHEMES)
    )


def bind_address(key: str, value: str) -> None:
    try:
        ipaddress.ip_address(value)
        return
    except ValueError:
        pass
    if not _HOSTNAME.match(value):
        raise ConfigError(
            key, f"{checks.show(value)} is not an IP address or host name", "e.g. 127.0.0.1, ::1, 0.0.0.0"
        )


def device(key: str, value: str) -> None:
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``metal``; whether it exists here is the daemon's start check."""
    from processor.worker import hardware

    if not hardware.valid_device(value):
        raise ConfigError(key, f"{checks.show(value)} is not a device", "auto, cpu, cuda, cuda:N, metal")


def not_empty(key: str, value: list[str]) -> None:
    if not value:
        raise ConfigError(key, "must name at least one")


# --- what spans fields ---------------------------------------------------------------------


def check_settings(settings: Any) -> None:
    """Every field, then the job defaults and the sections (``settings`` is a built Settings)."""
    for f in dataclasses.fields(settings):
        check_field(f, getattr(settings, f.name))
    names_ = {f.name for f in dataclasses.fields(settings)}
    schema_keys = set(opt.JOB_KEYS)  # the job options the options schema describes
    defaults = settings.job_defaults
    for key, value in defaults.items():
        if key in names_ and key in schema_keys:
            try:
                opt.validate({key: value}, source=key, allow_operator_keys=True)
            except opt.InvalidOptions as e:
                raise ConfigError(key, e.problem) from None
    try:
        opt.check_combination(defaults, "defaults")
    except opt.InvalidOptions as e:
        raise ConfigError(next(k for k in opt.SHAPE_KEYS if defaults.get(k)), e.problem) from None
    check_profiles(settings.profiles)
    for folder, prof in settings.profiles.items():  # each profile over the defaults it completes
        try:
            opt.check_combination({**defaults, **prof}, f"profiles.{folder}")
        except opt.InvalidOptions as e:
            raise ConfigError(f"profiles.{folder}", e.problem) from None


def check_profiles(profiles: Mapping[str, Any]) -> None:
    """``[profiles.<folder>]``: a folder inside the inbox, options from the options schema, key by key."""
    for folder, prof in profiles.items():
        key = f"profiles.{folder}"
        problem = checks.text_problem(folder)
        if problem or not names.is_safe_relative(folder):
            raise ConfigError(key, problem or "must name a folder inside the inbox (a/b, no '..')")
        if not isinstance(prof, dict):
            raise ConfigError(key, f"must be a table of options, not {_toml_kind(prof)}")
        for option, value in prof.items():
            if isinstance(value, str) and option != "initial_prompt":
                problem = checks.text_problem(value)
                if problem:
                    raise ConfigError(f"{key}.{option}", problem)
            try:
                opt.validate({option: value}, source=key, allow_operator_keys=True)
            except opt.InvalidOptions as e:
                raise ConfigError(f"{key}.{option}", e.problem) from None
