"""What each map shows, computed (the maps package only draws it).

Per map kind, a dataclass of plain frames: the units with their shares, loads or flags, the
facilities and service areas, the uncovered-household cells, the scenario's before and
after. Everything a map needs to compute — a coverage run for a street, walking service
areas, the colouring of neighbouring workers, quota flags — happens here, once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

import networkx as nx
import numpy as np
import pandas as pd

import geopandas as gpd
import shapely

from gis import network as gnet
from gis import settings
from gis.coverage import Coverage, compute
from gis.crs import metric_crs_of
from gis.errors import AccessError, InputFileError, NotFoundError, ValidationError
from gis.io import locate
from gis.staffing import StaffRules

Frames = dict[str, pd.DataFrame]

#: the layers each map kind reads
LAYERS = {
    "coverage_city": ("districts", "streets", "communities", "facility_types", "coverage", "settings"),
    "detail": (
        "districts", "streets", "communities", "facility_types", "buildings", "facilities",
        "grids", "roads", "assignments", "workers", "settings", "quotas",
    ),
    "staffing_city": ("streets", "communities", "buildings", "workers", "settings", "quotas"),
    "orders": ("districts", "streets", "communities", "grids", "orders", "settings"),
    "city": ("districts", "streets", "communities", "settings"),
    "scenario": (
        "streets", "communities", "facility_types", "buildings", "facilities", "grids", "roads",
        "scenarios", "settings",
    ),
}  # fmt: skip


def _empty_gdf(*columns: str) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(columns=[*columns, "geometry"], geometry="geometry", crs=4326)


@dataclass
class Scope:
    """Where a map looks: the whole city, a district, a street or a community."""

    level: str  # city | district | street | community
    code: str | None
    name: str
    communities: gpd.GeoDataFrame

    @property
    def detail(self) -> bool:
        """Whether the map shows one street or community in detail."""
        return self.level in ("street", "community")

    def bounds(self) -> tuple[float, float, float, float]:
        """The scope's extent (EPSG:4326)."""
        b = self.communities.total_bounds
        return float(b[0]), float(b[1]), float(b[2]), float(b[3])


def scope(
    f: Frames,
    street: str | None = None,
    community: str | None = None,
    *,
    within: str | None = None,
    district: str | None = None,
) -> Scope:
    """The scope of a map, with a clear error for a code the store does not hold.

    ``within``: the caller's jurisdiction (a district, street or community code): a scope
    outside it is refused, and without a district, street or community the map shows the
    jurisdiction itself.
    """
    need(f, "communities")
    comms = f["communities"]
    if sum(x is not None for x in (street, community, district)) > 1:
        raise ValidationError("map", ["give one of district, street or community"])
    asked = community or street or district
    if asked and within and not str(asked).startswith(within):
        raise AccessError(f"{asked} lies outside your jurisdiction ({within})")
    if not asked and within:
        level = {6: "district", 9: "street", 12: "community"}[len(within)]
        return scope(f, **{level: within})  # type: ignore[arg-type]
    if district:
        return _named(f, "district", district)
    if community:
        sel = comms[comms["code"] == community]
        if not len(sel):
            raise ValidationError("map", [f"no community {community!r} in the store"])
        return Scope("community", community, str(sel["name"].iloc[0]), sel)
    if street:
        return _named(f, "street", street)
    return Scope("city", None, "", comms)


def _named(f: Frames, level: str, code: str) -> Scope:
    """The scope of a district or street: its communities, its name from its layer."""
    comms = f["communities"]
    sel = comms[comms[f"{level}_code"] == code]
    if not len(sel):
        raise ValidationError("map", [f"no {level} {code!r} in the store"])
    layer = {"district": "districts", "street": "streets"}[level]
    names = f[layer].set_index("code")["name"] if layer in f else pd.Series()
    return Scope(level, code, str(names.get(code, code)), sel)


def need(f: Frames, *layers: str) -> None:
    """One clear error for the layers a map needs that the store does not hold."""
    missing = [x for x in layers if x not in f]
    if missing:
        raise InputFileError(
            f"the store holds no {', '.join(missing)} yet; build them first "
            "(gridgis demo, or import, grids build, staff quota, staff assign)"
        )


