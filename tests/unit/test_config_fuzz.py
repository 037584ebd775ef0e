"""Fuzzed configuration: from any source, any value gives valid Settings or one ConfigError naming the source.

The invariant (RELIABILITY.md row 27): ``config.load`` returns Settings that
pass their own checks (every number finite) or raises :class:`ConfigError`
whose message names where the bad value was (``$SPOOL_X``, ``--x``,
``path:line``); never any other exception.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ground.errors import ConfigError
from processor import config, config_check
from spoolscribe.main import load_settings
from tests.fuzz import examples

FIELDS = [f.name for f in config.fields()]


def fuzz(n: int) -> settings:
    """``n`` examples (scaled by SPOOL_FUZZ_SCALE); no deadline: a loaded machine is not a failure."""
    return settings(
        max_examples=examples(n), deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
    )


# --- a TOML writer for test values (tomllib only reads) -------------------------------------


def toml_key(key: str) -> str:
    return key if key and all((c.isalnum() and c.isascii()) or c in "_-" for c in key) else json.dumps(key)


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # JSON escapes are TOML's (a lone surrogate: bad UTF-8, fine)
    if isinstance(v, dt.datetime | dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(map(toml_value, v)) + "]"
    return "{" + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + "}"


INTERESTING = st.sampled_from(
    [
        "",
        "nan",
        "inf",
        "-1",
        "0",
        "1",
        "2.5",
        "1e999",
        " 3 ",
        "true",
        "off",
        "auto",
        "test",
        "txt, json",
        "postgresql://u@127.0.0.1:1/x",
        "sqlite:///x.db",
        "postgresq://x",
        "/tmp/x",
        "~/x",
        "a\x00b",
        "a\nb",
        "127.0.0.1",
        "::1",
        "local host",
        "de",
        "queue_depth",
        "http://example.org/h",
        "ftp://x",
        "keep",
        "reuse",
    ]
)
SCALARS = (
    st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | INTERESTING
    | st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31))
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8) | INTERESTING, inner, max_size=3),
    max_leaves=10,
)
TEXT = st.text(max_size=20) | INTERESTING | st.binary(max_size=12).map(os.fsdecode)  # env: surrogates too
KEYS = st.sampled_from(FIELDS) | st.sampled_from(["wokers", "Settle_s", "x", "alerts.x", "notify.webhooks"])


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("configfuzz")


def fresh_root(base: Path) -> Path:
    return Path(tempfile.mkdtemp(dir=base))


def assert_valid(s: config.Settings) -> None:
    config_check.check_settings(s)  # what it says about itself holds
    for f in dataclasses.fields(s):
        value = getattr(s, f.name)
        if isinstance(value, float):
            assert math.isfinite(value), f.name


def outcome(flags: dict[str, Any], env: dict[str, str], expect_source: str) -> None:
    try:
        s = load_settings(flags, env)
    except ConfigError as e:
        assert expect_source in str(e), (str(e), expect_source)
        assert "\n" not in str(e).replace("\\n", "")
        return
    assert_valid(s)


@fuzz(1000)
@given(key=KEYS, value=VALUES, padding=st.integers(0, 3))
def test_any_file_value_is_valid_or_named_by_its_line(base: Path, key: str, value: Any, padding: int) -> None:
    root = fresh_root(base)
    path = root / "spool.toml"
    head = "# fuzz\n" * padding
    path.write_text(f"{head}{toml_key(key) if '.' not in key else key} = {toml_value(value)}\n", errors="surrogatepass")
    try:
        import tomllib

        tomllib.loads(path.read_text(errors="surrogateescape"))
    except (ValueError, UnicodeError, RecursionError):
        expect = str(path)  # not TOML at all: the file is named
    else:
        expect = f"{path}:{padding + 1}"
    outcome({"root": str(root)}, {}, expect)


@fuzz(1000)
@given(key=st.sampled_from(FIELDS), text=TEXT, via=st.sampled_from(["env", "flag"]))
def test_any_text_value_is_valid_or_names_its_variable_or_flag(base: Path, key: str, text: str, via: str) -> None:
    root = fresh_root(base)
    if key == "root":
        text = str(root / text.replace("/", "_")) if "\x00" not in text and text.strip() else text
    if via == "env":
        env = {"SPOOL_" + key.upper(): text, **({} if key == "root" else {"SPOOL_ROOT": str(root)})}
        outcome({}, env, "$SPOOL_" + key.upper())
    else:
        flags = {key: text} if key == "root" else {"root": str(root), key: text}
        outcome(flags, {}, "--" + key.replace("_", "-"))


@fuzz(500)
@given(content=st.binary(max_size=200) | st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_any_file_bytes_give_settings_or_an_error_naming_the_file(base: Path, content: bytes) -> None:
    root = fresh_root(base)
    (root / "spool.toml").write_bytes(content)
    outcome({"root": str(root)}, {}, str(root / "spool.toml"))


SECTION_KEYS = {
    "alerts": ["metric", "op", "threshold", "level", "message", "enabled", "colour"],
    "notify.webhooks": ["url", "events", "name", "timeout_s", "headers"],
    "notify.commands": ["argv", "events", "name", "timeout_s"],
    "profiles": [
        *("language", "task", "word_timestamps", "initial_prompt", "formats", "beam_size", "engine", "model"),
        *("multilingual", "hotwords", "max_line_width", "max_line_count", "max_words_per_line", "highlight_words"),
        *("vad", "condition_on_previous_text"),
    ],
}
GOOD = st.sampled_from(
    [
        *("queue_depth", ">", "warning", 5, "http://127.0.0.1:9/x", ["job.failed"], ["/bin/true"], "de", ["txt"]),
        *(2, True, "auto", 42),
    ]
)


@st.composite
def sections(draw: st.DrawFn) -> str:
    """A spool.toml of section tables, each key with a plausible or a hostile value."""
    lines = []
    for _ in range(draw(st.integers(1, 3))):
        section = draw(st.sampled_from(sorted(SECTION_KEYS)))
        if section.startswith("notify."):
            lines.append(f"[[{section}]]")
        else:
            lines.append(f"[{section}.{toml_key(draw(st.text(min_size=1, max_size=6) | st.just('x')))}]")
        for key in draw(st.lists(st.sampled_from(SECTION_KEYS[section]), max_size=4, unique=True)):
            lines.append(f"{key} = {toml_value(draw(GOOD | VALUES))}")
    if draw(st.booleans()):
        lines.insert(0, f"[notify]\nmax_attempts = {toml_value(draw(GOOD | VALUES))}")
    return "\n".join(lines) + "\n"


@fuzz(1000)
@given(text=sections())
def test_any_section_gives_settings_or_an_error_at_a_line_of_the_file(base: Path, text: str) -> None:
    root = fresh_root(base)
    path = root / "spool.toml"
    path.write_text(text, errors="surrogatepass")
    try:
        s = load_settings({"root": str(root)}, {})
    except ConfigError as e:
        assert str(path) in str(e)
        at = re.search(re.escape(str(path)) + r":(\d+)\)", str(e))
        if at:
            assert 1 <= int(at.group(1)) <= text.count("\n")
        return
    assert_valid(s)
