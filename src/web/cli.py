"""``spool web``: serve the HTTP API and the UI (registered by the composition root, like ops' commands)."""

from __future__ import annotations

import argparse
import contextlib
import socket
import sys
from collections.abc import Callable

from ground.errors import SpoolError
from processor.config import Settings
from web.settings import Listen, NoToken, parse_listen, token_of

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
        sock = bind(listen)
        sys.stderr.write(f"spool web: serving {layout.root} on {listen.url()}{' (token required)' if token else ''}\n")
        sys.stderr.flush()
        with contextlib.closing(sock):
            server.run(sockets=[sock])
    return 0


class CannotListen(SpoolError):
    exit_code = 4  # the operating system refuses

    def __init__(self, listen: Listen, error: OSError) -> None:
        super().__init__(f"cannot listen on {listen.url()}: {error.strerror or error}; is another server there?")


def bind(listen: Listen) -> socket.socket:
    """The listening socket, bound here so that a taken port is one line and exit 4, before anything is served."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(listen.host, listen.port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as e:
        raise CannotListen(listen, e) from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as e:
        sock.close()
        raise CannotListen(listen, e) from None
    return sock


def register(add: Add) -> None:
    web = add("web", cmd_web, "serve the HTTP API (OpenAI-, whisper-asr-compatible, jobs) and the web UI")
    web.add_argument("--listen", metavar="ADDR:PORT", help="address:port (default web_listen, 127.0.0.1:8790)")
