"""Who may ask: a Bearer token on every request when one is configured; loopback-only requests when not.

* With a token, every request but the UI's static shell (HTML, JS, CSS, the
  OpenAPI description: no data in any of them) carries
  ``Authorization: Bearer <token>``, compared in constant time
  (:func:`hmac.compare_digest`).  No cookies are read or set, so there is
  nothing a foreign page can ride on (no CSRF).
* Without a token the server listens on loopback only (``spool web`` refuses
  anything else), and also refuses what a foreign web page could make a
  browser send to it: a ``Host`` that is not a loopback name (DNS rebinding)
  and a cross-origin ``Origin``.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from web.errors import respond
from web.settings import is_loopback

Scope = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]

PUBLIC_PREFIXES = ("/static/",)
PUBLIC_PATHS = frozenset({"/", "/docs", "/openapi.json", "/favicon.ico"})
HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"),
    (b"cache-control", b"no-store"),
]


def is_public(path: str) -> bool:
    return (
        path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES) or (path.startswith("/jobs/") and "/" not in path[6:])
    )


def bearer_ok(header: str | None, token: str) -> bool:
    if not header:
        return False
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


class Guard:
    """ASGI middleware: the token or the loopback rules above, then the safety headers on every answer."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        problem = self._problem(scope, headers)
        if problem is not None:
            status, code, message = problem
            extra = {"WWW-Authenticate": "Bearer"} if status == 401 else None
            await respond(status, code, message, headers=extra)(scope, receive, _with_headers(send))
            return
        await self.app(scope, receive, _with_headers(send))

    def _problem(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str, str] | None:
        path = scope.get("path", "")
        if self.token:
            if is_public(path) or bearer_ok(headers.get("authorization"), self.token):
                return None
            return 401, "unauthorized", "this server needs Authorization: Bearer <token>"
        host = headers.get("host", "")
        if host and not is_loopback(urlsplit("//" + host).hostname or ""):
            return 403, "forbidden_host", "without a token only loopback host names are served"
        origin = headers.get("origin")
        if origin and origin != "null" and urlsplit(origin).netloc != host:
            return 403, "cross_origin", "requests from other origins are refused"
        return None


def _with_headers(send: Any) -> Any:
    async def wrapped(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            present = {k.lower() for k, _ in message.get("headers", [])}
            message["headers"] = list(message.get("headers", [])) + [(k, v) for k, v in HEADERS if k not in present]
        await send(message)

    return wrapped
