"""Scenario routes: saved siting scenarios (planners), each write audited."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.http.analysis import MAX_SITES, Site, tested
from api.http.deps import Ctx, Planner
from gis.workflows import sites as wsites

router = APIRouter(tags=["scenarios"])


class ScenarioIn(BaseModel):
    """A scenario to save: a name and sites of one type (tested on saving)."""

    name: str = Field(min_length=1, max_length=100)
    type: str = Field(min_length=1, max_length=64)
    sites: list[Site] = Field(min_length=1, max_length=MAX_SITES)


@router.get("/scenarios")
def list_scenarios(who: Planner, ctx: Ctx) -> JSONResponse:
    """Saved scenarios (planners)."""
    df = wsites.scenarios(ctx.layers, who)[["id", "name", "author", "created"]]
    return JSONResponse({"scenarios": df.to_dict("records")})


@router.get("/scenarios/{sid}")
def get_scenario(who: Planner, ctx: Ctx, sid: str) -> JSONResponse:
    """One scenario with its sites and results (404 outside the caller's jurisdiction)."""
    return JSONResponse(wsites.scenario(ctx.layers, sid, who))


@router.post("/scenarios", status_code=201)
def create_scenario(who: Planner, ctx: Ctx, body: Annotated[ScenarioIn, Body()]) -> JSONResponse:
    """Test the sites and save them with the results as a scenario."""
    t = tested(who, ctx, body.type, body.sites, None)
    wsites.save_scenario(ctx.store, who, body.name, t.sites, t.results)
    ctx.changed()
    return JSONResponse({"id": body.name, "href": f"/scenarios/{body.name}"}, status_code=201)


@router.put("/scenarios/{sid}")
def update_scenario(
    who: Planner, ctx: Ctx, sid: str, body: Annotated[ScenarioIn, Body()]
) -> JSONResponse:
    """Replace a scenario's sites (tested again; its author or an admin); the name stays
    ``sid``, the author stays, the editor and the time of the change are recorded.
    """
    t = tested(who, ctx, body.type, body.sites, None)
    wsites.save_scenario(ctx.store, who, sid, t.sites, t.results, replace=True)
    ctx.changed()
    return JSONResponse({"id": sid, "href": f"/scenarios/{sid}"})


@router.delete("/scenarios/{sid}")
def delete_scenario(who: Planner, ctx: Ctx, sid: str) -> JSONResponse:
    """Delete a scenario (its author or an admin)."""
    wsites.delete_scenario(ctx.store, who, sid)
    ctx.changed()
    return JSONResponse({"deleted": sid})