def in_scope(f: Frames, sc: Scope, name: str) -> gpd.GeoDataFrame:
    """The rows of a layer with a ``community_code`` inside the scope."""
    df = f.get(name)
    if df is None or not len(df):
        return _empty_gdf("code")
    return df[df["community_code"].isin(set(sc.communities["code"]))].reset_index(drop=True)


def workers_of_grids(f: Frames) -> pd.DataFrame:
    """grid_code → worker_id, worker name."""
    if "assignments" not in f or "workers" not in f:
        return pd.DataFrame(columns=["grid_code", "worker_id", "worker"])
    a = f["assignments"][["grid_code", "worker_id"]]
    names = f["workers"].set_index("id")["name"]
    return a.assign(worker=a["worker_id"].map(names).fillna(a["worker_id"]))


def type_row(f: Frames, type_code: str) -> pd.Series:
    """The catalogue row of a facility type (clear error for an unknown one)."""
    types = f["facility_types"].set_index("code")
    if type_code not in types.index:
        raise ValidationError(
            "map",
            [f"unknown facility type {type_code!r}; the catalogue has {', '.join(types.index)}"],
        )
    row = types.loc[type_code].copy()
    row["code"] = type_code
    return row


def rules_of(f: Frames) -> settings.CityRules:
    """The city's stored rules."""
    return settings.decode(f.get("settings"))


def network_mode(f: Frames) -> str:
    """The coverage mode of the city: stored, else walking when there are roads."""
    stored = rules_of(f).coverage_mode
    return stored or ("network" if "roads" in f and len(f["roads"]) else "line")


# --- coverage -------------------------------------------------------------------------------


@dataclass
class CoverageDetail:
    """A street or community: shares per grid (or community), gaps, facilities."""

    scope: Scope
    type: pd.Series
    mode: str
    level: str  # grid | community
    units: gpd.GeoDataFrame  # code, community, served, share, worker
    roads: gpd.GeoDataFrame
    uncovered: gpd.GeoDataFrame  # cells: households, class (0–3 by quartile)
    gaps: gpd.GeoDataFrame  # served
    facilities: gpd.GeoDataFrame  # id, name
    service_areas: gpd.GeoDataFrame | None
    has_grids: bool


def coverage_detail(
    f: Frames, type_code: str | None, sc: Scope, *, min_buildings: int | None = None
) -> CoverageDetail:
    """Coverage of one type in a street or community, computed for the buildings there.

    ``min_buildings`` (for callers who may not see below a grid): ``None`` shows uncovered
    households in 100 m cells and the households of each gap; ``0`` sums them per grid
    (community where there are no grids) and leaves gaps without counts; ``k > 0`` keeps
    only cells of at least ``k`` buildings.
    """
    need(f, "communities", "facility_types", "buildings", "facilities")
    t = type_row(f, type_code or "community_service_station")
    mode = network_mode(f)
    b = in_scope(f, sc, "buildings")
    grids = in_scope(f, sc, "grids")
    cv = compute(b, f["facilities"], f["facility_types"], sc.communities,
                 grids=grids if len(grids) else None, roads=f.get("roads"), mode=mode,
                 only=[t["code"]])  # fmt: skip
    level = "grid" if len(grids) else "community"
    units = (grids if len(grids) else sc.communities).copy()
    share = cv.table[cv.table["level"] == level].set_index("code")
    units["served"] = units["code"].map(share["served"]).fillna(0).round().astype(int)
    units["share"] = units["code"].map(share["share"])
    units["applies"] = units["code"].map(_applies(share)).fillna(True).astype(bool)
    cnames = sc.communities.set_index("code")["name"]
    units["community"] = (units["community_code"] if level == "grid" else units["code"]).map(cnames)
    w = workers_of_grids(f).set_index("grid_code")
    units["worker"] = units["code"].map(w["worker"]) if level == "grid" else None
    covered = cv.buildings[f"covered_{t['code']}"].to_numpy()
    unc = b[~covered]
    fac = f["facilities"]
    view = shapely.box(*sc.communities.total_bounds).buffer(0.01)
    fac = fac[(fac["type"] == t["code"]) & fac.within(view)].reset_index(drop=True)
    areas = None
    if mode == "network" and len(fac):
        assert cv.space is not None and cv.space.network is not None
        areas = service_areas(fac, cv.space.network, cv.space.crs, float(t["radius_m"]))
    if min_buildings == 0:  # never below the unit: sums per grid (or community)
        assert cv.space is not None
        unit_of = cv.space.units["grid" if level == "grid" else "community"].to_numpy()[~covered]
        hh = pd.Series(unc["households"].to_numpy(), index=unit_of).groupby(level=0).sum()
        cells = units[["code", "geometry"]].assign(
            households=units["code"].map(hh).fillna(0).astype(int)
        )
        cells = _classed(cells[cells["households"] > 0].reset_index(drop=True))
    else:
        cells = density(unc, cell=100.0, min_buildings=min_buildings or 0)
    gaps = cv.gaps.assign(served=cv.gaps["served"].round().astype(int))
    if min_buildings is not None:
        gaps = gaps.drop(columns="served")
    return CoverageDetail(sc, t, mode, level, units, roads_in_view(f, sc), cells, gaps, fac, areas,
                          bool(len(grids)))  # fmt: skip


