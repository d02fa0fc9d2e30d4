"""Dispatch look-up routes: which grid and worker are responsible for a point."""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Body, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from api.http.context import Context
from api.http.deps import Caller, Ctx, caller, held
from api.http.errors import Problem
from api.http.features import metric_epsg
from gis import crs as gcrs
from gis.access import Principal
from gis.locate import LAYERS, Locator

router = APIRouter(tags=["dispatch"])
MAX_POINTS = 10_000


class Points(BaseModel):
    """A batch of points to look up."""

    points: list[tuple[float, float]] = Field(max_length=MAX_POINTS)
    crs: str | None = None


def locator(ctx: Ctx) -> Locator:
    """The look-up structures of the current store version."""
    return ctx.layers.memo(("locator",), LAYERS, lambda: Locator(ctx.layers.get(LAYERS)))


def shape(answer: dict[str, Any] | None, who: Principal) -> dict[str, Any] | None:
    """An answer as ``who`` may see it: 403 outside the jurisdiction, no phone below
    supervisor.
    """
    if answer is None:
        return None
    if not who.covers(answer["community"]["code"]):
        raise Problem(403, "the point lies outside your jurisdiction")
    w = answer.get("worker")
    if w is not None and not who.at_least("supervisor"):
        answer["worker"] = {k: v for k, v in w.items() if k != "phone"}
    return answer


class LocateQuery(BaseModel):
    """The query of ``GET /locate``."""

    lon: float = Field(ge=-1e7, le=1e7, description="Longitude (or easting).")
    lat: float = Field(ge=-1e7, le=1e7, description="Latitude (or northing).")
    crs: str | None = Field(
        None,
        description="CRS of lon/lat (or x/y): CRS84 (default), EPSG:4490, EPSG:4326, gcj02, "
        "bd09, the city's zone.",
    )


def _query_doc(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI parameters of a query ``model`` (for a route that parses it itself)."""
    s = model.model_json_schema()
    return {
        "parameters": [
            {"name": n, "in": "query", "required": n in s.get("required", ()),
             "description": p.get("description"), "schema": p}
            for n, p in s["properties"].items()
        ]
    }  # fmt: skip


@router.get("/locate", openapi_extra=_query_doc(LocateQuery))
async def locate(request: Request) -> JSONResponse:
    """District, street, community, grid and responsible worker of a point, and the
    nearest facility of each type (distance in metres).
    """
    # The route calling systems hit hardest parses its own query, with the same model and
    # the same errors as declared parameters would: FastAPI's solving of the dependencies
    # (caller, context, three query parameters) was a sixth of a look-up's time in the app.
    ctx: Context = request.app.state.ctx
    who = await caller(request, ctx)
    try:
        q = LocateQuery.model_validate(dict(request.query_params))
    except ValidationError as exc:
        raise RequestValidationError(exc.errors()) from None
    uri = gcrs.resolve(q.crs, await held(ctx, ("metric",), metric_epsg))
    _check([(q.lon, q.lat)], uri)
    loc = await held(ctx, ("locator",), locator)
    answer = shape(loc.locate(np.array([q.lon]), np.array([q.lat]), uri)[0], who)
    if answer is None:
        raise Problem(404, f"({q.lon}, {q.lat}) lies outside the city")
    return JSONResponse(answer)


@router.post("/locate")
def locate_many(who: Caller, ctx: Ctx, body: Annotated[Points, Body()]) -> JSONResponse:
    """The same for up to 10,000 points (``null`` for a point outside the city)."""
    uri = gcrs.resolve(body.crs, metric_epsg(ctx))
    xy = np.asarray(body.points, dtype=float).reshape(-1, 2)
    _check(xy, uri)
    answers = locator(ctx).locate(xy[:, 0], xy[:, 1], uri) if len(xy) else []
    return JSONResponse({"results": [shape(a, who) for a in answers]})


def _check(points: Any, uri: str) -> None:
    xy = np.asarray(points, dtype=float).reshape(-1, 2)
    if not len(xy):
        return
    if not np.isfinite(xy).all():
        raise Problem(400, "points must be finite numbers")
    if gcrs.geographic(uri) and ((np.abs(xy[:, 0]) > 180).any() or (np.abs(xy[:, 1]) > 90).any()):
        raise Problem(400, "points must be [lon, lat] within -180..180, -90..90")
