"""Map routes: the supervisor and planner maps as HTML pages, cached per store version.

The same rules as the features: a key's map covers its jurisdiction (a street or community
outside it is refused; without one the map shows the jurisdiction), and a viewer's or
anonymous map never carries a household count below a grid (``privacy_min_buildings``).
Each cached page is kept per jurisdiction and per kind of caller, never shared across them.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from api.http.deps import Caller, Ctx, Lang, Planner, Supervisor, Tiles
from gis import mapdata
from gis.access import Principal
from gis.workflows import sites as wsites
from maps import views

router = APIRouter(tags=["maps"])


def _page(
    ctx: Ctx, who: Principal, key: tuple, deps: tuple[str, ...], make: Callable[[], str]
) -> HTMLResponse:
    whom = (who.scope, who.at_least("supervisor"))
    return HTMLResponse(ctx.layers.memo((*key, *whom), deps, make))


def _privacy(ctx: Ctx, who: Principal) -> int | None:
    """How a caller's map aggregates households: ``None`` (supervisors and above see what
    they may read as features) or the viewers' setting.
    """
    return None if who.at_least("supervisor") else ctx.settings.privacy_min_buildings


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
    """Coverage map: the city (or the caller's jurisdiction), or one street or community."""
    key = ctx.settings.tianditu_key
    scoped = bool(street or community) or (who.scope is not None and len(who.scope) > 6)

    def make() -> str:
        if scoped:
            f = ctx.layers.get(mapdata.LAYERS["detail"])
            sc = mapdata.scope(f, street, community, within=who.scope)
            d = mapdata.coverage_detail(f, type, sc, min_buildings=_privacy(ctx, who))
            return views.coverage_detail_map(d, tiles=tiles, lang=lang, key=key).html()
        f = ctx.layers.get(mapdata.LAYERS["coverage_city"])
        o = mapdata.coverage_overview(f, type, lang, within=who.scope)
        return views.coverage_overview_map(o, tiles=tiles, lang=lang, key=key).html()

    deps = mapdata.LAYERS["detail" if scoped else "coverage_city"]
    return _page(ctx, who, ("coverage", type, street, community, tiles, lang), deps, make)


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
    kind = "detail" if street or community or who.scope else "staffing_city"

    def make() -> str:
        f = ctx.layers.get(mapdata.LAYERS[kind])
        v = mapdata.staffing(f, mapdata.scope(f, street, community, within=who.scope), lang)
        return views.staffing_map(v, tiles=tiles, lang=lang, key=ctx.settings.tianditu_key).html()

    return _page(ctx, who, ("staffing", street, community, tiles, lang), mapdata.LAYERS[kind], make)


@router.get("/maps/orders", response_class=HTMLResponse)
def orders_map(
    who: Supervisor,
    ctx: Ctx,
    street: str | None = None,
    community: str | None = None,
    tiles: Tiles = "none",
    lang: Lang = "zh",
) -> HTMLResponse:
    """Work orders (supervisors, inside their jurisdiction): grids by orders per 1,000
    households, open orders with the overdue ones in red, hot spots of repeated requests.
    """
    from gis.workflows.orders import wall_clock

    def make() -> str:
        f = ctx.layers.get(mapdata.LAYERS["orders"])
        v = mapdata.orders(
            f, mapdata.scope(f, street, community, within=who.scope), wall_clock(), lang
        )
        return views.orders_map(v, tiles=tiles, lang=lang, key=ctx.settings.tianditu_key).html()

    # the deadline colours move with the clock: cached for a minute at most
    minute = int(wall_clock().timestamp() // 60)
    return _page(
        ctx, who, ("orders", street, community, tiles, lang, minute), mapdata.LAYERS["orders"], make
    )


@router.get("/maps/scenario/{name}", response_class=HTMLResponse)
def scenario_map(
    who: Planner,
    ctx: Ctx,
    name: str,
    street: str | None = None,
    tiles: Tiles = "none",
    lang: Lang = "zh",
) -> HTMLResponse:
    """A saved siting scenario (planners, inside their jurisdiction): sites, coverage before
    and after, ranking.
    """
    wsites.scenario(ctx.layers, name, who)  # 404 for a scenario the caller may not see

    def make() -> str:
        f = ctx.layers.get(mapdata.LAYERS["scenario"])
        v = mapdata.scenario(f, name, street, within=who.scope)
        return views.scenario_map(v, tiles=tiles, lang=lang, key=ctx.settings.tianditu_key).html()

    return _page(
        ctx, who, ("scenario", name, street, tiles, lang), mapdata.LAYERS["scenario"], make
    )


@router.get("/maps/city", response_class=HTMLResponse)
def city_map(
    who: Supervisor,
    ctx: Ctx,
    street: str | None = None,
    community: str | None = None,
    district: str | None = None,
    tiles: Tiles = "none",
    lang: Lang = "zh",
) -> HTMLResponse:
    """The supervisor city map: every building of the jurisdiction by households, drawn
    from this service's vector tiles (fetched with the page's own credentials; a tile holds
    only the caller's jurisdiction), with street and community outlines.
    """

    def make() -> str:
        f = ctx.layers.get(mapdata.LAYERS["city"])
        sc = mapdata.scope(f, street, community, within=who.scope, district=district)
        return views.city_map(mapdata.city(f, sc, lang), tiles=tiles, lang=lang,
                              key=ctx.settings.tianditu_key).html()  # fmt: skip

    return _page(
        ctx, who, ("city", street, community, district, tiles, lang), mapdata.LAYERS["city"], make
    )
