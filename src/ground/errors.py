"""The errors every floor may raise: the one error discipline for the whole project.

Every package raises subclasses of :class:`SpoolError`; the CLI prints
``str(error)`` as one line and exits with the error's ``exit_code``, so each
message must tell a human what happened and what to do.  Subclasses take the
identifying data and format the message themselves, so call sites cannot word
the same failure two different ways.  The store's own errors live in
``schema.errors``; these are the ones that are nobody's in particular.
"""

from __future__ import annotations


class SpoolError(Exception):
    """Base class of every error spoolscribe raises on purpose."""

    exit_code = 1


class ConfigError(SpoolError):
    """A configuration value is missing, malformed or out of range.

    ``source`` says where the value came from (``$SPOOL_SETTLE_S``,
    ``spool/spool.toml:12``, ``--settle-s``): the checks that find a problem
    often do not know it, so :meth:`at` lets the loader that does add it.
    """

    exit_code = 2

    def __init__(self, key: str, problem: str, allowed: str | None = None, source: str | None = None) -> None:
        self.key, self.problem, self.allowed, self.source = key, problem, allowed, source
        msg = f"config {_visible(key)}"  # a key from a file may hold anything: the message stays one line
        if source:
            msg += f" ({source})"
        msg += f": {problem}"
        if allowed:
            msg += f" (allowed: {allowed})"
        super().__init__(msg)

    def at(self, source: str | None) -> ConfigError:
        """The same error naming ``source``; one that names its source already keeps it."""
        if self.source or not source:
            return self
        return ConfigError(self.key, self.problem, self.allowed, source)


class LayoutError(SpoolError):
    """A spool directory is not a plain directory of this spool (a symlink, a file in its place)."""

    exit_code = 2

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")


def _visible(text: str) -> str:
    """Control and other unprintable characters escaped (``\\n``), so a message is one readable line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
