"""Edit routes: a supervisor makes a worker responsible for a grid; features of the
editable collections created, replaced, updated and deleted (OGC API – Features Part 4).
Each edit is one audited transaction of its workflow.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

import shapely

from api.http import cache, features, ogc
from api.http.context import Context
from api.http.deps import Caller, Ctx, Supervisor, base
from api.http.errors import Problem
from api.http.features import GEOJSON
from gis import crs as gcrs
from gis import schema
from gis.access import Principal
from gis.edits import EDITABLE, ToCrs84
from gis.workflows import features as wfeatures
from gis.workflows import staff as wstaff

router = APIRouter(tags=["staffing"])


class Assignment(BaseModel):
    """The worker made responsible for a grid."""

    worker_id: str = Field(min_length=1, max_length=64)


@router.put("/assignments/{grid_code}")
def put_assignment(
    grid_code: str, who: Supervisor, ctx: Ctx, body: Annotated[Assignment, Body()]
) -> JSONResponse:
    """Make a worker responsible for a grid (supervisors, inside their jurisdiction).

    Waits for a running assignment of the whole city at most ``edit_wait`` seconds, then
    answers 503 with ``Retry-After``; a 200 means the change and its audit row are stored.
    """
    wstaff.edit_assignment(ctx.store, who, grid_code, body.worker_id, wait=ctx.settings.edit_wait)
    ctx.changed()
    return JSONResponse({"grid_code": grid_code, "worker_id": body.worker_id})


# -- OGC API – Features Part 4: create, replace, update, delete ------------------------
MEDIA = ("application/json", "application/geo+json", "application/merge-patch+json")


async def _body(request: Request) -> Any:
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if kind not in MEDIA:
        raise Problem(
            415, f"send the feature as {' or '.join(MEDIA[:2])} (a patch also as {MEDIA[2]})"
        )
    try:
        return json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise Problem(400, "the body is not JSON") from None


def _target(cid: str, who: Principal, ctx: Context) -> str:
    c = features.collection(cid, who, ctx)
    if c.layer not in EDITABLE:
        raise Problem(405, f"{cid} is read-only; editable: {', '.join(EDITABLE)}", {"Allow": "GET"})
    return c.layer


def _to_crs84(request: Request, ctx: Context) -> ToCrs84 | None:
    given = request.headers.get("content-crs")
    if given is None:
        return None
    uri = gcrs.resolve(given.strip().strip("<>"), features.metric_epsg(ctx))
    return None if uri == gcrs.CRS84 else gcrs.transformer(uri, inverse=True)


def _tags(request: Request) -> set[str]:
    tags = cache.if_match(request.headers.get("if-match"))
    if tags is None:
        raise Problem(428, "send If-Match with the feature's ETag (GET the feature first)")
    return tags


def _answer(
    request: Request, cid: str, who: Principal, ctx: Context, e: wfeatures.Edited
) -> Response:
    """The stored feature as GET would render it, its ``ETag``, and the results it made stale."""
    ctx.changed()
    headers = {"Stale-Results": ", ".join(e.stale)} if e.stale else {}
    if e.row is None:
        return Response(status_code=204, headers=headers)
    c = features.collection(cid, who, ctx)
    key = schema.layer(c.layer).key[0]
    row = dict(e.row)
    g = row.pop("geometry", None)
    feat = ogc.features_json([row], [None if g is None else shapely.to_geojson(g)], key,
                             features.hidden(c, who))[0]  # fmt: skip
    href = f"{base(request)}/collections/{cid}/items/{row[key]}"
    text = feat[:-1] + ',"stale":' + json.dumps(e.stale) + "}"
    view = Request({**request.scope, "method": "GET", "path": f"/collections/{cid}/items/{row[key]}",
                    "query_string": b""})  # fmt: skip
    headers["ETag"] = cache.feature_tag(e.tag or "", view, who)
    if e.created:
        headers["Location"] = href
    return Response(
        text, status_code=201 if e.created else 200, media_type=GEOJSON, headers=headers
    )


async def _edit(request: Request, cid: str, who: Principal, ctx: Context, op: wfeatures.Op,
                fid: str | None = None) -> Response:  # fmt: skip
    layer = _target(cid, who, ctx)
    doc = await _body(request) if op != "delete" else None
    tags = _tags(request) if op != "create" else None
    e = await run_in_threadpool(
        wfeatures.edit, ctx.store, who, layer, op, fid=fid, doc=doc, if_match=tags,
        inputs=ctx.layers, to_crs84=_to_crs84(request, ctx),
    )  # fmt: skip
    return _answer(request, cid, who, ctx, e)


EDIT_DOCS: dict[int | str, dict[str, Any]] = {
    412: {"description": "If-Match names an older version of the feature"},
    428: {"description": "If-Match is missing"},
}


@router.post("/collections/{cid}/items", status_code=201, tags=["OGC API – Features"],
             responses={201: {"content": {GEOJSON: {}}}})  # fmt: skip
async def create_feature(request: Request, cid: str, who: Caller, ctx: Ctx) -> Response:
    """Create a feature (a GeoJSON Feature; ``Content-Crs`` for another CRS than CRS84):
    validated as an import, inside the caller's jurisdiction; 201 with ``Location`` and
    ``ETag``; results it made stale in ``Stale-Results`` (and ``GET /stale``).
    """
    return await _edit(request, cid, who, ctx, "create")


@router.put("/collections/{cid}/items/{fid}", tags=["OGC API – Features"], responses=EDIT_DOCS)
async def replace_feature(request: Request, cid: str, fid: str, who: Caller, ctx: Ctx) -> Response:
    """Replace a feature whole (``If-Match``: its ETag; 412 when it changed since)."""
    return await _edit(request, cid, who, ctx, "replace", fid)


@router.patch("/collections/{cid}/items/{fid}", tags=["OGC API – Features"], responses=EDIT_DOCS)
async def update_feature(request: Request, cid: str, fid: str, who: Caller, ctx: Ctx) -> Response:
    """Change some properties or the geometry (a JSON merge patch; ``If-Match``)."""
    return await _edit(request, cid, who, ctx, "update", fid)


@router.delete(
    "/collections/{cid}/items/{fid}", status_code=204, tags=["OGC API – Features"],
    responses=EDIT_DOCS,
)  # fmt: skip
async def delete_feature(request: Request, cid: str, fid: str, who: Caller, ctx: Ctx) -> Response:
    """Delete a feature (``If-Match``); a facility a saved scenario names, or a worker
    responsible for grids, is kept (409).
    """
    return await _edit(request, cid, who, ctx, "delete", fid)


@router.get("/stale", tags=["staffing"])
def stale_results(who: Caller, ctx: Ctx) -> JSONResponse:
    """The derived results edits made stale, until they are computed again (supervisors)."""
    return JSONResponse({"stale": wfeatures.stale(ctx.store, who)})
