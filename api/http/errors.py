"""Errors as RFC 9457 problem documents: one table from domain error to HTTP status, one
handler factory. Nothing but the message of an error raised on purpose reaches a client; an
unexpected exception is logged with an id and answered "internal error (id …)".
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from gis.errors import (
    AccessError,
    ConflictError,
    GridError,
    LayerNotFoundError,
    NotFoundError,
    StaleTagError,
    StoreBusyError,
    StoreUnavailableError,
)

log = logging.getLogger("gridgis.api")
PROBLEM = "application/problem+json"
TITLES = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found",
          405: "Method not allowed", 406: "Not acceptable", 409: "Conflict", 412: "Precondition failed",
          413: "Too large", 415: "Unsupported media type", 428: "Precondition required", 429: "Too many requests", 500: "Internal error",
          503: "Service unavailable"}  # fmt: skip

#: domain error → HTTP status (the first class that matches, in order)
STATUS: tuple[tuple[type[Exception], int], ...] = (
    (StoreUnavailableError, 503),
    (StoreBusyError, 503),
    (NotFoundError, 404),
    (LayerNotFoundError, 404),
    (AccessError, 403),
    (StaleTagError, 412),
    (ConflictError, 409),
    (GridError, 400),
)


class Problem(Exception):
    """An HTTP problem with a status and a message for the client."""

    def __init__(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status, self.detail, self.headers = status, detail, headers


class ProblemDoc(BaseModel):
    """An RFC 9457 problem document."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str


def problem(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """A problem response (401 also names the header the key goes in)."""
    h = dict(headers or {})
    if status == 401:
        h["WWW-Authenticate"] = 'ApiKey header="X-API-Key"'
    body = {
        "type": "about:blank",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=h or None)


def status_of(exc: BaseException) -> int:
    """The HTTP status of a domain error."""
    return next((s for cls, s in STATUS if isinstance(exc, cls)), 400)


class Outage:
    """Whether the store's database is down: logged once when it goes, once when it is back."""

    def __init__(self) -> None:
        self.since: float | None = None
        self.refused = 0
        self.lock = threading.Lock()

    def down(self, exc: BaseException) -> None:
        """A request found the database unreachable."""
        with self.lock:
            self.refused += 1
            if self.since is None:
                self.since = time.monotonic()
                log.error("store unreachable, answering 503 until it is back: %s", exc)

    def up(self) -> None:
        """A request was answered normally (cheap when nothing was down)."""
        if self.since is None:
            return
        with self.lock:
            if self.since is not None:
                log.warning("store reachable again after %.0f s (%d requests refused)",
                            time.monotonic() - self.since, self.refused)  # fmt: skip
                self.since, self.refused = None, 0


def install(app: FastAPI, outage: Outage, retry_after: int) -> None:
    """The exception handlers: problem documents for every error."""
    later = {"Retry-After": str(retry_after)}

    async def on_problem(_r: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem(exc.status, exc.detail, exc.headers)

    async def on_invalid(_r: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        skip = ("query", "body", "path", "header")
        msgs = [
            f"{'.'.join(str(x) for x in e.get('loc', ()) if x not in skip)}: {e.get('msg')}"
            for e in exc.errors()
        ]
        return problem(400, "; ".join(msgs) or "invalid request")

    async def on_http(_r: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return problem(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    async def on_domain(_r: Request, exc: Exception) -> JSONResponse:
        status = status_of(exc)
        detail = str(exc)
        if isinstance(exc, StoreUnavailableError):  # the log says which database; not the client
            outage.down(exc)
            detail = f"the store cannot be reached right now; try again in {retry_after} s"
        return problem(status, detail, later if status == 503 else None)

    handlers: dict[Any, Callable[..., Any]] = {
        Problem: on_problem, RequestValidationError: on_invalid, HTTPException: on_http,
        GridError: on_domain,
    }  # fmt: skip
    for cls, fn in handlers.items():
        app.add_exception_handler(cls, fn)


def internal(request: Request, exc: BaseException) -> JSONResponse:
    """An unexpected failure: logged with an id; the client gets the id, never the trace."""
    ref = uuid.uuid4().hex[:10]
    log.error("%s %s failed (error %s)", request.method, request.url.path, ref, exc_info=exc)
    return problem(500, f"internal error; it has been logged as {ref}")


def responses() -> dict[int | str, dict[str, Any]]:
    """The problem responses every route may give (for the OpenAPI document)."""
    content = {PROBLEM: {"schema": ProblemDoc.model_json_schema()}}
    texts = (
        (400, "Bad request: a parameter, body, CRS or filter is malformed"),
        (401, "No API key, or an unknown or revoked one"),
        (403, "The key's role or jurisdiction does not allow it"),
        (404, "No such resource (or outside the jurisdiction, where existence must not leak)"),
        (409, "A resource of that name exists"),
        (413, "Request body too large"),
        (503, "The store is busy or unreachable; try again after Retry-After seconds"),
    )
    return {s: {"description": t, "content": content} for s, t in texts}
