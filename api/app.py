"""The HTTP service (FastAPI): OGC API – Features, dispatch look-up, assignments, maps.

``create_app(store)`` builds the app for one store. Every route resolves the caller from the
``X-API-Key`` header (:mod:`gis.access`); anonymous clients read what a viewer may only when
``GRIDGIS_ANONYMOUS_READ`` is on. Layers the routes need often (communities, grids, keys…)
are read once and kept while the store is unchanged; feature pages come from the store's SQL.
Every error is an ``application/problem+json`` document with a 4xx status and a message —
no stack trace, no SQL.
"""

import gc
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

import anyio
import numpy as np
from fastapi import Body, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from api import analysis
from api import features as ogc
from api.locate import Locator, system_of
from gis import access
from gis.access import ANONYMOUS, Principal
from gis.crs import metric_crs
from gis.errors import GridError, LayerNotFoundError, NotFoundError
from gis.store import Store, open_store
from maps import views

log = logging.getLogger("gridgis.api")
PROBLEM = "application/problem+json"
GEOJSON = "application/geo+json"
MAX_BODY = 2_000_000  # bytes
MAX_POINTS = 10_000
Tiles = Annotated[Literal["none", "osm", "tianditu", "amap"], Query(description="Base map.")]
Lang = Annotated[Literal["zh", "en"], Query(description="Labels: Chinese or English.")]
Fmt = Annotated[Literal["json", "html"] | None, Query(description="Overrides Accept.")]


class GeoJSONResponse(Response):
    """A GeoJSON document."""

    media_type = GEOJSON


class ProblemDoc(BaseModel):
    """An RFC 9457 problem document."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str


PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {
        "description": text,
        "content": {PROBLEM: {"schema": ProblemDoc.model_json_schema()}},
    }
    for status, text in (
        (400, "Bad request: a parameter, body, CRS or filter is malformed"),
        (401, "No API key, or an unknown or revoked one"),
        (403, "The key's role or jurisdiction does not allow it"),
        (404, "No such resource (or outside the jurisdiction, where existence must not leak)"),
        (409, "A resource of that name exists"),
        (413, "Request body too large"),
    )
}
HTML_TOO: dict[int | str, dict[str, Any]] = {200: {"content": {"text/html": {}}}}
# a GeoJSON object (FeatureCollection or Feature), or its HTML view
GEOJSON_OR_HTML: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            GEOJSON: {"schema": {"type": "object", "required": ["type"]}},
            "text/html": {"schema": {"type": "string"}},
        }
    }
}


class Problem(Exception):
    """An HTTP problem with a status and a message for the client."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status, self.detail = status, detail


def _truthy(v: str | None) -> bool:
    return (v or "").strip().lower() in ("1", "true", "yes", "on")


