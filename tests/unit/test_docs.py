"""The README documents every configuration key and every CLI command."""

from __future__ import annotations

from processor import cli, config
from tests.conftest import REPO

README = (REPO / "README.md").read_text()


def test_every_config_key_is_documented() -> None:
    for f in config.fields():
        assert f"| `{f.name}` |" in README, f.name


def test_every_command_is_documented() -> None:
    parser = cli._parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in sub.choices:  # type: ignore[union-attr]
        assert f"`spool {name}" in README, name


def test_quick_start_has_exactly_the_two_commands() -> None:
    quick = README.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in quick.strip().splitlines()]
    assert commands == ["make run", "make test"]


def test_every_failure_reason_is_troubleshot() -> None:
    from schema.reasons import Reason

    doc = (REPO / "docs" / "troubleshooting.md").read_text()
    for reason in Reason:
        assert f"| `{reason.value}` |" in doc, reason


def test_reasons_used_in_the_code_are_documented() -> None:
    import re

    from schema.reasons import Reason

    used: set[str] = set()
    for path in (REPO / "src").rglob("*.py"):
        text = path.read_text()
        used |= set(re.findall(r'reason="([a-z_]+)"', text))
        used |= set(re.findall(r'StopReason\("[a-z]+", "([a-z_]+)"', text))
    assert used <= {r.value for r in Reason}, used - {r.value for r in Reason}
