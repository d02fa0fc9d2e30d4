"""Analysis routes: coverage and staffing tables, site tests."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import pandas as pd
from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.http.deps import Caller, Ctx, Planner
from api.http.errors import Problem
from gis import siting
from gis.access import Principal
from gis.errors import AccessError
from gis.workflows import sites as wsites
from gis.workflows.coverage import NEEDS, OPTIONAL
from gis.workflows.staff import stored_quotas

router = APIRouter()
MAX_SITES = 2_000
PLANNER_DEPS = (*NEEDS, *OPTIONAL, "settings")


class Site(BaseModel):
    """A candidate site in CRS84."""

    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    id: str | None = Field(default=None, max_length=64)
    area_m2: float | None = Field(default=None, ge=0, le=1e6)


class SiteTest(BaseModel):
    """Sites to test for one facility type."""

    type: str = Field(min_length=1, max_length=64)
    sites: list[Site] = Field(min_length=1, max_length=MAX_SITES)
    mode: Literal["line", "network"] | None = None


def inside(who: Principal, codes: pd.Series) -> pd.Series:
    """Which codes lie in the caller's jurisdiction."""
    return codes.astype(str).map(who.covers) if who.scope else codes.map(lambda _: True)


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """A table as JSON records (NaN as null)."""
    return json.loads(df.to_json(orient="records", force_ascii=False))  # type: ignore[no-any-return]


@router.get("/analysis/coverage", tags=["analysis"])
def coverage_table(
    who: Caller,
    ctx: Ctx,
    level: Literal["city", "district", "street", "community", "grid"] = "district",
    type: str | None = None,
) -> JSONResponse:
    """Served, covered, uncovered and share per unit of a level (and type)."""
    f = ctx.layers.get(("coverage",))
    if "coverage" not in f:
        raise Problem(404, "coverage has not been computed (gridgis coverage)")
    t = f["coverage"]
    t = t[t["level"] == level]
    if type is not None:
        t = t[t["type"] == type]
    if level != "city":
        t = t[inside(who, t["code"])]
    return JSONResponse({"level": level, "rows": records(t)})


@router.get("/analysis/staffing", tags=["analysis"])
def staffing_table(who: Caller, ctx: Ctx) -> JSONResponse:
    """The stored quota per community (under the city's rules and cap), with the roster."""
    q = ctx.layers.memo(
        ("staffing",),
        ("quotas", "workers"),
        lambda: stored_quotas(ctx.layers.get(("quotas", "workers"))),
    )
    return JSONResponse({"rows": records(q[inside(who, q["code"])])})


def planner(ctx: Ctx, type_code: str, mode: str | None) -> siting.Planner:
    """The siting context of a type, once per store version."""
    return ctx.layers.memo(
        ("planner", type_code, mode),
        PLANNER_DEPS,
        lambda: wsites.planner(ctx.layers, type_code, mode),
    )


def candidates(sites: list[Site], prefix: str = "S") -> Any:
    """Sites of a request as candidate sites (ids numbered where not given)."""
    c = siting.candidates([(x.lon, x.lat) for x in sites], area=[x.area_m2 for x in sites])
    c["id"] = [x.id or f"{prefix}{i + 1:04d}" for i, x in enumerate(sites)]
    return c


def tested(
    who: Principal, ctx: Ctx, type_code: str, sites: list[Site], mode: str | None
) -> wsites.SiteTest:
    """A site test, refused when a site lies outside the caller's jurisdiction."""
    t = wsites.test_sites(planner(ctx, type_code, mode), candidates(sites))
    if not all(who.covers(c) for c in t.evaluation.ranking["community_code"]):
        raise AccessError("a site lies outside your jurisdiction")
    return t


@router.post("/sites/test", tags=["siting"])
def site_test(who: Planner, ctx: Ctx, body: Annotated[SiteTest, Body()]) -> JSONResponse:
    """What each site would newly cover (planners)."""
    t = tested(who, ctx, body.type, body.sites, body.mode)
    return JSONResponse(
        {"type": body.type, "mode": t.results["mode"], "ranking": t.results["ranking"],
         "by_unit": records(t.evaluation.by_unit)}
    )  # fmt: skip