def roads_in_view(f: Frames, sc: Scope) -> gpd.GeoDataFrame:
    """The roads crossing the scope's extent."""
    roads = f.get("roads")
    if roads is None or not len(roads):
        return _empty_gdf("id")
    return roads[roads.intersects(shapely.box(*sc.communities.total_bounds))]


def density(
    b: gpd.GeoDataFrame, cell: float, column: str = "households", *, min_buildings: int = 0
) -> gpd.GeoDataFrame:
    """Square cells of ``cell`` metres with the summed ``column`` of the buildings in each
    (only cells of at least ``min_buildings`` buildings), classed 0–3 by quartile.
    """
    if not len(b):
        return _empty_gdf("households", "class")
    metric = metric_crs_of(b)
    xy = shapely.get_coordinates(b.to_crs(metric).geometry.values)
    ij = np.floor(xy / cell).astype(np.int64)
    keys, inv = np.unique(ij, axis=0, return_inverse=True)
    hh = np.bincount(inv.ravel(), weights=b[column].to_numpy(dtype=float))
    n = np.bincount(inv.ravel())
    keep = n >= min_buildings
    keys, hh = keys[keep], hh[keep]
    boxes = shapely.box(keys[:, 0] * cell, keys[:, 1] * cell, (keys[:, 0] + 1) * cell,
                        (keys[:, 1] + 1) * cell)  # fmt: skip
    g = gpd.GeoDataFrame({"households": hh.round().astype(int)}, geometry=boxes, crs=metric)
    return _classed(g.to_crs(4326))


