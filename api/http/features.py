"""OGC API – Features routes: landing page, conformance, collections, items, one item."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

import shapely

from api.http import cache, ogc
from api.http.deps import Caller, Ctx, Fmt, base, reply, wants_html
from api.http.errors import Problem
from gis import crs as gcrs
from gis.access import Principal
from gis.crs import metric_crs
from gis.edits import EDITABLE
from gis.store.base import Page
from gis.workflows import features as wfeatures

router = APIRouter(tags=["OGC API – Features"])
GEOJSON = "application/geo+json"
HTML_TOO: dict[int | str, dict[str, Any]] = {200: {"content": {"text/html": {}}}}
GEOJSON_OR_HTML: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {
            GEOJSON: {"schema": {"type": "object", "required": ["type"]}},
            "text/html": {"schema": {"type": "string"}},
        }
    }
}


class GeoJSONResponse(Response):
    """A GeoJSON document."""

    media_type = GEOJSON


def extent(ctx: Ctx) -> tuple[float, ...] | None:
    """The city's extent (every layer lies in it; a layer's own bounds would mean a scan)."""

    def make() -> tuple[float, ...] | None:
        if not ctx.layers.has("districts"):
            return None
        return tuple(
            round(float(v), 6) for v in ctx.layers.get(("districts",))["districts"].total_bounds
        )

    return ctx.layers.memo(("extent",), ("districts",), make)


def metric_epsg(ctx: Ctx) -> int:
    """The city's Gauss–Krüger zone (by the centre of the districts), once per version."""

    def make() -> int:
        b = extent(ctx)
        return int(metric_crs((b[0] + b[2]) / 2).to_epsg() or 4548) if b else 4548

    return ctx.layers.memo(("metric",), ("districts",), make)


def collection(cid: str, who: Principal, ctx: Ctx) -> ogc.Collection:
    """The collection ``cid`` as ``who`` may read it (404 unknown, 403 above its role)."""
    c = ogc.COLLECTIONS.get(cid)
    if c is None or not ctx.layers.has(c.layer):
        raise Problem(404, f"no collection {cid!r}")
    if not who.at_least(c.role):
        raise Problem(403, f"collection {cid!r} needs the {c.role} role")
    return c


@router.get("/", responses=HTML_TOO)
def landing(request: Request, who: Caller, ctx: Ctx, f: Fmt = None) -> Response:
    """Landing page."""
    h = cache.conditional(request, ctx.layers, who, (), "static")
    if isinstance(h, Response):
        return h
    return reply(request, f, "gridgis", ogc.landing(base(request)), h)


@router.get("/conformance", responses=HTML_TOO)
def conformance(request: Request, who: Caller, ctx: Ctx, f: Fmt = None) -> Response:
    """Conformance classes."""
    h = cache.conditional(request, ctx.layers, who, (), "static")
    if isinstance(h, Response):
        return h
    return reply(request, f, "Conformance", {"conformsTo": ogc.CONFORMANCE}, h)


@router.get("/ready", responses={503: {"description": "Still warming up; try after Retry-After"}})
async def ready(who: Caller, ctx: Ctx) -> JSONResponse:
    """Whether the service is ready: 200 once it has read what its first requests need
    (``gridgis serve`` builds the look-up structures at start: seconds on a province), 503
    with ``Retry-After`` until then — for a load balancer's readiness probe or a script.
    """
    if not ctx.ready.is_set():
        raise Problem(503, "warming up: reading the store's layers", {"Retry-After": "1"})
    return JSONResponse({"ready": True}, headers={"Cache-Control": "no-store"})


@router.get("/collections", responses=HTML_TOO)
def collections(request: Request, who: Caller, ctx: Ctx, f: Fmt = None) -> Response:
    """The collections the caller may read."""
    h = cache.conditional(
        request, ctx.layers, who, ("districts", *(c.layer for c in ogc.visible(who))), "reference"
    )
    if isinstance(h, Response):
        return h
    b, crs = base(request), gcrs.offered(metric_epsg(ctx))
    docs = [
        ogc.collection_doc(c, b, extent(ctx), crs)
        for c in ogc.visible(who)
        if ctx.layers.has(c.layer)
    ]
    links = [ogc.link(f"{b}/collections", "self", "application/json"),
             ogc.link(f"{b}/collections?f=html", "alternate", "text/html")]  # fmt: skip
    return reply(request, f, "Collections", {"links": links, "collections": docs}, h)


