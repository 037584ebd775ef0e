"""The ASGI application: routers, the guard, health, the UI's files and the offline docs page."""

from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.staticfiles import StaticFiles

from processor import liveness
from schema.errors import StoreError
from web import compat, errors, jobs_api, uploads
from web.errors import ApiError
from web.face import Face
from web.security import Guard

STATIC = resources.files("web") / "static"
DESCRIPTION = (
    "spoolscribe's HTTP face: the jobs API under /api/v1, OpenAI- and whisper-asr-webservice-compatible "
    'endpoints, and a live UI at /. Errors are JSON: {"error": {"code", "message"}} (docs/web.md).'
)


def create_app(face: Face) -> Any:
    """The FastAPI app of ``face``, wrapped in the guard (token / loopback rules, safety headers)."""
    app = FastAPI(title="spoolscribe", version="1", description=DESCRIPTION, docs_url=None, redoc_url=None)
    errors.install(app)
    app.include_router(jobs_api.router(face))
    app.include_router(jobs_api.stream_router(face))
    app.include_router(compat.router(face))
    uploads.clear_leftovers(face)

    @app.get("/healthz", tags=["health"], summary="The web process is alive")
    def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="Store reachable and a daemon alive")
    async def readyz() -> JSONResponse:
        try:
            position = await run_in_threadpool(face.store.last_position)
        except StoreError as e:
            raise ApiError(503, "store_unavailable", f"the event store cannot be read: {e}") from None
        live = await run_in_threadpool(liveness.inspect, face.layout, face.store)
        # SQLite: the lock and a fresh daemon.json (a frozen daemon is not ready); a fleet: a live lease
        running = live.alive if not face.settings.store else await run_in_threadpool(face.daemon_running)
        doc = {"status": "ok" if running else "no_daemon", "store": "ok", "position": position, "daemon": running}
        return JSONResponse(doc, status_code=200 if running else 503)

    @app.get("/", include_in_schema=False)
    def index() -> Response:
        return _page("index.html")

    @app.get("/jobs/{job_id}", include_in_schema=False)
    def job_page(job_id: str) -> Response:
        return _page("job.html")

    @app.get("/docs", include_in_schema=False)
    def docs() -> Response:
        return _page("docs.html")

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    return Guard(app, face.token)


def _page(name: str) -> Response:
    return FileResponse(str(STATIC / name), media_type="text/html; charset=utf-8")
