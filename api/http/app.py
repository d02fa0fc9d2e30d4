"""The app factory: one FastAPI app serving one store.

Routers per resource (features, locate, analysis, scenarios, jobs, edits, maps) get the
store, the layer cache and the settings through :func:`api.http.context.context`; every
route resolves the caller from ``X-API-Key``. Errors are problem documents
(:mod:`api.http.errors`).
"""

from __future__ import annotations

import gc
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from fastapi import FastAPI

from api.http import (
    analysis,
    cache,
    edits,
    errors,
    features,
    guard,
    jobs,
    locate,
    maps,
    orders,
    scenarios,
    tiles,
)
from api.http.context import Context, Layers
from api.settings import Settings
from gis.store import Store, open_store


def create_app(
    store: str | Store | None = None,
    *,
    settings: Settings | None = None,
    anonymous_read: bool | None = None,
) -> FastAPI:
    """The app serving ``store`` (default: the settings' store, ``$GRIDGIS_STORE``).

    Parameters
    ----------
    store
        A store, or its spec (a ``.gpkg`` path or a PostGIS URL).
    settings
        The service settings (default: read from the environment now).
    anonymous_read
        Overrides ``settings.anonymous_read``.
    """
    settings = settings or Settings()
    if anonymous_read is not None:
        settings = settings.model_copy(update={"anonymous_read": anonymous_read})
    s = store if isinstance(store, Store) else open_store(settings.store_spec(store))
    ctx = Context(s, settings, Layers(s))
    ctx.jobs = jobs.Jobs(s)
    shared = guard.Shared(s) if settings.processes > 1 else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # a few worker threads, not anyio's 40: the handlers hold the GIL between their
        # SQL round trips, and fewer threads switch less under load
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threads
        # each request makes many short-lived objects; collecting the young generation less
        # often keeps the full collections (long pauses over the cached layers) rare
        gc.set_threshold(50_000, 20, 20)
        # the GeoPackage's building tiles at city zoom aggregate from points kept in
        # memory: read them now, not on a supervisor's first map
        threading.Thread(target=_warm, args=(ctx,), name="gridgis-warm", daemon=True).start()
        yield
        if shared is not None:
            shared.close()

    app = FastAPI(
        lifespan=lifespan,
        title="gridgis",
        description="社区网格化服务管理 GIS — OGC API – Features over grids, workers and "
        "facility coverage; dispatch look-up; maps. Send the key as `X-API-Key`.",
        version="0.1",
        responses=errors.responses(),
    )
    app.state.ctx = ctx
    errors.install(app, ctx.outage, settings.retry_after)
    # outermost last: headers on every answer, the rate limit, the body limit, the last line
    app.add_middleware(guard.Errors, outage=ctx.outage, internal=errors.internal)
    app.add_middleware(guard.BodyLimit, limit=settings.max_body)
    # N server processes share a key's rate through the store: each bucket is the whole
    # rate, and drains by what the other processes let through (guard.RateLimit)
    app.add_middleware(guard.RateLimit, rate=settings.rate_limit, burst=settings.rate_burst,
                       exempt_loopback=settings.rate_limit_loopback_exempt, shared=shared,
                       processes=settings.processes)  # fmt: skip
    app.add_middleware(cache.Compression)
    app.add_middleware(guard.SecurityHeaders)
    # the dispatch look-up first: it is the hottest route, and a request is matched against
    # the routes in order (behind the features and tiles routes a look-up took 3 % longer)
    for r in (locate, features, tiles, analysis, scenarios, jobs, edits, orders, maps):
        app.include_router(r.router)
    return app


def _warm(ctx: Context) -> None:
    """Read what the first requests would otherwise wait for: the GeoPackage's building
    points; with ``settings.warm``, the locator and the grids' properties (on a province
    9 and 18 s). Then move everything read so far out of the collector's reach
    (``gc.freeze``): full collections no longer walk the cached layers, the long pauses
    behind a look-up's p99. ``GET /ready`` answers 200 once this is over (also when it
    failed: the first requests then build what they need).
    """
    try:
        ctx.store.warm()
        if not ctx.settings.warm:
            return
        from api.http import features, locate

        try:
            locate.locator(ctx)
            features.grid_extra(features.ogc.COLLECTIONS["grids"], ctx)
        except Exception:  # noqa: BLE001 - a store without these layers: the first request builds them
            return
        gc.freeze()
    finally:
        ctx.ready.set()  # GET /ready: 200 from now on


def from_environment() -> FastAPI:
    """The app of ``$GRIDGIS_STORE`` and the settings in the environment: the factory each
    worker process of ``gridgis serve --workers N`` calls.
    """
    return create_app()