@router.get("/collections/{cid}", responses=HTML_TOO)
def one_collection(request: Request, cid: str, who: Caller, ctx: Ctx, f: Fmt = None) -> Response:
    """One collection's metadata."""
    c = collection(cid, who, ctx)
    h = cache.conditional(request, ctx.layers, who, (c.layer, "districts"), "reference")
    if isinstance(h, Response):
        return h
    doc = ogc.collection_doc(c, base(request), extent(ctx), gcrs.offered(metric_epsg(ctx)))
    return reply(request, f, c.title, doc, h)


@router.get("/collections/{cid}/queryables", responses=HTML_TOO)
def queryables(request: Request, cid: str, who: Caller, ctx: Ctx, f: Fmt = None) -> Response:
    """The properties a filter may use (JSON Schema)."""
    c = collection(cid, who, ctx)
    props = {
        name: {"format": "geometry-any", "x-ogc-role": "primary-geometry"}
        if kind == "geometry"
        else {"type": kind}
        for name, kind in ogc.filterable(c, who).items()
    }
    doc = {"$schema": "https://json-schema.org/draft/2020-12/schema",
           "$id": f"{base(request)}/collections/{cid}/queryables", "type": "object",
           "title": c.title, "properties": props}  # fmt: skip
    return reply(request, f, f"{c.title} — queryables", doc)


class ItemsParams(BaseModel):
    """The query parameters of an items request (OGC API – Features Parts 1–3)."""

    model_config = ConfigDict(populate_by_name=True, extra="allow")

    bbox: str | None = Field(default=None, description="minx,miny,maxx,maxy (see bbox-crs)")
    limit: int = Field(default=10, ge=1, le=ogc.MAX_LIMIT)
    offset: int = Field(default=0, ge=0, le=10_000_000)
    crs: str | None = Field(default=None, description="Output CRS (URI or name); default CRS84.")
    bbox_crs: str | None = Field(
        default=None, alias="bbox-crs", description="CRS of bbox; default CRS84."
    )
    filter: str | None = Field(
        default=None,
        description="CQL2 text, e.g. households > 300 AND S_INTERSECTS(geometry, …)",
        examples=[
            "households > 350",
            "1=1",
            "NOT (1=1)",
            "community_code LIKE '370405%' OR 2>1",
            "S_INTERSECTS(geometry, POINT(117.6 34.6))",
        ],
    )
    filter_lang: Literal["cql2-text"] | None = Field(default=None, alias="filter-lang")
    datetime: str | None = Field(
        default=None, max_length=100,
        description="Workers hired on a day or in an interval: 2020-05-01, 2019-01-01/.., ../2020-12-31",
    )  # fmt: skip
    filter_crs: str | None = Field(default=None, alias="filter-crs", description="Only CRS84.")
    sortby: str | None = Field(
        default=None, max_length=500, description="Order: properties, '-' first for descending.",
        examples=["-households,code"],
    )  # fmt: skip
    properties: str | None = Field(
        default=None, max_length=2000, description="Only these properties (a comma list)."
    )
    skipGeometry: bool = Field(default=False, description="Features without their geometry.")  # noqa: N815
    f: Literal["json", "html"] | None = Field(default=None, description="Overrides Accept.")


@dataclass
class ItemsQuery:
    """The parsed parameters of an items request."""

    bbox: tuple[float, float, float, float] | None
    limit: int
    offset: int
    crs: str
    cql: Any
    where: dict[str, Any]
    sortby: list[tuple[str, bool]]
    keep: set[str] | None


