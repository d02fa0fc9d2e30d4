"""Small parameter parsers shared by the routers (FastAPI dependencies)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response

from api.http import ogc
from api.http.context import Context, context
from api.http.errors import Problem
from gis import access
from gis.access import ANONYMOUS, Principal

Ctx = Annotated[Context, Depends(context)]
Fmt = Annotated[Literal["json", "html"] | None, Query(description="Overrides Accept.")]
Tiles = Annotated[Literal["none", "osm", "tianditu", "amap"], Query(description="Base map.")]
Lang = Annotated[Literal["zh", "en"], Query(description="Labels: Chinese or English.")]


async def caller(request: Request, ctx: Ctx) -> Principal:
    """Who is calling, from the ``X-API-Key`` header (anonymous only when allowed).

    A coroutine: a sync dependency costs every request a hop to a worker thread and back;
    the keys come from this process's cache, and only when the store must be asked (every
    half second, or after the keys changed) does that go to a thread.
    """
    key = request.headers.get("x-api-key")
    if key is None:
        if ctx.settings.anonymous_read:
            return ANONYMOUS
        raise Problem(401, "send an API key in the X-API-Key header")
    keys = await held(ctx, ("keys",), _keys)
    p = keys.get(access.digest(key))
    if p is None:
        raise Problem(401, "unknown or revoked API key")
    return p


def _keys(ctx: Context) -> Any:
    return ctx.layers.memo(("keys",), ("api_keys",), lambda: access.principals(ctx.store))


async def held(ctx: Context, key: tuple, make: Callable[[Context], Any]) -> Any:
    """``make(ctx)``, a memo of ``ctx.layers`` under ``key``: taken on the event loop when
    it needs no trip to the store (no version check due), else built or checked on a
    worker thread — for the routes whose own work is less than a hop to a thread costs.
    """
    value = ctx.layers.peek(key)
    return value if value is not None else await run_in_threadpool(make, ctx)


Caller = Annotated[Principal, Depends(caller)]


def role(needed: str, what: str) -> Any:
    """A dependency: the caller, who must hold at least ``needed``."""

    async def check(who: Caller) -> Principal:  # no I/O: no thread hop
        if not who.at_least(needed):
            raise Problem(403, f"{what} needs the {needed} role")
        return who

    return Depends(check)


Supervisor = Annotated[Principal, role("supervisor", "this")]
Planner = Annotated[Principal, role("planner", "scenarios and site tests")]
Admin = Annotated[Principal, role("admin", "this")]


def base(request: Request) -> str:
    """The service's base URL (for links)."""
    return str(request.base_url).rstrip("/")


def wants_html(request: Request, f: str | None) -> bool:
    """HTML when ``f=html`` or (without ``f``) when the client accepts it."""
    if f is not None:
        return f == "html"
    return "text/html" in request.headers.get("accept", "")


def reply(
    request: Request, f: str | None, title: str, doc: Any, headers: dict[str, str] | None = None
) -> Response:
    """A JSON document, or its HTML view."""
    if wants_html(request, f):
        return HTMLResponse(ogc.as_html(title, doc), headers=headers)
    return JSONResponse(doc, headers=headers)
