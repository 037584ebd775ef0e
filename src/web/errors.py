"""JSON errors with a stable ``code``; never a traceback in a response.

Every error a client can meet is ``{"error": {"code": ..., "message": ...}}``
with the HTTP status; the codes are documented in docs/web.md and do not change.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ground.errors import SpoolError
from schema.errors import JobNotFound, StoreError

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    503: "unavailable",
    504: "timeout",
    507: "disk_full",
}


class ApiError(Exception):
    """An answer that is an error: status, stable code, a message for a human, optional extra fields."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


def body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def respond(status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse(body(code, message, **extra), status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        return respond(exc.status, exc.code, exc.message, **exc.extra)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        code = HTTP_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return respond(exc.status_code, code, message, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"where": ".".join(str(p) for p in e.get("loc", ())), "problem": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        return respond(422, "invalid_request", "the request does not fit the endpoint", problems=problems)

    @app.exception_handler(JobNotFound)
    async def _no_job(request: Request, exc: JobNotFound) -> JSONResponse:
        return respond(404, "job_not_found", str(exc))

    @app.exception_handler(StoreError)
    async def _store(request: Request, exc: StoreError) -> JSONResponse:
        return respond(503, "store_unavailable", f"the event store refused: {exc}")

    @app.exception_handler(SpoolError)
    async def _spool(request: Request, exc: SpoolError) -> JSONResponse:
        return respond(400, "bad_request", str(exc))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        line = {
            "event": "web.internal_error",
            "path": request.url.path,
            "error": type(exc).__name__,
            "message": str(exc),
        }
        sys.stderr.write(json.dumps(line, default=str) + "\n")  # the traceback stays out of the answer
        return respond(500, "internal_error", "an internal error (a bug); the web face's log has the details")