def items_query(
    request: Request, c: ogc.Collection, who: Principal, ctx: Ctx, p: ItemsParams
) -> ItemsQuery:
    """Check an items request: bbox (in its CRS), output CRS, CQL2, queryables, scope.

    Called by the handler (not a dependency: a dependency would cost a thread hop).
    """
    epsg = metric_epsg(ctx)
    out_crs, in_crs = gcrs.resolve(p.crs, epsg), gcrs.resolve(p.bbox_crs, epsg)
    try:
        box = ogc.parse_bbox(p.bbox, geographic=gcrs.geographic(in_crs))
        if box is not None and in_crs != gcrs.CRS84:
            box = ogc.bbox_to_crs84(box, in_crs)
        if p.filter_crs is not None and gcrs.resolve(p.filter_crs, epsg) != gcrs.CRS84:
            raise ValueError("filter-crs: only CRS84 is supported")
        cql = (
            ogc.parse_filter(p.filter, p.filter_lang, ogc.filterable(c, who))
            if p.filter is not None
            else None
        )
        if p.datetime is not None:
            from pygeofilter import ast as A

            when = ogc.datetime_filter(p.datetime, c, ogc.filterable(c, who))
            cql = when if cql is None else ogc.fold(A.And(cql, when))  # constants folded
        columns = [k for k in ogc.filterable(c, who) if k != "geometry"]
        sortby = ogc.parse_sortby(p.sortby, columns)
        keep = (
            ogc.parse_properties(p.properties, [*columns, *_extra_names(c, ctx)])
            if p.properties is not None
            else None
        )
    except ValueError as exc:
        raise Problem(400, str(exc)) from None
    where: dict[str, Any] = {}
    for k, v in request.query_params.items():
        if k in ogc.RESERVED:
            continue
        if k not in c.queryables:
            raise Problem(
                400, f"unknown parameter {k!r}; queryables of {c.id}: {', '.join(c.queryables)}"
            )
        where[k] = v
    for k, codes in scope_where(c, who, ctx).items():
        where[k] = ([where[k]] if where[k] in codes else ["-"]) if k in where else codes
    return ItemsQuery(box, p.limit, p.offset, out_crs, cql, where, sortby, keep)


def scope_where(c: ogc.Collection, who: Principal, ctx: Ctx) -> dict[str, list[str]]:
    """The filter that keeps a scoped key inside its jurisdiction."""
    if c.jurisdiction is None or who.scope is None:
        return {}
    comms = ctx.layers.get(("communities",)).get("communities")
    codes = [x for x in comms["code"] if who.covers(x)] if comms is not None else []
    return {c.jurisdiction: codes or ["-"]}


def grid_extra(c: ogc.Collection, ctx: Ctx) -> dict[str, dict[str, Any]] | None:
    """More properties of a grid: the responsible worker's id, covered shares."""
    if c.id != "grids":
        return None

    def make() -> dict[str, dict[str, Any]]:
        f = ctx.layers.get(("assignments", "coverage"))
        out: dict[str, dict[str, Any]] = {}
        if "assignments" in f:
            for g, w in zip(
                f["assignments"]["grid_code"], f["assignments"]["worker_id"], strict=True
            ):
                out.setdefault(g, {})["worker_id"] = w
        if "coverage" in f:
            t = f["coverage"][f["coverage"]["level"] == "grid"]
            for g, typ, share in zip(t["code"], t["type"], t["share"], strict=True):
                out.setdefault(g, {})[f"share_{typ}"] = (
                    None if share != share else round(float(share), 4)
                )
        return out

    return ctx.layers.memo(("grid_extra",), ("assignments", "coverage"), make)


def _extra_names(c: ogc.Collection, ctx: Ctx) -> set[str]:
    """The names of the extra properties of a collection (grids: worker, covered shares)."""
    if c.id != "grids":
        return set()

    def make() -> set[str]:
        return {k for v in (grid_extra(c, ctx) or {}).values() for k in v}

    return ctx.layers.memo(("extra_names",), ("assignments", "coverage"), make)


def depends_on(c: ogc.Collection) -> tuple[str, ...]:
    """The layers a collection's features are built from (their versions make the ETag)."""
    extra = ("assignments", "coverage") if c.id == "grids" else ()
    return (c.layer, "communities", *extra)


def hidden(c: ogc.Collection, who: Principal) -> set[str]:
    """The properties ``who`` does not see in ``c``."""
    return set(c.hidden) | (set() if who.at_least("supervisor") else set(c.viewer_hidden))