class _Layers:
    """The store's layers, read on first use and again only when the store changes."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.lock = threading.Lock()
        self.version: Any = None
        self.checked = 0.0
        self.names: set[str] = set()
        self.frames: dict[str, Any] = {}
        self.cache: OrderedDict[tuple, Any] = OrderedDict()

    def refresh(self, force: bool = False) -> None:
        """Drop what was read if the store changed (asked at most every half second)."""
        now = time.monotonic()
        with self.lock:
            if not force and now - self.checked < 0.5:
                return
            self.checked = now
            v = self.store.version()
            if force or v != self.version:
                self.frames, self.cache, self.version = {}, OrderedDict(), v
                self.names = self.store.names()

    def has(self, name: str) -> bool:
        self.refresh()
        return name in self.names

    def get(self, names: tuple[str, ...]) -> dict[str, Any]:
        self.refresh()
        with self.lock:
            for name in names:
                if name not in self.frames and name in self.names:
                    self.frames[name] = self.store.read(name)
            out = {n: self.frames[n] for n in names if n in self.frames}
        if "facility_types" in names and "facility_types" not in out:
            from gis.reference import facility_types

            out["facility_types"] = facility_types()
        return out

    def memo(self, key: tuple, make: Any, size: int = 32) -> Any:
        self.refresh()
        with self.lock:
            if key in self.cache:
                self.cache.move_to_end(key)
                return self.cache[key]
        value = make()
        with self.lock:
            self.cache[key] = value
            while len(self.cache) > size:
                self.cache.popitem(last=False)
        return value


def _problem(status: int, detail: str) -> JSONResponse:
    """An RFC 9457 problem response (401 also names the header the key goes in)."""
    titles = {400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found",
              409: "Conflict",
              405: "Method not allowed", 406: "Not acceptable", 413: "Too large"}  # fmt: skip
    return JSONResponse(
        {"type": "about:blank", "title": titles.get(status, "Error"), "status": status,
         "detail": detail},
        status_code=status,
        media_type=PROBLEM,
        headers={"WWW-Authenticate": 'ApiKey header="X-API-Key"'} if status == 401 else None,
    )  # fmt: skip


class Assignment(BaseModel):
    """The worker made responsible for a grid."""

    worker_id: str = Field(min_length=1, max_length=64)


class Points(BaseModel):
    """A batch of points to look up."""

    points: list[tuple[float, float]] = Field(max_length=MAX_POINTS)
    crs: str | None = None


def create_app(store: str | Store | None = None, *, anonymous_read: bool | None = None) -> FastAPI:
    """The app serving ``store`` (default: ``$GRIDGIS_STORE`` or the demo file)."""
    from api.cli import store_spec
    from api.map_cli import LAYERS

    s = store if isinstance(store, Store) else open_store(store_spec(store))
    if anonymous_read is None:
        anonymous_read = _truthy(os.environ.get("GRIDGIS_ANONYMOUS_READ"))
    layers = _Layers(s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # a few worker threads, not anyio's 40: the handlers hold the GIL between their
        # SQL round trips, and fewer threads switch less under load
        limiter = anyio.to_thread.current_default_thread_limiter()
        limiter.total_tokens = int(os.environ.get("GRIDGIS_THREADS", "8"))
        # each request makes many short-lived objects; collecting the young generation less
        # often keeps the full collections (long pauses over the cached layers) rare
        gc.set_threshold(50_000, 20, 20)
        yield

    app = FastAPI(
        lifespan=lifespan,
        title="gridgis",
        description="社区网格化服务管理 GIS — OGC API – Features over grids, workers and "
        "facility coverage; dispatch look-up; maps. Send the key as `X-API-Key`.",
        version="0.1",
        responses=PROBLEMS,
    )

    # -- errors: problem+json, never a trace ---------------------------------------------
    @app.exception_handler(Problem)
    async def _p(request: Request, exc: Problem) -> JSONResponse:
        return _problem(exc.status, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def _v(request: Request, exc: RequestValidationError) -> JSONResponse:
        msgs = [
            f"{'.'.join(str(x) for x in e.get('loc', ()) if x not in ('query', 'body', 'path'))}: {e.get('msg')}"
            for e in exc.errors()
        ]
        return _problem(400, "; ".join(msgs) or "invalid request")

    @app.exception_handler(HTTPException)
    async def _h(request: Request, exc: HTTPException) -> JSONResponse:
        return _problem(exc.status_code, str(exc.detail))

    @app.exception_handler(LayerNotFoundError)
    async def _missing(request: Request, exc: LayerNotFoundError) -> JSONResponse:
        return _problem(404, str(exc))

    @app.exception_handler(GridError)
    async def _bad(request: Request, exc: GridError) -> JSONResponse:
        return _problem(404 if isinstance(exc, NotFoundError) else 400, str(exc))

    @app.middleware("http")
    async def _limit(request: Request, call_next: Any) -> Response:
        size = request.headers.get("content-length")
        if size is not None and (not size.isdigit() or int(size) > MAX_BODY):
            return _problem(413, f"request body over {MAX_BODY:,} bytes")
        try:
            return await call_next(request)
        except Exception:  # a bug must not show its trace or SQL to the client
            log.exception("%s %s failed", request.method, request.url.path)
            return _problem(500, "internal error; it has been logged")

    # -- who is calling --------------------------------------------------------------------
    def who(request: Request) -> Principal:
        key = request.headers.get("x-api-key")
        if key is None:
            if anonymous_read:
                return ANONYMOUS
            raise Problem(401, "send an API key in the X-API-Key header")
        keys = layers.memo(("keys",), lambda: access.principals(s))
        p = keys.get(access.digest(key))
        if p is None:
            raise Problem(401, "unknown or revoked API key")
        return p

    Who = Annotated[Principal, Depends(who)]

    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    def wants_html(request: Request, f: str | None) -> bool:
        if f is not None:
            if f not in ("json", "html"):
                raise Problem(400, f"f={f!r}: use json or html")
            return f == "html"
        return "text/html" in request.headers.get("accept", "")

    def reply(request: Request, f: str | None, title: str, doc: Any) -> Response:
        if wants_html(request, f):
            return HTMLResponse(ogc.as_html(title, doc))
        return JSONResponse(doc)

    # -- OGC API – Features ------------------------------------------------------------------
    @app.get("/", tags=["OGC API – Features"], responses=HTML_TOO)
    def landing(request: Request, caller: Who, f: Fmt = None) -> Response:
        """Landing page."""
        return reply(request, f, "gridgis", ogc.landing(base(request)))

    @app.get("/conformance", tags=["OGC API – Features"], responses=HTML_TOO)
    def conformance(request: Request, caller: Who, f: Fmt = None) -> Response:
        """Conformance classes."""
        return reply(request, f, "Conformance", {"conformsTo": ogc.CONFORMANCE})

    def extent(c: ogc.Collection) -> tuple[float, ...] | None:
        """The spatial extent given for a collection: the city's (every layer lies in it;
        reading a layer's own bounds would mean a scan of buildings).
        """

        def make() -> tuple[float, ...] | None:
            if not layers.has(c.layer) or not layers.has("districts"):
                return None
            return tuple(round(float(v), 6) for v in s.read("districts").total_bounds)

        return layers.memo(("extent", c.id), make)  # type: ignore[no-any-return]

    def metric_epsg() -> int:
        """The city's Gauss–Krüger zone (by the centre of the districts)."""

        def make() -> int:
            b = extent(ogc.COLLECTIONS["districts"])
            return int(metric_crs((b[0] + b[2]) / 2).to_epsg() or 4548) if b else 4548

        return layers.memo(("metric",), make)  # type: ignore[no-any-return]

    def collection(cid: str, caller: Principal) -> ogc.Collection:
        c = ogc.COLLECTIONS.get(cid)
        if c is None or not layers.has(c.layer):
            raise Problem(404, f"no collection {cid!r}")
        if not caller.at_least(c.role):
            raise Problem(403, f"collection {cid!r} needs the {c.role} role")
        return c

    @app.get("/collections", tags=["OGC API – Features"], responses=HTML_TOO)
    def collections(request: Request, caller: Who, f: Fmt = None) -> Response:
        """The collections the caller may read."""
        b = base(request)
        docs = [
            ogc.collection_doc(c, b, extent(c), ogc.crs_list(metric_epsg()))
            for c in ogc.visible(caller)
            if layers.has(c.layer)
        ]
        doc = {
            "links": [
                ogc.link(f"{b}/collections", "self", "application/json"),
                ogc.link(f"{b}/collections?f=html", "alternate", "text/html"),
            ],
            "collections": docs,
        }
        return reply(request, f, "Collections", doc)

    @app.get("/collections/{cid}", tags=["OGC API – Features"], responses=HTML_TOO)
    def one_collection(request: Request, cid: str, caller: Who, f: Fmt = None) -> Response:
        """One collection's metadata."""
        c = collection(cid, caller)
        doc = ogc.collection_doc(c, base(request), extent(c), ogc.crs_list(metric_epsg()))
        return reply(request, f, c.title, doc)

    def scope_where(c: ogc.Collection, caller: Principal) -> dict[str, list[str]]:
        if c.jurisdiction is None or caller.scope is None:
            return {}
        comms = layers.get(("communities",)).get("communities")
        codes = [x for x in comms["code"] if caller.covers(x)] if comms is not None else []
        return {c.jurisdiction: codes or ["-"]}

    def grid_extra(c: ogc.Collection) -> dict[str, dict[str, Any]] | None:
        """More properties of a grid: the responsible worker's id, covered shares."""
        if c.id != "grids":
            return None

        def make() -> dict[str, dict[str, Any]]:
            f = layers.get(("assignments", "coverage"))
            out: dict[str, dict[str, Any]] = {}
            if "assignments" in f:
                for g, w in zip(
                    f["assignments"]["grid_code"], f["assignments"]["worker_id"], strict=True
                ):
                    out.setdefault(g, {})["worker_id"] = w
            if "coverage" in f:
                t = f["coverage"]
                t = t[t["level"] == "grid"]
                for g, typ, share in zip(t["code"], t["type"], t["share"], strict=True):
                    out.setdefault(g, {})[f"share_{typ}"] = (
                        None if share != share else round(float(share), 4)
                    )
            return out

        return layers.memo(("grid_extra",), make)  # type: ignore[no-any-return]

    def drop_for(c: ogc.Collection, caller: Principal) -> set[str]:
        out = set(c.hidden)
        if not caller.at_least("supervisor"):
            out |= set(c.viewer_hidden)
        return out

    @app.get("/collections/{cid}/queryables", tags=["OGC API – Features"], responses=HTML_TOO)
    def queryables(request: Request, cid: str, caller: Who, f: Fmt = None) -> Response:
        """The properties a filter may use (JSON Schema)."""
        c = collection(cid, caller)
        props: dict[str, Any] = {}
        for name, kind in ogc.filterable(c, caller).items():
            props[name] = (
                {"format": "geometry-any", "x-ogc-role": "primary-geometry"}
                if kind == "geometry"
                else {"type": kind}
            )
        doc = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"{base(request)}/collections/{cid}/queryables",
            "type": "object",
            "title": c.title,
            "properties": props,
        }
        return reply(request, f, f"{c.title} — queryables", doc)

    @app.get(
        "/collections/{cid}/items",
        tags=["OGC API – Features"],
        response_class=GeoJSONResponse,
        responses=GEOJSON_OR_HTML,
    )
    def items(
        request: Request,
        cid: str,
        caller: Who,
        bbox: Annotated[str | None, Query(description="minx,miny,maxx,maxy (see bbox-crs)")] = None,
        limit: Annotated[int, Query(ge=1, le=ogc.MAX_LIMIT)] = 10,
        offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
        crs: Annotated[str | None, Query(description="Output CRS (URI); default CRS84.")] = None,
        bbox_crs: Annotated[
            str | None, Query(alias="bbox-crs", description="CRS of bbox (URI); default CRS84.")
        ] = None,
        filter: Annotated[
            str | None,
            Query(description="CQL2 text, e.g. households > 300 AND S_INTERSECTS(geometry, …)"),
        ] = None,
        filter_lang: Annotated[Literal["cql2-text"] | None, Query(alias="filter-lang")] = None,
        filter_crs: Annotated[
            str | None, Query(alias="filter-crs", description="Only CRS84.")
        ] = None,
        f: Fmt = None,
    ) -> Response:
        """Features of a collection: bbox, attribute filters (queryables), paging, CRS."""
        c = collection(cid, caller)
        try:
            out_crs = ogc.pick_crs(crs, metric_epsg())
            in_crs = ogc.pick_crs(bbox_crs, metric_epsg())
            box = ogc.parse_bbox(bbox, geographic=in_crs in (ogc.CRS84, ogc.GCJ02))
            if box is not None and in_crs != ogc.CRS84:
                box = ogc.bbox_to_crs84(box, in_crs)  # type: ignore[assignment]
            if filter_crs is not None and ogc.pick_crs(filter_crs, metric_epsg()) != ogc.CRS84:
                raise ValueError("filter-crs: only CRS84 is supported")
            cql = (
                ogc.parse_filter(filter, filter_lang, ogc.filterable(c, caller))
                if filter is not None
                else None
            )
        except ValueError as exc:
            raise Problem(400, str(exc)) from None
        where: dict[str, Any] = {}
        extra = {k: v for k, v in request.query_params.items() if k not in ogc.RESERVED}
        for k, v in extra.items():
            if k not in c.queryables:
                raise Problem(
                    400, f"unknown parameter {k!r}; queryables of {cid}: {', '.join(c.queryables)}"
                )
            where[k] = v
        for k, codes in scope_where(c, caller).items():
            if k in where:
                where[k] = [where[k]] if where[k] in codes else ["-"]
            else:
                where[k] = codes
        page = s.page(c.layer, bbox=box, where=where, limit=limit, offset=offset, cql=cql)
        page.geometry = ogc.reproject_geojson(page.geometry, out_crs)
        key = s._spec(c.layer).key[0]
        params = {
            k: v for k, v in request.query_params.items() if k not in ("limit", "offset", "f")
        }
        feats = ogc.features_json(page.rows, page.geometry, key, drop_for(c, caller), grid_extra(c))
        text = ogc.collection_page(feats, page.matched, base(request), cid, params, limit, offset)
        if wants_html(request, f):
            return HTMLResponse(ogc.as_html(f"{c.title} — items", json.loads(text)))
        return Response(text, media_type=GEOJSON, headers={"Content-Crs": f"<{out_crs}>"})

    @app.get(
        "/collections/{cid}/items/{fid}",
        tags=["OGC API – Features"],
        response_class=GeoJSONResponse,
        responses=GEOJSON_OR_HTML,
    )
    def item(
        request: Request,
        cid: str,
        fid: str,
        caller: Who,
        crs: Annotated[str | None, Query(description="Output CRS (URI); default CRS84.")] = None,
        f: Fmt = None,
    ) -> Response:
        """One feature by id (404 outside the caller's jurisdiction, as if absent)."""
        c = collection(cid, caller)
        try:
            out_crs = ogc.pick_crs(crs, metric_epsg())
        except ValueError as exc:
            raise Problem(400, str(exc)) from None
        key = s._spec(c.layer).key[0]
        page = s.page(c.layer, where={key: fid}, limit=1)
        page.geometry = ogc.reproject_geojson(page.geometry, out_crs)
        if not page.rows or (
            c.jurisdiction is not None and not caller.covers(page.rows[0][c.jurisdiction])
        ):
            raise Problem(404, f"no feature {fid!r} in {cid}")
        b = base(request)
        feat = ogc.features_json(page.rows, page.geometry, key, drop_for(c, caller), grid_extra(c))[
            0
        ]
        links = [
            ogc.link(f"{b}/collections/{cid}/items/{fid}", "self", GEOJSON),
            ogc.link(f"{b}/collections/{cid}", "collection", "application/json"),
        ]
        text = feat[:-1] + ',"links":' + json.dumps(links) + "}"
        if wants_html(request, f):
            return HTMLResponse(ogc.as_html(fid, json.loads(text)))
        return Response(text, media_type=GEOJSON, headers={"Content-Crs": f"<{out_crs}>"})

    # -- dispatch look-up ----------------------------------------------------------------
    def locator() -> Locator:
        need = ("districts", "streets", "communities", "grids", "assignments", "workers",
                "facilities")  # fmt: skip
        return layers.memo(("locator",), lambda: Locator(layers.get(need)))  # type: ignore[no-any-return]

    def shape(answer: dict[str, Any] | None, caller: Principal) -> dict[str, Any] | None:
        if answer is None:
            return None
        if not caller.covers(answer["community"]["code"]):
            raise Problem(403, "the point lies outside your jurisdiction")
        w = answer.get("worker")
        if w is not None and not caller.at_least("supervisor"):
            answer["worker"] = {k: v for k, v in w.items() if k != "phone"}
        return answer

    @app.get("/locate", tags=["dispatch"])
    def locate(
        caller: Who,
        lon: Annotated[float, Query(ge=-180, le=180)],
        lat: Annotated[float, Query(ge=-90, le=90)],
        crs: str | None = None,
    ) -> JSONResponse:
        """District, street, community, grid and responsible worker of a point, and the
        nearest facility of each type (distance in metres).
        """
        try:
            system = system_of(crs)
        except ValueError as exc:
            raise Problem(400, str(exc)) from None
        answer = shape(locator().locate(np.array([lon]), np.array([lat]), system)[0], caller)
        if answer is None:
            raise Problem(404, f"({lon}, {lat}) lies outside the city")
        return JSONResponse(answer)

    @app.post("/locate", tags=["dispatch"])
    def locate_many(caller: Who, body: Annotated[Points, Body()]) -> JSONResponse:
        """The same for up to 10,000 points (``null`` for a point outside the city)."""
        try:
            system = system_of(body.crs)
        except ValueError as exc:
            raise Problem(400, str(exc)) from None
        xy = np.asarray(body.points, dtype=float).reshape(-1, 2)
        if len(xy) and (
            not np.isfinite(xy).all()
            or (np.abs(xy[:, 0]) > 180).any()
            or (np.abs(xy[:, 1]) > 90).any()
        ):
            raise Problem(400, "points must be [lon, lat] within -180..180, -90..90")
        answers = locator().locate(xy[:, 0], xy[:, 1], system) if len(xy) else []
        return JSONResponse({"results": [shape(a, caller) for a in answers]})

    # -- edits -------------------------------------------------------------------------------
    @app.put("/assignments/{grid_code}", tags=["staffing"])
    def put_assignment(
        grid_code: str, caller: Who, body: Annotated[Assignment, Body()]
    ) -> JSONResponse:
        """Make a worker responsible for a grid (supervisors, inside their jurisdiction)."""
        if not caller.at_least("supervisor"):
            raise Problem(403, "changing assignments needs the supervisor role")
        if not layers.has("assignments"):
            raise Problem(404, "the store has no assignments")
        if not grid_code.isdigit() or not caller.covers(grid_code):
            raise Problem(404, f"no grid {grid_code!r}")
        found = s.read("assignments", where={"grid_code": grid_code})
        if not len(found):
            raise Problem(404, f"no grid {grid_code!r}")
        w = s.read("workers", where={"id": body.worker_id}) if layers.has("workers") else None
        if w is None or not len(w):
            raise Problem(400, f"no worker {body.worker_id!r}")
        if not str(grid_code).startswith(str(w["community_code"].iloc[0])):
            raise Problem(400, f"worker {body.worker_id} works in another community")
        before = found["worker_id"].iloc[0]
        s.update("assignments", grid_code, {"worker_id": body.worker_id})
        access.audit(s, caller.name, "assignments.update", grid_code,
                     f"{before} -> {body.worker_id}")  # fmt: skip
        layers.refresh(force=True)  # what this process cached is stale now
        return JSONResponse({"grid_code": grid_code, "worker_id": body.worker_id})

    analysis.add_routes(app, s, layers, Depends(who), Problem)

    # -- maps --------------------------------------------------------------------------------
    def key() -> str | None:
        return os.environ.get("TIANDITU_KEY")

    @app.get("/maps/coverage", response_class=HTMLResponse, tags=["maps"])
    def coverage_map(
        caller: Who,
        type: str | None = None,
        street: str | None = None,
        community: str | None = None,
        tiles: Tiles = "none",
        lang: Lang = "zh",
    ) -> HTMLResponse:
        """Coverage map: the city overview, or one street or community in detail."""
        kind = "detail" if street or community else "coverage_city"

        def make() -> str:
            f = layers.get(LAYERS[kind])
            return views.coverage_map(
                f, type, street=street, community=community, tiles=tiles, lang=lang, key=key()
            ).html()

        return HTMLResponse(layers.memo(("coverage", type, street, community, tiles, lang), make))

    @app.get("/maps/staffing", response_class=HTMLResponse, tags=["maps"])
    def staffing_map(
        caller: Who,
        street: str | None = None,
        community: str | None = None,
        tiles: Tiles = "none",
        lang: Lang = "zh",
    ) -> HTMLResponse:
        """Staffing map: grids by responsible worker, loads, communities flagged."""
        kind = "detail" if street or community else "staffing_city"

        def make() -> str:
            f = layers.get(LAYERS[kind])
            return views.staffing_map(
                f, street=street, community=community, tiles=tiles, lang=lang, key=key()
            ).html()

        return HTMLResponse(layers.memo(("staffing", street, community, tiles, lang), make))

    @app.get("/maps/scenario/{name}", response_class=HTMLResponse, tags=["maps"])
    def scenario_map(
        caller: Who, name: str, street: str | None = None, tiles: Tiles = "none", lang: Lang = "zh"
    ) -> HTMLResponse:
        """A saved siting scenario (planners): sites, coverage before and after, ranking."""
        if not caller.at_least("planner"):
            raise Problem(403, "scenarios need the planner role")

        def make() -> str:
            f = layers.get(LAYERS["scenario"])
            return views.scenario_map(
                f, name, street=street, tiles=tiles, lang=lang, key=key()
            ).html()

        return HTMLResponse(layers.memo(("scenario", name, street, tiles, lang), make))

    return app