def _classed(g: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """``g`` with ``class`` 0–3: the quartile of its households."""
    hh = g["households"].to_numpy(dtype=float)
    breaks = np.quantile(hh, [0.25, 0.5, 0.75]) if len(hh) > 3 else [1, 2, 3]
    return g.assign(**{"class": np.searchsorted(breaks, hh, side="right")})


def service_areas(
    fac: gpd.GeoDataFrame, net: gnet.Network, metric: object, radius: float
) -> gpd.GeoDataFrame:
    """Each facility's walking service area: the road segments within ``radius`` metres on
    the network (access walk included), widened by 25 m.
    """
    fxy = shapely.get_coordinates(fac.to_crs(metric).geometry.values)
    areas = gnet.reach_areas(net, fxy, radius, widen=25.0)
    return gpd.GeoDataFrame({"id": fac["id"].to_numpy()}, geometry=areas, crs=metric).to_crs(4326)


@dataclass
class CoverageOverview:
    """The city: each community's covered share per facility type (stored coverage)."""

    city: str
    types: pd.DataFrame  # the catalogue rows shown
    communities: gpd.GeoDataFrame  # code, name, share<i>, served<i> per type i
    streets: gpd.GeoDataFrame | None
    districts: gpd.GeoDataFrame | None
    missing: list[str]  # types with no stored coverage (codes)


def coverage_overview(
    f: Frames, type_code: str | None, lang: str = "zh", *, within: str | None = None
) -> CoverageOverview:
    """Communities shaded by the stored covered share, per type (only those in ``within``,
    a district, street or community code, when given).
    """
    need(f, "communities", "facility_types", "coverage")
    if within:
        f = {
            **f,
            **{n: _within(f[n], within) for n in ("communities", "streets", "districts") if n in f},
        }
    types = f["facility_types"]
    if type_code:
        type_row(f, type_code)
        types = types[types["code"] == type_code]
    table = f["coverage"]
    table = table[table["level"] == "community"]
    base = f["communities"][["code", "name", "geometry"]].copy()
    missing = []
    for i, t in enumerate(types.itertuples(index=False)):
        s = table[table["type"] == t.code].set_index("code")
        if not len(s):
            missing.append(str(t.code))
        base[f"share{i}"] = base["code"].map(s["share"])
        base[f"served{i}"] = base["code"].map(s["served"])
        base[f"applies{i}"] = base["code"].map(_applies(s)).fillna(True).astype(bool)
    return CoverageOverview(rules_of(f).name(lang), types.reset_index(drop=True), base,
                            f.get("streets"), f.get("districts"), missing)  # fmt: skip


def _applies(table: pd.DataFrame) -> pd.Series:
    """Per unit code, whether the type applies there (tables stored before the column
    existed: everywhere).
    """
    if "applies" not in table:
        return pd.Series(True, index=table.index)
    return table["applies"].astype("boolean").fillna(True)


def _within(units: gpd.GeoDataFrame, code: str) -> gpd.GeoDataFrame:
    """The units inside ``code`` and the ones holding it (a street's own district)."""
    c = units["code"].astype(str)
    return units[c.str.startswith(code) | c.map(code.startswith)].reset_index(drop=True)


# --- staffing -------------------------------------------------------------------------------

FLAGS = ("ok", "below_minimum", "under_quota", "over_quota")


@dataclass
class StaffingView:
    """Communities with quota, roster and a flag; in detail, grids by responsible worker."""

    city: str
    scope: Scope
    rules: StaffRules
    communities: gpd.GeoDataFrame  # name, households, quota, roster, flag
    grids: gpd.GeoDataFrame  # code, worker_id, worker, households, load, band, colour
    out_of_band: gpd.GeoDataFrame = field(default_factory=lambda: _empty_gdf("code"))
    roads: gpd.GeoDataFrame | None = None  # in detail: the streets and paths grids follow


def staffing(f: Frames, sc: Scope, lang: str = "zh") -> StaffingView:
    """Stored quotas against the roster, and in detail each grid's worker and load."""
    need(f, "communities", "buildings", "quotas")  # quotas: gridgis staff quota
    rules = rules_of(f)
    hh = f["buildings"].groupby("community_code")["households"].sum()
    q = f["quotas"].set_index("code")
    roster = (
        f["workers"].groupby("community_code").size() if "workers" in f else pd.Series(dtype=int)
    )
    comms = sc.communities.copy()
    comms["households"] = comms["code"].map(hh).fillna(0).astype(int)
    comms["quota"] = comms["code"].map(q["quota"]).fillna(0).astype(int)
    comms["roster"] = comms["code"].map(roster).fillna(0).astype(int)
    low = (comms["kind"] == "urban") & (comms["roster"] < rules.staff.urban_min)
    comms["flag"] = np.select(
        [low, comms["roster"] < comms["quota"], comms["roster"] > comms["quota"]],
        list(FLAGS[1:]),
        FLAGS[0],
    )
    view = StaffingView(rules.name(lang), sc, rules.staff, comms, _empty_gdf("code"))
    if not sc.detail:
        return view
    view.roads = roads_in_view(f, sc)
    grids = in_scope(f, sc, "grids")
    g = grids.merge(workers_of_grids(f), left_on="code", right_on="grid_code", how="left")
    load = g.groupby("worker_id")["households"].sum()
    g["load"] = g["worker_id"].map(load).fillna(0).astype(int)
    lo, hi = rules.staff.policy_range
    g["band"] = np.where(g["worker_id"].isna(), "none",
                         np.where((g["load"] >= lo) & (g["load"] <= hi), "in", "out"))  # fmt: skip
    g["colour"] = g["worker_id"].map(colour_workers(g)).astype("Int64")
    view.grids = g
    view.out_of_band = g[g["band"] == "out"]
    return view


def colour_workers(g: gpd.GeoDataFrame) -> pd.Series:
    """A colour number per worker such that workers with touching grids differ (greedy
    colouring of the worker adjacency graph, largest first).
    """
    g = g[g["worker_id"].notna()].reset_index(drop=True)
    graph = nx.Graph()
    graph.add_nodes_from(g["worker_id"].unique())
    if len(g) > 1:
        tree = shapely.STRtree(g.geometry.values)
        a, b = tree.query(g.geometry.values, predicate="intersects")
        wa, wb = g["worker_id"].to_numpy()[a], g["worker_id"].to_numpy()[b]
        graph.add_edges_from((x, y) for x, y in zip(wa, wb, strict=True) if x != y)
    return pd.Series(nx.greedy_color(graph, strategy="largest_first"), dtype="Int64")


# --- scenario -------------------------------------------------------------------------------


@dataclass
class ScenarioView:
    """A saved scenario: sites, shares before and after per unit, newly covered units."""

    name: str
    scope: Scope
    type: pd.Series
    level: str
    units: gpd.GeoDataFrame  # code, share_before, share_after
    newly: gpd.GeoDataFrame  # code, before, after
    sites: gpd.GeoDataFrame  # id
    facilities: gpd.GeoDataFrame  # existing ones in view: id, name
    ranking: pd.DataFrame  # rank, id, newly_covered, share_after (a site test)
    results: dict  # the stored results (an optimisation's objective, gap, …)


def scenario(
    f: Frames, name: str, street: str | None = None, *, within: str | None = None
) -> ScenarioView:
    """Coverage before and after a saved scenario's sites, in the streets they lie in (or
    ``street``; inside ``within``, the caller's jurisdiction, when given).
    """
    need(f, "scenarios", "communities", "buildings", "facilities", "facility_types")
    rows = f["scenarios"]
    row = rows[rows["id"] == name]
    if not len(row):
        known = ", ".join(rows["id"]) or "none"
        raise NotFoundError("map", [f"no scenario named {name!r} (saved: {known})"])
    row = row.iloc[0]
    results = json.loads(row["results"] or "{}")
    sites = pd.DataFrame(json.loads(row["sites"]))
    t = type_row(f, results.get("type") or sites["type"].iloc[0])
    pts = gpd.GeoDataFrame(sites, geometry=gpd.points_from_xy(sites["lon"], sites["lat"]), crs=4326)
    sc = scope(f, street, within=within) if street is not None or within else _streets_of(f, pts)
    b, grids = in_scope(f, sc, "buildings"), in_scope(f, sc, "grids")
    mode = network_mode(f)
    extra = gpd.GeoDataFrame(
        {"id": pts["id"].astype(str), "name": pts["id"].astype(str), "type": t["code"],
         "area_m2": pd.to_numeric(pts.get("area_m2"), errors="coerce"), "status": "existing"},
        geometry=pts.geometry.values, crs=4326,
    )  # fmt: skip

    def cover(facilities: pd.DataFrame, network: gnet.Network | None = None) -> Coverage:
        return compute(b, facilities, f["facility_types"], sc.communities,
                       grids=grids if len(grids) else None, roads=f.get("roads"), mode=mode,
                       only=[t["code"]], gaps=False, network=network)  # fmt: skip

    before = cover(f["facilities"])
    net = before.space.network if before.space is not None else None
    after = cover(pd.concat([f["facilities"], extra], ignore_index=True), net)
    level = "grid" if len(grids) else "community"
    units = (grids if len(grids) else sc.communities)[["code", "geometry"]].copy()
    for label, cv in (("before", before), ("after", after)):
        s = cv.table[cv.table["level"] == level].set_index("code")
        units[f"share_{label}"] = units["code"].map(s["share"])
    gain = (units["share_after"].fillna(0) - units["share_before"].fillna(0)) > 1e-9
    view = shapely.box(*sc.communities.total_bounds).buffer(0.01)
    fac = f["facilities"]
    fac = fac[(fac["type"] == t["code"]) & fac.within(view)].reset_index(drop=True)
    ranking = pd.DataFrame(results.get("ranking") or [])
    return ScenarioView(name, sc, t, level, units, units[gain.to_numpy()].copy(),
                        pts[["id", "geometry"]], fac, ranking, results)  # fmt: skip


def _streets_of(f: Frames, pts: gpd.GeoDataFrame) -> Scope:
    comm = locate(pts.geometry, f["communities"]).dropna()
    streets = sorted({c[:9] for c in comm})
    sel = f["communities"][f["communities"]["street_code"].isin(streets)]
    names = f["streets"].set_index("code")["name"] if "streets" in f else pd.Series()
    return Scope("street", ",".join(streets), "、".join(str(names.get(s, s)) for s in streets), sel)


#: the same category at one building this many times or more is a hot spot
HOT_SPOT = 3


@dataclass
class OrdersView:
    """Work orders in a scope: grids by orders per 1,000 households, the open orders
    (overdue highlighted) and the hot spots where one category recurs at one place.
    """

    city: str
    scope: Scope
    grids: gpd.GeoDataFrame  # code, households, orders, per_1000, open, overdue
    open: gpd.GeoDataFrame  # id, type, state, colour
    hot_spots: gpd.GeoDataFrame  # building_id, type, orders


def orders(f: Frames, sc: Scope, at: datetime, lang: str = "zh") -> OrdersView:
    """What the orders map draws (no reporter contacts: they never reach a map)."""
    from gis import orders as om

    need(f, "communities", "grids")
    rules = rules_of(f)
    grids = in_scope(f, sc, "grids")
    o = in_scope(f, sc, "orders") if "orders" in f else _empty_gdf("id")
    g = grids[["code", "households", "geometry"]].copy()
    if len(o):
        o = o.assign(colour=om.colours(o, at))
        by = o.groupby("grid_code")
        g["orders"] = g["code"].map(by.size()).fillna(0).astype(int)
        g["open"] = (
            g["code"]
            .map(by["state"].apply(lambda x: int(x.isin(om.OPEN).sum())))
            .fillna(0)
            .astype(int)
        )
        g["overdue"] = (
            g["code"]
            .map(by["colour"].apply(lambda x: int((x == "red").sum())))
            .fillna(0)
            .astype(int)
        )
        still = o[o["state"].isin(om.OPEN)]
        names = {k: v.name_zh if lang == "zh" else k for k, v in om.catalogue().items()}
        opened = still.assign(type=still["type"].map(names).fillna(still["type"]),
                              state=still["state"].map(om.STATE_ZH) if lang == "zh" else still["state"])  # fmt: skip
        opened = gpd.GeoDataFrame(opened[["id", "type", "state", "colour", "geometry"]], crs=o.crs)
        rep = o.dropna(subset=["building_id"]).groupby(["building_id", "type"])
        hot = rep.size().rename("orders").reset_index()
        hot = hot[hot["orders"] >= HOT_SPOT]
        first = (
            o.drop_duplicates(["building_id", "type"]).set_index(["building_id", "type"]).geometry
        )
        hot_geoms = [
            first.loc[(b, t)] for b, t in zip(hot["building_id"], hot["type"], strict=True)
        ]
        hot = gpd.GeoDataFrame(
            hot.assign(type=hot["type"].map(names)), geometry=hot_geoms, crs=o.crs
        )
    else:
        g["orders"] = g["open"] = g["overdue"] = 0
        opened = _empty_gdf("id", "type", "state", "colour")
        hot = _empty_gdf("building_id", "type", "orders")
    g["per_1000"] = (g["orders"] / g["households"].where(g["households"] > 0) * 1000).round(1)
    return OrdersView(rules.name(lang), sc, gpd.GeoDataFrame(g, crs=grids.crs), opened, hot)


@dataclass
class CityView:
    """The supervisor city map: street and community outlines of the scope; the buildings
    come as vector tiles (600,000 of them could not be embedded).
    """

    city: str
    scope: Scope
    streets: gpd.GeoDataFrame  # code, name
    communities: gpd.GeoDataFrame  # code, name


def city(f: Frames, sc: Scope, lang: str = "zh") -> CityView:
    """What the city map draws around its building tiles."""
    need(f, "communities")
    comms = sc.communities[["code", "name", "street_code", "geometry"]]
    if "streets" in f:
        st = f["streets"][f["streets"]["code"].isin(set(comms["street_code"]))][
            ["code", "name", "geometry"]
        ]
    else:
        st = _empty_gdf("code", "name")
    return CityView(
        rules_of(f).name(lang), sc, st.reset_index(drop=True), comms.reset_index(drop=True)
    )