@router.get("/collections/{cid}/items", response_class=GeoJSONResponse, responses=GEOJSON_OR_HTML)
def items(
    request: Request, cid: str, who: Caller, ctx: Ctx, p: Annotated[ItemsParams, Query()]
) -> Response:
    """Features of a collection: bbox, attribute filters (queryables), CQL2, paging, CRS."""
    c = collection(cid, who, ctx)
    h = cache.conditional(request, ctx.layers, who, depends_on(c))
    if isinstance(h, Response):
        return h
    q, f = items_query(request, c, who, ctx, p), p.f
    page = ctx.store.page(c.layer, bbox=q.bbox, where=q.where, limit=q.limit, offset=q.offset,
                          cql=q.cql, sortby=q.sortby)  # fmt: skip
    page.geometry = (
        [None] * len(page.rows) if p.skipGeometry else ogc.reproject_geojson(page.geometry, q.crs)
    )
    key = ctx.store._spec(c.layer).key[0]
    params = {k: v for k, v in request.query_params.items() if k not in ("limit", "offset", "f")}
    feats = ogc.features_json(page.rows, page.geometry, key, hidden(c, who), grid_extra(c, ctx),
                              keep=q.keep)  # fmt: skip
    text = ogc.collection_page(feats, page.matched, base(request), cid, params, q.limit, q.offset)
    if wants_html(request, f):
        return HTMLResponse(ogc.as_html(f"{c.title} — items", json.loads(text)), headers=h)
    return Response(text, media_type=GEOJSON, headers={"Content-Crs": f"<{q.crs}>", **h})


@router.get(
    "/collections/{cid}/items/{fid}", response_class=GeoJSONResponse, responses=GEOJSON_OR_HTML
)
def item(
    request: Request,
    cid: str,
    fid: str,
    who: Caller,
    ctx: Ctx,
    crs: Annotated[
        str | None, Query(description="Output CRS (URI or name); default CRS84.")
    ] = None,
    f: Fmt = None,
) -> Response:
    """One feature by id (404 outside the caller's jurisdiction, as if absent).

    A feature of an editable collection (facilities, buildings, workers) carries the
    ``ETag`` an edit's ``If-Match`` names: made from the stored feature, so it changes
    when that feature does, not when another one of its layer does.
    """
    c = collection(cid, who, ctx)
    out_crs = gcrs.resolve(crs, metric_epsg(ctx))
    key = ctx.store._spec(c.layer).key[0]
    if c.layer in EDITABLE:
        row, content = wfeatures.get(ctx.store, who, c.layer, fid)
        tag = cache.feature_tag(content, request, who)
        h = {"ETag": tag, "Cache-Control": "private, no-cache",
             "Vary": "Accept, Accept-Encoding, X-API-Key"}  # fmt: skip
        if cache.matched(request.headers.get("if-none-match"), tag):
            return Response(status_code=304, headers=h)
        g = row.pop("geometry", None)
        page = Page(c.layer, [row], [None if g is None else shapely.to_geojson(g)], 1)
    else:
        checked = cache.conditional(request, ctx.layers, who, depends_on(c))
        if isinstance(checked, Response):
            return checked
        h = checked
        page = ctx.store.page(c.layer, where={key: fid}, limit=1)
        if not page.rows or (
            c.jurisdiction is not None and not who.covers(page.rows[0][c.jurisdiction])
        ):
            raise Problem(404, f"no feature {fid!r} in {cid}")
    page.geometry = ogc.reproject_geojson(page.geometry, out_crs)
    b = base(request)
    feat = ogc.features_json(page.rows, page.geometry, key, hidden(c, who), grid_extra(c, ctx))[0]
    links = [ogc.link(f"{b}/collections/{cid}/items/{fid}", "self", GEOJSON),
             ogc.link(f"{b}/collections/{cid}", "collection", "application/json")]  # fmt: skip
    text = feat[:-1] + ',"links":' + json.dumps(links) + "}"
    if wants_html(request, f):
        return HTMLResponse(ogc.as_html(fid, json.loads(text)), headers=h)
    return Response(text, media_type=GEOJSON, headers={"Content-Crs": f"<{out_crs}>", **h})
