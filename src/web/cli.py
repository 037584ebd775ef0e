"""``spool web``: serve the HTTP API and the UI (registered by the composition root, like ops' commands)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable

from ground.errors import SpoolError
from processor.config import Settings
from web.settings import NoToken, parse_listen, token_of

Add = Callable[[str, Callable[[argparse.Namespace, Settings], int], str], argparse.ArgumentParser]


def cmd_web(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from web.app import create_app
    from web.face import Face

    listen = parse_listen(args.listen, "web_listen") if args.listen else parse_listen(settings.web_listen)
    token = token_of(settings)
    if not listen.loopback and not token:
        raise NoToken(listen, "--listen" if args.listen else "web_listen")
    layout = settings.layout
    if not layout.root.is_dir():
        raise SpoolError(f"{layout.root} is not a spool (no such directory); create one with `spool init`")
    store = settings.open_store()
    with contextlib.closing(store):
        app = create_app(Face(settings, store, token))
        config = uvicorn.Config(
            app,
            host=listen.host,
            port=listen.port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
            proxy_headers=False,
            server_header=False,
        )
        server = uvicorn.Server(config)
        sys.stderr.write(f"spool web: serving {layout.root} on {listen.url()}{' (token required)' if token else ''}\n")
        sys.stderr.flush()
        server.run()
    return 0 if server.started else 4


def register(add: Add) -> None:
    web = add("web", cmd_web, "serve the HTTP API (OpenAI-, whisper-asr-compatible, jobs) and the web UI")
    web.add_argument("--listen", metavar="ADDR:PORT", help="address:port (default web_listen, 127.0.0.1:8790)")
