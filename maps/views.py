"""The map kinds, drawn from computed results (:mod:`gis.mapdata`): coverage of a street or
of the whole city, staffing, a siting scenario. Nothing is computed here but colours and
words; each function returns a :class:`~maps.base.GridMap`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from gis import mapdata as md
from maps.base import CATEGORY_COLOURS, NO_DATA, GridMap, share_colour, share_legend
from maps.labels import sep, text

DENSITY_COLOURS = np.array(["#fcbba1", "#fc9272", "#ef3b2c", "#a50f15"], dtype=object)
FLAG_COLOURS = {"ok": "#1a9850", "below_minimum": "#d73027", "under_quota": "#fc8d59",
                "over_quota": "#4575b4"}  # fmt: skip
FACILITY, GAP, SITE, NEWLY = "#2c7bb6", "#7b3294", "#e7298a", "#08519c"
# the city overview stays light: geometry simplified to about 30 m
OVERVIEW_TOLERANCE = 0.0003


def _pct(share: pd.Series, applies: pd.Series | None = None, lang: str = "zh") -> pd.Series:
    out = share.map(lambda v: "—" if pd.isna(v) else f"{v:.0%}")
    if applies is not None:
        out = out.where(applies.fillna(True).astype(bool), text("not applicable", lang))
    return out


def _map(
    title: str, bounds: tuple[float, float, float, float], tiles: str, lang: str, key: str | None
) -> GridMap:
    return GridMap(title, bounds, tiles=tiles, lang=lang, key=key)


# --- coverage -------------------------------------------------------------------------------


def coverage_detail_map(
    d: md.CoverageDetail, *, tiles: str = "none", lang: str = "zh", key: str | None = None
) -> GridMap:
    """A street or community: shares per grid, gaps, facilities, service areas."""
    t = d.type
    name = t["name_zh"] if lang == "zh" else t["name_en"]
    how = text("walk" if d.mode == "network" else "straight", lang)
    title = text(
        "coverage title", lang, scope=d.scope.name, type=name, radius=f"{t['radius_m']:g}", how=how
    )
    gm = _map(title, d.scope.bounds(), tiles, lang, key)
    u = d.units.assign(
        share_pct=_pct(d.units["share"], d.units["applies"], lang),
        worker=d.units["worker"].fillna("—"),
    )
    gm.polygons(
        u, text("grid share" if d.level == "grid" else "community share", lang),
        fill=share_colour(u["share"], u["applies"]),
        tooltip={k: text(k, lang) for k in ("code", "community", "served")}
        | {"share_pct": text("covered", lang), "worker": text("worker", lang)},
    )  # fmt: skip
    gm.polygons(d.scope.communities, text("communities", lang), line="#222222", weight=2.5)
    if len(d.roads):
        gm.polygons(d.roads, text("roads", lang), line="#9a9a9a", weight=0.7)
    cells = d.uncovered
    gm.polygons(
        cells, text("uncovered", lang),
        fill=pd.Series(DENSITY_COLOURS[cells["class"].to_numpy(dtype=int)], index=cells.index)
        if len(cells) else None,
        line="#00000000", weight=0, opacity=0.55,
        tooltip=({"code": text("code", lang)} if "code" in cells else {})
        | {"households": text("uncovered households", lang)}, show=False,
    )  # fmt: skip
    gap_tip = {"served": text("served in gap", lang)} if "served" in d.gaps else None
    gm.polygons(d.gaps, text("gaps", lang), fill=GAP, line=GAP, weight=0.6, opacity=0.22,
                tooltip=gap_tip)  # fmt: skip
    _facilities(gm, d, name, lang)
    if d.has_grids:
        gm.search("code", u)
    gm.search("name", d.scope.communities)
    gm.legend(
        text("covered share", lang), share_legend(lang), note=sep(lang).join(_notes(d, name, lang))
    )
    gm.legend(
        text("facilities and gaps", lang),
        [(FACILITY, f"{name}（{t['radius_m']:g} m）"), (GAP, text("gap", lang))],
        kind="dot",
    )
    return gm


def _facilities(gm: GridMap, d: md.CoverageDetail, name: str, lang: str) -> None:
    if d.service_areas is not None:
        gm.polygons(d.service_areas, text("service areas", lang), fill=FACILITY, line=FACILITY,
                    weight=1, opacity=0.15)  # fmt: skip
        gm.points(d.facilities, name, colour=FACILITY, label="name")
    else:
        gm.points(
            d.facilities, name, colour=FACILITY, label="name", circle_m=float(d.type["radius_m"])
        )


def _notes(d: md.CoverageDetail, name: str, lang: str) -> list[str]:
    notes = []
    if not d.has_grids:
        notes.append(text("no grids, by community", lang))
    if not len(d.facilities):
        notes.append(text("no facility", lang, type=name))
    if not len(d.gaps):
        notes.append(text("no gaps", lang))
    return notes


def coverage_overview_map(
    d: md.CoverageOverview,
    *,
    tiles: str = "none",
    lang: str = "zh",
    key: str | None = None,
    links: dict[str, str] | None = None,
) -> GridMap:
    """The city: communities shaded by covered share, one selectable variant per type."""
    names = d.types["name_zh" if lang == "zh" else "name_en"].tolist()
    title = (
        text("type title", lang, city=d.city, type=names[0])
        if len(names) == 1
        else text("overview title", lang, city=d.city)
    )
    gm = _map(title, md.Scope("city", None, "", d.communities).bounds(), tiles, lang, key)
    variants = [
        (f"{n} ({r:g} m)", f"share{i}", f"served{i}", f"applies{i}")
        for i, (n, r) in enumerate(zip(names, d.types["radius_m"], strict=True))
    ]
    gm.switchable(
        d.communities, text("community share", lang), variants,
        {"code": text("community code", lang), "name": text("community", lang)},
        tolerance=OVERVIEW_TOLERANCE,
    )  # fmt: skip
    if d.streets is not None:
        streets = d.streets.copy()
        streets["link"] = [  # the renderer makes a link of {href, text}, text of the rest
            {"href": links[c], "text": text("detail map", lang, name=n)}
            if links and c in links
            else str(n)
            for c, n in zip(streets["code"], streets["name"], strict=True)
        ]
        gm.polygons(streets, text("streets", lang), line="#444444", weight=1.2,
                    tooltip={"name": text("street", lang)}, popup="link",
                    tolerance=OVERVIEW_TOLERANCE)  # fmt: skip
    if d.districts is not None:
        gm.polygons(d.districts, text("districts", lang), line="#000000", weight=2.5,
                    tolerance=OVERVIEW_TOLERANCE)  # fmt: skip
    gm.search("name", d.communities)
    by_code = dict(zip(d.types["code"], names, strict=True))
    missing = [by_code.get(c, c) for c in d.missing]
    note = text("not computed", lang, types=", ".join(missing)) if missing else ""
    gm.legend(text("community share", lang), share_legend(lang), note=note)
    return gm


# --- staffing -------------------------------------------------------------------------------


def staffing_map(
    v: md.StaffingView, *, tiles: str = "none", lang: str = "zh", key: str | None = None
) -> GridMap:
    """Grids coloured by responsible worker, loads against the band, communities flagged."""
    sc = v.scope
    gm = _map(text("staffing title", lang, scope=sc.name or v.city), sc.bounds(), tiles, lang, key)
    comms = v.communities.assign(flag=v.communities["flag"].map(lambda f: text(f, lang)))
    fills = v.communities["flag"].map(FLAG_COLOURS)
    tips = {"code": text("community code", lang), "name": text("community", lang)} | {
        k: text(k, lang) for k in ("households", "quota", "roster", "flag")
    }
    if not sc.detail:
        gm.polygons(comms, text("community staffing", lang), fill=fills, line="#ffffff",
                    weight=0.3, tooltip=tips, tolerance=OVERVIEW_TOLERANCE)  # fmt: skip
    else:
        _staffing_grids(gm, v, lang)
        if v.roads is not None and len(v.roads):
            gm.polygons(v.roads, text("roads", lang), line="#6f6f6f", weight=0.8)
        gm.polygons(
            comms, text("communities (flags)", lang), line="#222222", weight=2.5, tooltip=tips
        )
        flagged = v.communities["flag"] != "ok"
        gm.polygons(comms[flagged], text("flagged", lang), fill=fills[flagged], opacity=0.25,
                    line="#d73027", weight=3, tooltip=tips)  # fmt: skip
    gm.search("name", comms)
    note = text("no grids", lang) if sc.detail and not len(v.grids) else ""
    gm.legend(
        text("community staffing", lang),
        [(c, text(f, lang)) for f, c in FLAG_COLOURS.items()],
        note=note,
    )
    if sc.detail:
        lo, hi = (int(x) for x in v.rules.policy_range)
        gm.legend(
            text("workers", lang),
            [(CATEGORY_COLOURS[0], text("one colour per worker", lang)),
             ("#d73027", text("load legend", lang, lo=lo, hi=hi))],
        )  # fmt: skip
    return gm


def _staffing_grids(gm: GridMap, v: md.StaffingView, lang: str) -> None:
    lo, hi = (int(x) for x in v.rules.policy_range)
    g = v.grids.copy()
    g["worker"] = g["worker"].fillna(text("unassigned", lang)) if len(g) else g.get("worker")
    words = {
        "none": "—",
        "in": text("in band", lang),
        "out": text("out of band", lang, lo=lo, hi=hi),
    }
    g["band"] = g["band"].map(words) if len(g) else g.get("band")
    colour = g["colour"] if len(g) else pd.Series(dtype="Int64")
    fill = pd.Series(
        [CATEGORY_COLOURS[int(c) % len(CATEGORY_COLOURS)] if pd.notna(c) else NO_DATA for c in colour],
        index=g.index, dtype=object,
    )  # fmt: skip
    gm.polygons(
        g, text("grids by worker", lang), fill=fill, line="#ffffff", weight=1, opacity=0.7,
        tooltip={"code": text("grid", lang), "worker": text("worker", lang),
                 "households": text("grid households", lang), "load": text("worker load", lang),
                 "band": text("band", lang, lo=lo, hi=hi)},
    )  # fmt: skip
    gm.polygons(
        v.out_of_band, text("load out of band", lang), line="#d73027", weight=2.5, dash="4 3"
    )
    if len(g):
        gm.search("code", g)


# --- scenario -------------------------------------------------------------------------------


def scenario_map(
    v: md.ScenarioView, *, tiles: str = "none", lang: str = "zh", key: str | None = None
) -> GridMap:
    """A saved scenario: its sites beside existing facilities, coverage before and after,
    newly covered grids highlighted, the ranking in a side panel.
    """
    tname = v.type["name_zh"] if lang == "zh" else v.type["name_en"]
    title = text("scenario title", lang, name=v.name, type=tname, scope=v.scope.name)
    gm = _map(title, v.scope.bounds(), tiles, lang, key)
    tip = {"code": text("code", lang), "share_pct": text("covered", lang)}
    for when in ("before", "after"):
        u = v.units.assign(share_pct=_pct(v.units[f"share_{when}"]))
        gm.polygons(u, text(f"share {when}", lang), fill=share_colour(u[f"share_{when}"]),
                    line="#ffffff", weight=0.8, tooltip=tip, show=when == "after",
                    overlay=False)  # fmt: skip
    newly = v.newly.assign(
        gain=[f"{a:.0%} → {b:.0%}" for a, b in
              zip(v.newly["share_before"].fillna(0), v.newly["share_after"].fillna(0), strict=True)]
    )  # fmt: skip
    gm.polygons(newly, text("newly covered", lang), line=NEWLY, weight=3.5,
                tooltip={"code": text("code", lang), "gain": text("change", lang)})  # fmt: skip
    gm.polygons(v.scope.communities, text("scenario communities", lang), line="#222222", weight=2)
    gm.points(v.facilities, text("existing type", lang, type=tname), colour=FACILITY, label="name")
    gm.points(v.sites.assign(label=v.sites["id"].astype(str)), text("sites", lang), colour=SITE,
              radius=8, label="label", circle_m=float(v.type["radius_m"]))  # fmt: skip
    gm.side_panel(text("results", lang, name=v.name), _results_table(v, lang))
    gm.search("code", v.units)
    note = "" if len(v.newly) else text("no gain", lang)
    gm.legend(text("covered share", lang), share_legend(lang), note=note)
    gm.legend(
        text("site legend", lang),
        [(SITE, text("candidate", lang)), (FACILITY, text("existing", lang)),
         (NEWLY, text("newly covered legend", lang))],
        kind="dot",
    )  # fmt: skip
    return gm


def _results_table(v: md.ScenarioView, lang: str) -> pd.DataFrame:
    if len(v.ranking):
        table = v.ranking[["rank", "id", "newly_covered", "share_after"]].copy()
        table["share_after"] = table["share_after"].map(lambda x: f"{x:.2%}")
        table.columns = [text(k, lang) for k in ("rank", "site", "gain", "share after short")]
        return table
    r = v.results
    return pd.DataFrame(
        {
            text("item", lang): [text(k, lang) for k in ("objective", "objective value", "optimality gap", "gain")],
            text("value", lang): [
                r.get("objective_name"), f"{r.get('objective', 0):,.1f}", f"{r.get('gap', 0):.3%}",
                f"{r.get('newly_covered', 0):,.0f}",
            ],
        }
    )  # fmt: skip


# --- work orders ----------------------------------------------------------------------------

#: orders per 1,000 households, light to dark
RATE_BREAKS = (0.0, 2.0, 5.0, 10.0, 20.0)
RATE_COLOURS = ("#f7fbff", "#c6dbef", "#6baed6", "#2171b5", "#08306b")


def orders_map(
    v: md.OrdersView, *, tiles: str = "none", lang: str = "zh", key: str | None = None
) -> GridMap:
    """Grids by orders per 1,000 households, open orders (overdue in red), hot spots."""
    sc = v.scope
    gm = _map(text("orders title", lang, scope=sc.name or v.city), sc.bounds(), tiles, lang, key)
    rate = v.grids["per_1000"].fillna(0).to_numpy() if len(v.grids) else np.zeros(0)
    idx = np.searchsorted(np.array(RATE_BREAKS), rate, side="right") - 1
    fill = pd.Series([RATE_COLOURS[max(0, min(i, len(RATE_COLOURS) - 1))] for i in idx],
                     index=v.grids.index, dtype=object)  # fmt: skip
    gm.polygons(
        v.grids, text("grids by order rate", lang), fill=fill, line="#888888", weight=0.6,
        opacity=0.7, tooltip={"code": text("grid", lang), "orders": text("orders", lang),
                              "per_1000": text("per 1000", lang), "open": text("open orders", lang),
                              "overdue": text("overdue orders", lang)},
    )  # fmt: skip
    late = v.open[v.open["colour"] == "red"] if len(v.open) else v.open
    rest = v.open[v.open["colour"] != "red"] if len(v.open) else v.open
    gm.points(rest, text("open in time", lang), colour="#fdae61", radius=4, label="type")
    gm.points(late, text("overdue orders", lang), colour="#d73027", radius=6, label="type")
    gm.points(v.hot_spots, text("hot spots", lang, n=md.HOT_SPOT), colour="#7b3294", radius=10,
              label="type")  # fmt: skip
    if len(v.grids):
        gm.search("code", v.grids)
    gm.legend(
        text("per 1000", lang),
        [(c, f"≥ {b:g}") for b, c in zip(RATE_BREAKS, RATE_COLOURS, strict=True)]
        + [("#d73027", text("overdue orders", lang)), ("#fdae61", text("open in time", lang)),
           ("#7b3294", text("hot spots", lang, n=md.HOT_SPOT))],
    )  # fmt: skip
    return gm


# --- the city: buildings from the vector tiles ----------------------------------------------

#: households per building: class breaks and colours (light → dark)
HOUSEHOLD_BREAKS = (20, 50, 100, 200)
HOUSEHOLD_COLOURS = ("#fee5d9", "#fcae91", "#fb6a4a", "#de2d26", "#a50f15")
BUILDING_TILES = "/collections/buildings/tiles/WebMercatorQuad/{z}/{x}/{y}"


def city_map(
    v: md.CityView, *, tiles: str = "none", lang: str = "zh", key: str | None = None
) -> GridMap:
    """Every building of the scope by households (vector tiles of this service: a tile
    carries only what the caller may read), with street and community outlines.
    """
    sc = v.scope
    gm = _map(text("city title", lang, scope=sc.name or v.city), sc.bounds(), tiles, lang, key)
    gm.polygons(v.communities, text("communities", lang), line="#777777", weight=0.5,
                tooltip={"code": text("code", lang), "name": text("community", lang)},
                tolerance=0.0002)  # fmt: skip
    gm.polygons(
        v.streets, text("street boundaries", lang), line="#333333", weight=1.5, tolerance=0.0005
    )
    gm.vector_tiles(
        BUILDING_TILES, "buildings", text("buildings by households", lang), by="households",
        breaks=HOUSEHOLD_BREAKS, colours=HOUSEHOLD_COLOURS,
        tooltip={"id": text("building", lang), "n": text("buildings n", lang),
                 "households": text("households", lang),
                 "residents": text("residents", lang), "elderly": text("elderly", lang)},
    )  # fmt: skip
    edges = (0, *HOUSEHOLD_BREAKS)
    rows = [(c, f"{edges[i]}–{edges[i + 1]}" if i + 1 < len(edges) else f"≥ {edges[i]}")
            for i, c in enumerate(HOUSEHOLD_COLOURS)]  # fmt: skip
    gm.legend(text("households", lang), rows, kind="dot", note=text("cells note", lang))
    if len(v.communities):
        gm.search("name", v.communities)
    return gm


# --- a province -----------------------------------------------------------------------------


def province_map(
    counties: pd.DataFrame,
    outlines: pd.DataFrame,
    types: pd.DataFrame,
    *,
    province: str,
    links: dict[str, str] | None = None,
    lang: str = "zh",
) -> GridMap:
    """Cities over counties, the counties shaded by covered share (one variant per type),
    each county's popup a link to its own map (``links``: code → address).

    ``counties``: the province report's county table; ``outlines``: code, city_code, name
    and geometry of each county; ``types``: the catalogue rows of the types shown.
    """
    g = outlines.merge(counties.drop(columns=["name", "city_code"]), on="code", how="left")
    bounds = tuple(float(v) for v in g.total_bounds)
    gm = _map(text("province title", lang, province=province), bounds, "none", lang, None)  # type: ignore[arg-type]
    names = types["name_zh" if lang == "zh" else "name_en"].tolist()
    variants = []
    for i, (code, name) in enumerate(zip(types["code"], names, strict=True)):
        share = g.get(f"covered_{code}", pd.Series(np.nan, index=g.index))
        g[f"share{i}"], g[f"served{i}"], g[f"applies{i}"] = share, g["households"], share.notna()
        variants.append((name, f"share{i}", f"served{i}", f"applies{i}"))
    g["link"] = [
        {"href": links[c], "text": text("detail map", lang, name=n)} if links and c in links else str(n)
        for c, n in zip(g["code"], g["name"], strict=True)
    ]  # fmt: skip
    gm.switchable(g, text("county share", lang), variants,
                  {"code": text("county", lang), "name": text("county", lang)})  # fmt: skip
    gm.polygons(g, text("counties", lang), line="#444444", weight=0.8, popup="link",
                tooltip={"name": text("county", lang), "households": text("households", lang),
                         "grids": text("grids n", lang), "grid_workers": text("grid workers", lang)})  # fmt: skip
    cities = outlines.dissolve(by="city_code", as_index=False)[["city_code", "geometry"]]
    gm.polygons(cities, text("cities", lang), line="#000000", weight=2.5)
    gm.search("name", g)
    gm.legend(text("county share", lang), share_legend(lang))
    return gm
