"""Map routes: the supervisor and planner maps as HTML pages, cached per store version."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from api.http.deps import Caller, Ctx, Lang, Planner, Tiles
from gis import mapdata
from maps import views

router = APIRouter(tags=["maps"])


def _page(ctx: Ctx, key: tuple, deps: tuple[str, ...], make: object) -> HTMLResponse:
    return HTMLResponse(ctx.layers.memo(key, deps, make))  # type: ignore[arg-type]


@router.get("/maps/coverage", response_class=HTMLResponse)
def coverage_map(
    who: Caller,
    ctx: Ctx,
    type: str | None = None,
    street: str | None = None,
    community: str | None = None,
    tiles: Tiles = "none",
    lang: Lang = "zh",
) -> HTMLResponse:
    """Coverage map: the city overview, or one street or community in detail."""
    key = ctx.settings.tianditu_key

    def make() -> str:
        if street or community:
            f = ctx.layers.get(mapdata.LAYERS["detail"])
            d = mapdata.coverage_detail(f, type, mapdata.scope(f, street, community))
            return views.coverage_detail_map(d, tiles=tiles, lang=lang, key=key).html()
        o = mapdata.coverage_overview(ctx.layers.get(mapdata.LAYERS["coverage_city"]), type, lang)
        return views.coverage_overview_map(o, tiles=tiles, lang=lang, key=key).html()

    kind = "detail" if street or community else "coverage_city"
    return _page(
        ctx, ("coverage", type, street, community, tiles, lang), mapdata.LAYERS[kind], make
    )


@router.get("/maps/staffing", response_class=HTMLResponse)
def staffing_map(
    who: Caller,
    ctx: Ctx,
    street: str | None = None,
    community: str | None = None,
    tiles: Tiles = "none",
    lang: Lang = "zh",
) -> HTMLResponse:
    """Staffing map: grids by responsible worker, loads, communities flagged."""
    kind = "detail" if street or community else "staffing_city"

    def make() -> str:
        f = ctx.layers.get(mapdata.LAYERS[kind])
        v = mapdata.staffing(f, mapdata.scope(f, street, community), lang)
        return views.staffing_map(v, tiles=tiles, lang=lang, key=ctx.settings.tianditu_key).html()

    return _page(ctx, ("staffing", street, community, tiles, lang), mapdata.LAYERS[kind], make)


@router.get("/maps/scenario/{name}", response_class=HTMLResponse)
def scenario_map(
    who: Planner,
    ctx: Ctx,
    name: str,
    street: str | None = None,
    tiles: Tiles = "none",
    lang: Lang = "zh",
) -> HTMLResponse:
    """A saved siting scenario (planners): sites, coverage before and after, ranking."""

    def make() -> str:
        v = mapdata.scenario(ctx.layers.get(mapdata.LAYERS["scenario"]), name, street)
        return views.scenario_map(v, tiles=tiles, lang=lang, key=ctx.settings.tianditu_key).html()

    return _page(ctx, ("scenario", name, street, tiles, lang), mapdata.LAYERS["scenario"], make)
