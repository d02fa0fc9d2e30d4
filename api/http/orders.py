"""Work-order routes (工单): create (idempotent), list, read with history, move, the
change feed. Each handler parses, calls one workflow of :mod:`gis.workflows.orders`, renders.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from api.http.deps import Caller, Ctx, base
from api.http.features import GEOJSON, GeoJSONResponse
from api.http.locate import locator
from gis import orders as om
from gis.workflows import orders as wo

router = APIRouter(tags=["work orders"])
_DOC = {"content": {GEOJSON: {"schema": {"type": "object", "required": ["type"]}}}}
FEATURE_DOCS: dict[int | str, dict[str, Any]] = {200: _DOC, 201: _DOC}


class NewOrder(BaseModel):
    """A work order as a calling system sends it: where (a point in ``crs``, or a
    building id, or an address), what, and who reported it.
    """

    source: Literal["hotline", "patrol", "app", "system"]
    external_id: str | None = Field(None, min_length=1, max_length=100)
    type: str = Field(min_length=1, max_length=64)
    description: str = Field(min_length=1, max_length=wo.MAX_TEXT)
    lon: float | None = Field(None, ge=-1e7, le=1e7)
    lat: float | None = Field(None, ge=-1e7, le=1e7)
    crs: str | None = Field(None, max_length=100)
    building_id: str | None = Field(None, max_length=64)
    address: str | None = Field(None, max_length=200)
    reporter: str | None = Field(None, max_length=200)
    attachments: list[str] = Field(default_factory=list, max_length=wo.MAX_ATTACHMENTS)


class Transition(BaseModel):
    """One step of an order: the action, the version it was read at, and what the step needs."""

    action: Literal[tuple(om.MOVES)]  # type: ignore[valid-type]
    version: int = Field(ge=1)
    note: str | None = Field(None, max_length=wo.MAX_TEXT)
    worker_id: str | None = Field(None, max_length=64)
    hours: float | None = Field(None, gt=0, le=720)
    satisfaction: int | None = Field(None, ge=1, le=5)


def _feature(o: dict[str, Any], root: str) -> dict[str, Any]:
    props = {k: v for k, v in o.items() if k not in ("lon", "lat")}
    return {
        "type": "Feature",
        "id": o["id"],
        "geometry": {"type": "Point", "coordinates": [o["lon"], o["lat"]]} if "lon" in o else None,
        "properties": props,
        "links": [
            {"rel": "self", "href": f"{root}/orders/{o['id']}", "type": "application/geo+json"}
        ],
    }


@router.post("/orders", status_code=201, response_class=GeoJSONResponse, responses=FEATURE_DOCS)
def create_order(
    request: Request, who: Caller, ctx: Ctx, body: Annotated[NewOrder, Body()]
) -> Response:
    """Create a work order, located and dispatched to the grid's responsible worker.

    Idempotent on ``source`` + ``external_id``: a retry answers 200 with the same order.
    """
    o, new = wo.create(ctx.store, who, body.model_dump(), locator=locator(ctx))
    root = base(request)
    return JSONResponse(
        _feature(o, root), status_code=201 if new else 200,
        headers={"Location": f"{root}/orders/{o['id']}"}, media_type="application/geo+json",
    )  # fmt: skip


@router.get("/orders/changes")
def order_changes(
    who: Caller,
    ctx: Ctx,
    after: Annotated[
        int, Query(ge=0, description="The cursor of the last change seen (0: from the start).")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> JSONResponse:
    """Changes (order events) after ``after``, oldest first, and the cursor to ask from next."""
    ev, cursor = wo.changes(ctx.store, who, after, limit)
    return JSONResponse({"changes": ev, "next": cursor})


@router.get("/orders", response_class=GeoJSONResponse, responses=FEATURE_DOCS)
def list_orders(
    request: Request,
    who: Caller,
    ctx: Ctx,
    state: Annotated[str | None, Query(max_length=32)] = None,
    type: Annotated[str | None, Query(max_length=64)] = None,
    grid_code: Annotated[str | None, Query(pattern=r"^\d{15}$")] = None,
    community_code: Annotated[str | None, Query(pattern=r"^\d{12}$")] = None,
    bbox: Annotated[str | None, Query(description="minlon,minlat,maxlon,maxlat (CRS84)")] = None,
    datetime: Annotated[
        str | None, Query(description="created: an instant, or start/end with .. open")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
    filter: Annotated[
        str | None,
        Query(
            max_length=20_000,
            description="CQL2 text over the order's properties, e.g. "
            "state IN ('dispatched','accepted') AND type = 'repair' AND grid_code LIKE '370405%'",
        ),
    ] = None,
    filter_lang: Annotated[Literal["cql2-text"] | None, Query(alias="filter-lang")] = None,
) -> Response:
    """The orders the caller may see, as a GeoJSON feature collection (OGC API – Features:
    bbox, ``datetime`` on the creation time, CQL2 ``filter``, paging).
    """
    from api.http.errors import Problem
    from api.http.ogc import parse_filter

    cql = None
    if filter is not None:
        try:
            cql = parse_filter(filter, filter_lang, wo.FILTERABLE)
        except ValueError as exc:
            raise Problem(400, str(exc)) from None

    where = {k: v for k, v in (("state", state), ("type", type), ("grid_code", grid_code),
                               ("community_code", community_code)) if v is not None}  # fmt: skip
    box = None
    if bbox is not None:
        try:
            parts = [float(x) for x in bbox.split(",")]
        except ValueError:
            raise Problem(400, "bbox: four numbers minlon,minlat,maxlon,maxlat") from None
        if len(parts) != 4 or parts[0] > parts[2] or parts[1] > parts[3]:
            raise Problem(400, "bbox: four numbers minlon,minlat,maxlon,maxlat")
        box = (parts[0], parts[1], parts[2], parts[3])
    since = until = None
    if datetime is not None:
        a, _, b = datetime.partition("/")
        since, until = (a if a not in ("", "..") else None), (b if b not in ("", "..") else None)
        if not _:
            since = until = a
        try:
            import pandas as pd

            for v in (since, until):
                if v is not None:
                    pd.Timestamp(v)
        except ValueError:
            raise Problem(
                400, f"datetime {datetime!r} is not RFC 3339 (or an interval of two)"
            ) from None
    rows, total = wo.listing(ctx.store, who, where=where, bbox=box, since=since, until=until,
                             limit=limit, offset=offset, cql=cql)  # fmt: skip
    root = base(request)
    links = [{"rel": "self", "href": str(request.url), "type": "application/geo+json"}]
    if offset + limit < total:
        links.append({"rel": "next", "type": "application/geo+json",
                      "href": str(request.url.include_query_params(offset=offset + limit))})  # fmt: skip
    return JSONResponse(
        {"type": "FeatureCollection", "features": [_feature(o, root) for o in rows],
         "numberMatched": total, "numberReturned": len(rows), "links": links},
        media_type="application/geo+json",
    )  # fmt: skip


@router.get("/orders/{order_id}", response_class=GeoJSONResponse, responses=FEATURE_DOCS)
def one_order(request: Request, order_id: str, who: Caller, ctx: Ctx) -> Response:
    """One order with its history (404 for an order the caller may not see)."""
    return JSONResponse(_feature(wo.get(ctx.store, who, order_id), base(request)),
                        media_type="application/geo+json")  # fmt: skip


@router.post("/orders/{order_id}/transitions")
def transition(
    order_id: str, who: Caller, ctx: Ctx, body: Annotated[Transition, Body()]
) -> JSONResponse:
    """Move an order one step; 409 when ``version`` is stale or the step is not allowed
    from the order's state, 403 when it is not the caller's to make.
    """
    o = wo.move(ctx.store, who, order_id, body.action, version=body.version, note=body.note,
                worker_id=body.worker_id, hours=body.hours, satisfaction=body.satisfaction)  # fmt: skip
    return JSONResponse(o)
