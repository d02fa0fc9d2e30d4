"""The three map kinds: coverage, staffing and scenario, for the city or one street or
community. Each takes the store's layers (a dict of frames) and returns a
:class:`~maps.base.GridMap`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import networkx as nx
import numpy as np
import pandas as pd
from scipy.sparse.csgraph import dijkstra

import geopandas as gpd
import shapely

from gis import network as gnet
from gis.coverage import Coverage, Space, compute
from gis.crs import metric_crs_of
from gis.errors import InputFileError, NotFoundError, ValidationError
from gis.staffing import StaffRules, quotas
from maps.base import (
    CATEGORY_COLOURS,
    NO_DATA,
    GridMap,
    share_colour,
    share_legend,
)

Frames = dict[str, pd.DataFrame]

# the city overview stays light: geometry simplified to about 30 m
OVERVIEW_TOLERANCE = 0.0003


@dataclass
class Scope:
    """Where a map looks: the whole city, one street or one community."""

    level: str  # city | street | community
    code: str | None
    name: str
    communities: gpd.GeoDataFrame

    @property
    def detail(self) -> bool:
        """Whether the map shows one street or community in detail."""
        return self.level != "city"


def scope(f: Frames, street: str | None = None, community: str | None = None) -> Scope:
    """The scope of a map, with a clear error for a code the store does not hold."""
    comms = f["communities"]
    if street and community:
        raise ValidationError("map", ["give --street or --community, not both"])
    if community:
        sel = comms[comms["code"] == community]
        if not len(sel):
            raise ValidationError("map", [f"no community {community!r} in the store"])
        return Scope("community", community, str(sel["name"].iloc[0]), sel)
    if street:
        sel = comms[comms["street_code"] == street]
        if not len(sel):
            raise ValidationError("map", [f"no street {street!r} in the store"])
        names = f["streets"].set_index("code")["name"] if "streets" in f else pd.Series()
        return Scope("street", street, str(names.get(street, street)), sel)
    return Scope("city", None, "", comms)


def _need(f: Frames, *layers: str) -> None:
    missing = [x for x in layers if x not in f]
    if missing:
        raise InputFileError(
            f"the store holds no {', '.join(missing)} yet; build them first "
            "(gridgis demo, or import, grids build, staff assign)"
        )


def _bounds(gdf: gpd.GeoDataFrame) -> tuple[float, float, float, float]:
    b = gdf.total_bounds
    return float(b[0]), float(b[1]), float(b[2]), float(b[3])


def _in_scope(f: Frames, sc: Scope, name: str) -> gpd.GeoDataFrame:
    df = f.get(name)
    if df is None or not len(df):
        return gpd.GeoDataFrame(columns=["code", "geometry"], geometry="geometry", crs=4326)
    codes = set(sc.communities["code"])
    return df[df["community_code"].isin(codes)].reset_index(drop=True)


def _workers_of_grids(f: Frames) -> pd.DataFrame:
    """grid_code → worker_id, worker name."""
    if "assignments" not in f or "workers" not in f:
        return pd.DataFrame(columns=["grid_code", "worker_id", "worker"])
    a = f["assignments"][["grid_code", "worker_id"]]
    names = f["workers"].set_index("id")["name"]
    return a.assign(worker=a["worker_id"].map(names).fillna(a["worker_id"]))


def _type_row(f: Frames, type_code: str) -> pd.Series:
    types = f["facility_types"].set_index("code")
    if type_code not in types.index:
        raise ValidationError(
            "map",
            [f"unknown facility type {type_code!r}; the catalogue has {', '.join(types.index)}"],
        )
    return types.loc[type_code]


def coverage_map(
    f: Frames,
    type_code: str | None = None,
    *,
    street: str | None = None,
    community: str | None = None,
    tiles: str = "none",
    lang: str = "zh",
    key: str | None = None,
    links: dict[str, str] | None = None,
) -> GridMap:
    """Coverage of a facility type (all types for the city overview when none is given)."""
    _need(f, "communities", "facility_types")
    sc = scope(f, street, community)
    if not sc.detail:
        return _coverage_overview(f, type_code, tiles=tiles, lang=lang, key=key, links=links)
    type_code = type_code or "community_service_station"
    t = _type_row(f, type_code)
    _need(f, "buildings", "facilities")
    mode = "network" if "roads" in f and len(f["roads"]) else "line"
    b = _in_scope(f, sc, "buildings")
    grids = _in_scope(f, sc, "grids")
    cv = compute(
        b,
        f["facilities"],
        f["facility_types"],
        sc.communities,
        grids=grids if len(grids) else None,
        roads=f.get("roads"),
        mode=mode,
        only=[type_code],
    )
    zh = lang == "zh"
    name = t["name_zh"] if zh else t["name_en"]
    how = ("步行" if zh else "walk") if mode == "network" else ("直线" if zh else "straight")
    gm = GridMap(
        f"{sc.name} · {name} {'覆盖' if zh else 'coverage'} ({t['radius_m']:g} m {how})",
        _bounds(sc.communities),
        tiles=tiles,
        lang=lang,
        key=key,
    )
    table = cv.table
    units = grids if len(grids) else sc.communities
    level = "grid" if len(grids) else "community"
    share = table[table["level"] == level].set_index("code")
    u = units.copy()
    u["served"] = u["code"].map(share["served"]).fillna(0).round().astype(int)
    u["share_pct"] = u["code"].map(share["share"]).map(lambda v: "—" if pd.isna(v) else f"{v:.0%}")
    u["fill"] = share_colour(u["code"].map(share["share"]))
    cnames = sc.communities.set_index("code")["name"]
    u["community"] = (u["community_code"] if level == "grid" else u["code"]).map(cnames)
    w = _workers_of_grids(f).set_index("grid_code")
    u["worker"] = u["code"].map(w["worker"]).fillna("—") if level == "grid" else "—"
    gm.polygons(
        u,
        f"{'网格' if level == 'grid' else '社区'}覆盖率" if zh else f"{level} covered share",
        fill=u["fill"],
        tooltip={
            "code": "代码" if zh else "code",
            "community": "社区" if zh else "community",
            "served": "服务对象" if zh else "served",
            "share_pct": "覆盖率" if zh else "covered",
            "worker": "责任网格员" if zh else "worker",
        },
    )
    gm.polygons(
        sc.communities,
        "社区边界" if zh else "community boundaries",
        line="#222222",
        weight=2.5,
    )
    _roads(gm, f, sc, zh)
    # uncovered households as density squares (100 m)
    unc = b[~cv.buildings[f"covered_{type_code}"].to_numpy()]
    dens = _density(unc, served_col="households", cell=100.0)
    gm.polygons(
        dens,
        "未覆盖户数密度" if zh else "uncovered households",
        fill=dens["fill"] if len(dens) else None,
        line="#00000000",
        weight=0,
        opacity=0.55,
        tooltip={"households": "未覆盖户数" if zh else "uncovered households"},
        show=False,
    )
    gaps = cv.gaps
    gm.polygons(
        gaps.assign(served=gaps["served"].round().astype(int)),
        "覆盖缺口" if zh else "gap areas",
        fill="#7b3294",
        line="#7b3294",
        weight=0.6,
        opacity=0.22,
        tooltip={"served": "缺口内服务对象" if zh else "served in gap"},
    )
    fac = f["facilities"]
    view = shapely.box(*sc.communities.total_bounds).buffer(0.01)
    fac = fac[(fac["type"] == type_code) & fac.within(view)].reset_index(drop=True)
    if mode == "network" and len(fac):
        assert cv.space is not None
        areas = service_areas(fac, cv.space, float(t["radius_m"]))
        gm.polygons(
            areas,
            "服务范围 (步行)" if zh else "service areas (walking)",
            fill="#2c7bb6",
            line="#2c7bb6",
            weight=1,
            opacity=0.15,
        )
        gm.points(fac, name, colour="#2c7bb6", label="name")
    else:
        gm.points(fac, name, colour="#2c7bb6", label="name", circle_m=float(t["radius_m"]))
    if len(grids):
        gm.search("code", u)
    gm.search("name", sc.communities)
    notes = []
    if not len(grids):
        notes.append("该范围尚无网格，按社区着色" if zh else "no grids here: shaded by community")
    if not len(fac):
        notes.append(f"该范围无{name}" if zh else f"no {name} here")
    if not len(gaps):
        notes.append("无覆盖缺口" if zh else "no gap areas")
    gm.legend(
        "覆盖率" if zh else "covered share",
        share_legend(lang),
        note="；".join(notes) if zh else "; ".join(notes),
    )
    gm.legend(
        "设施与缺口" if zh else "facilities and gaps",
        [("#2c7bb6", f"{name}（{t['radius_m']:g} m）"), ("#7b3294", "覆盖缺口" if zh else "gap")],
        kind="dot",
    )
    return gm


def _roads(gm: GridMap, f: Frames, sc: Scope, zh: bool) -> None:
    """The roads of the view, thin and grey, for orientation (and to check a base map)."""
    roads = f.get("roads")
    if roads is None or not len(roads):
        return
    view = shapely.box(*sc.communities.total_bounds)
    near = roads[roads.intersects(view)]
    gm.polygons(near, "道路" if zh else "roads", line="#9a9a9a", weight=0.7)


def _density(b: gpd.GeoDataFrame, served_col: str, cell: float) -> gpd.GeoDataFrame:
    """Square cells of ``cell`` metres with the summed ``served_col`` of the buildings."""
    if not len(b):
        return gpd.GeoDataFrame(columns=["households", "fill", "geometry"], crs=4326)
    metric = metric_crs_of(b)
    xy = shapely.get_coordinates(b.to_crs(metric).geometry.values)
    ij = np.floor(xy / cell).astype(np.int64)
    keys, inv = np.unique(ij, axis=0, return_inverse=True)
    hh = np.bincount(inv.ravel(), weights=b[served_col].to_numpy(dtype=float))
    boxes = shapely.box(keys[:, 0] * cell, keys[:, 1] * cell, (keys[:, 0] + 1) * cell,
                        (keys[:, 1] + 1) * cell)  # fmt: skip
    g = gpd.GeoDataFrame({"households": hh.round().astype(int)}, geometry=boxes, crs=metric)
    breaks = np.quantile(hh, [0.25, 0.5, 0.75]) if len(hh) > 3 else [1, 2, 3]
    colours = np.array(["#fcbba1", "#fc9272", "#ef3b2c", "#a50f15"], dtype=object)
    g["fill"] = colours[np.searchsorted(breaks, hh, side="right")]
    return g.to_crs(4326)


def service_areas(fac: gpd.GeoDataFrame, space: Space, radius: float) -> gpd.GeoDataFrame:
    """Each facility's walking service area: the road segments within ``radius`` metres
    on the coverage run's network (access walk included), widened by 25 m.
    """
    net, metric = space.network, space.crs
    assert net is not None
    fxy = shapely.get_coordinates(fac.to_crs(metric).geometry.values)
    v, a = gnet.snap(net, fxy)
    d = dijkstra(net.graph, directed=False, indices=v, limit=radius)
    d = d + a[:, None]
    coo = net.graph.tocoo()
    areas = []
    for i in range(len(fac)):
        ok = (d[i, coo.row] <= radius) & (d[i, coo.col] <= radius) & (coo.row < coo.col)
        segs = shapely.linestrings(
            np.stack([net.xy[coo.row[ok]], net.xy[coo.col[ok]]], axis=1)
        ) if ok.any() else np.array([shapely.Point(fxy[i])], dtype=object)  # fmt: skip
        areas.append(shapely.union_all(shapely.buffer(segs, 25.0, quad_segs=2)))
    g = gpd.GeoDataFrame({"id": fac["id"].to_numpy()}, geometry=areas, crs=metric)
    return g.to_crs(4326)


def _coverage_overview(
    f: Frames,
    type_code: str | None,
    *,
    tiles: str,
    lang: str,
    key: str | None,
    links: dict[str, str] | None,
) -> GridMap:
    """Whole city: communities shaded by covered share (one radio layer per type)."""
    _need(f, "coverage")
    zh = lang == "zh"
    comms = f["communities"]
    types = f["facility_types"]
    if type_code:
        _type_row(f, type_code)
        types = types[types["code"] == type_code]
    table = f["coverage"]
    table = table[table["level"] == "community"]
    title = "枣庄市 · 社区服务设施覆盖总览" if zh else "Community service coverage — overview"
    if type_code:
        title = f"枣庄市 · {types['name_zh'].iloc[0]}覆盖" if zh else f"{types['name_en'].iloc[0]}"
    gm = GridMap(title, _bounds(comms), tiles=tiles, lang=lang, key=key)
    base = comms[["code", "name", "geometry"]].copy()
    missing, variants = [], []
    for i, t in enumerate(types.itertuples(index=False)):
        s = table[table["type"] == t.code].set_index("code")
        if not len(s):
            missing.append(t.name_zh if zh else t.name_en)
        base[f"share{i}"] = base["code"].map(s["share"])
        base[f"served{i}"] = base["code"].map(s["served"])
        label = f"{t.name_zh if zh else t.name_en} ({t.radius_m:g} m)"
        variants.append((label, f"share{i}", f"served{i}"))
    gm.switchable(
        base,
        "社区覆盖率" if zh else "community covered share",
        variants,
        {"code": "社区代码" if zh else "code", "name": "社区" if zh else "community"},
        tolerance=OVERVIEW_TOLERANCE,
    )
    streets = f["streets"].copy() if "streets" in f else None
    if streets is not None:
        streets["link"] = [
            f"<a href='{links[c]}'>{n} 详细图</a>" if links and c in links else n
            for c, n in zip(streets["code"], streets["name"], strict=True)
        ]
        gm.polygons(
            streets,
            "街道/镇" if zh else "streets",
            line="#444444",
            weight=1.2,
            tooltip={"name": "街道/镇" if zh else "street"},
            popup="link",
            tolerance=OVERVIEW_TOLERANCE,
        )
    if "districts" in f:
        gm.polygons(
            f["districts"], "区县" if zh else "districts", line="#000000", weight=2.5,
            tolerance=OVERVIEW_TOLERANCE,
        )  # fmt: skip
    gm.search("name", base)
    note = ("未计算覆盖: " if zh else "not computed: ") + ", ".join(missing) if missing else ""
    gm.legend("社区覆盖率" if zh else "community covered share", share_legend(lang), note=note)
    return gm


def staffing_map(
    f: Frames,
    *,
    street: str | None = None,
    community: str | None = None,
    tiles: str = "none",
    lang: str = "zh",
    key: str | None = None,
    rules: StaffRules | None = None,
) -> GridMap:
    """Grids coloured by responsible worker, loads against the band, communities flagged."""
    _need(f, "communities", "buildings")
    rules = rules or StaffRules()
    zh = lang == "zh"
    sc = scope(f, street, community)
    hh = f["buildings"].groupby("community_code")["households"].sum()
    q = quotas(f["communities"], hh, rules).set_index("code")
    roster = (
        f["workers"].groupby("community_code").size() if "workers" in f else pd.Series(dtype=int)
    )
    comms = sc.communities.copy()
    comms["households"] = comms["code"].map(hh).fillna(0).astype(int)
    comms["quota"] = comms["code"].map(q["quota"]).fillna(0).astype(int)
    comms["roster"] = comms["code"].map(roster).fillna(0).astype(int)
    low = (comms["kind"] == "urban") & (comms["roster"] < rules.urban_min)
    comms["flag"] = np.select(
        [low, comms["roster"] < comms["quota"], comms["roster"] > comms["quota"]],
        ["低于最低配备", "缺编", "超编"] if zh else ["below minimum", "under quota", "over quota"],
        "—",
    )
    title = (
        f"{sc.name or '枣庄市'} · 社区工作者配备" if zh else f"{sc.name or 'Zaozhuang'} staffing"
    )
    gm = GridMap(title, _bounds(sc.communities), tiles=tiles, lang=lang, key=key)
    flag_colour = {"—": "#1a9850"}
    palette = ["#d73027", "#fc8d59", "#4575b4"]
    for label, colour in zip(
        ["低于最低配备", "缺编", "超编"] if zh else ["below minimum", "under quota", "over quota"],
        palette,
        strict=True,
    ):
        flag_colour[label] = colour
    grids = _in_scope(f, sc, "grids") if sc.detail else gpd.GeoDataFrame()
    tips = {
        "name": "社区" if zh else "community",
        "households": "户数" if zh else "households",
        "quota": "定额" if zh else "quota",
        "roster": "在册" if zh else "roster",
        "flag": "提示" if zh else "flag",
    }
    if not sc.detail:
        gm.polygons(
            comms, "社区配备" if zh else "community staffing",
            fill=comms["flag"].map(flag_colour), line="#ffffff", weight=0.3, tooltip=tips,
            tolerance=OVERVIEW_TOLERANCE,
        )  # fmt: skip
    else:
        w = _workers_of_grids(f)
        g = grids.merge(w, left_on="code", right_on="grid_code", how="left")
        load = g.groupby("worker_id")["households"].sum()
        g["load"] = g["worker_id"].map(load).fillna(0).astype(int)
        g["worker"] = g["worker"].fillna("未分配" if zh else "unassigned")
        lo, hi = (int(x) for x in rules.policy_range)
        g["band"] = np.where(
            g["worker_id"].isna(),
            "—",
            np.where(
                (g["load"] >= lo) & (g["load"] <= hi),
                "✓",
                f"超出 {lo}–{hi}" if zh else "out of band",
            ),
        )
        g["fill"] = g["worker_id"].map(_colour_workers(g)).fillna(NO_DATA)
        gm.polygons(
            g,
            "网格（按责任网格员着色）" if zh else "grids by worker",
            fill=g["fill"],
            line="#ffffff",
            weight=1,
            opacity=0.7,
            tooltip={
                "code": "网格代码" if zh else "grid",
                "worker": "责任网格员" if zh else "worker",
                "households": "网格户数" if zh else "grid households",
                "load": "网格员总户数" if zh else "worker load",
                "band": f"{lo}–{hi} 户" if zh else f"{lo}–{hi} band",
            },
        )
        out = g[g["band"].str.startswith(("超出", "out"))]
        gm.polygons(
            out,
            "负荷超出范围的网格" if zh else "worker load out of band",
            line="#d73027",
            weight=2.5,
            dash="4 3",
        )
        gm.polygons(
            comms, "社区（配备提示）" if zh else "communities (flags)",
            line="#222222", weight=2.5, tooltip=tips,
        )  # fmt: skip
        flagged = comms[comms["flag"] != "—"]
        gm.polygons(
            flagged, "需关注的社区" if zh else "flagged communities",
            fill=flagged["flag"].map(flag_colour), opacity=0.25, line="#d73027", weight=3,
            tooltip=tips,
        )  # fmt: skip
        if len(g):
            gm.search("code", g)
    gm.search("name", comms)
    notes = []
    if sc.detail and not len(grids):
        notes.append("该范围尚无网格" if zh else "no grids here")
    gm.legend(
        "社区配备" if zh else "community staffing",
        [(c, k if k != "—" else ("达标" if zh else "as quota")) for k, c in flag_colour.items()],
        note="；".join(notes),
    )
    if sc.detail:
        gm.legend(
            "网格员" if zh else "workers",
            [
                (
                    CATEGORY_COLOURS[0],
                    "每种颜色一名网格员，相邻不同色" if zh else "one colour per worker",
                ),
                (
                    "#d73027",
                    f"负荷超出 {int(rules.policy_range[0])}–{int(rules.policy_range[1])} 户"
                    if zh
                    else "load out of band",
                ),
            ],
        )
    return gm


def _colour_workers(g: gpd.GeoDataFrame) -> pd.Series:
    """A colour per worker such that workers with touching grids differ (greedy colouring
    of the worker adjacency graph, largest first).
    """
    g = g[g["worker_id"].notna()].reset_index(drop=True)
    graph = nx.Graph()
    graph.add_nodes_from(g["worker_id"].unique())
    if len(g) > 1:
        tree = shapely.STRtree(g.geometry.values)
        a, b = tree.query(g.geometry.values, predicate="intersects")
        wa, wb = g["worker_id"].to_numpy()[a], g["worker_id"].to_numpy()[b]
        graph.add_edges_from((x, y) for x, y in zip(wa, wb, strict=True) if x != y)
    colours = nx.greedy_color(graph, strategy="largest_first")
    return pd.Series({w: CATEGORY_COLOURS[c % len(CATEGORY_COLOURS)] for w, c in colours.items()})


def scenario_map(
    f: Frames,
    name: str,
    *,
    street: str | None = None,
    tiles: str = "none",
    lang: str = "zh",
    key: str | None = None,
) -> GridMap:
    """A saved scenario: its sites beside existing facilities, coverage before and after,
    newly covered grids highlighted, the ranking in a side panel.
    """
    _need(f, "scenarios", "communities", "buildings", "facilities", "facility_types")
    sc_rows = f["scenarios"]
    row = sc_rows[sc_rows["id"] == name]
    if not len(row):
        known = ", ".join(sc_rows["id"]) or "none"
        raise NotFoundError("map", [f"no scenario named {name!r} (saved: {known})"])
    row = row.iloc[0]
    results = json.loads(row["results"] or "{}")
    sites = pd.DataFrame(json.loads(row["sites"]))
    type_code = results.get("type") or sites["type"].iloc[0]
    t = _type_row(f, type_code)
    zh = lang == "zh"
    pts = gpd.GeoDataFrame(sites, geometry=gpd.points_from_xy(sites["lon"], sites["lat"]), crs=4326)
    if street is None:
        from gis.io import locate

        comm = locate(pts.geometry, f["communities"]).dropna()
        streets = sorted({c[:9] for c in comm})
        sel = f["communities"][f["communities"]["street_code"].isin(streets)]
        sc = Scope("street", ",".join(streets), "", sel)
        names = f["streets"].set_index("code")["name"] if "streets" in f else pd.Series()
        sc.name = "、".join(str(names.get(s, s)) for s in streets)
    else:
        sc = scope(f, street)
    b = _in_scope(f, sc, "buildings")
    grids = _in_scope(f, sc, "grids")
    mode = "network" if "roads" in f and len(f["roads"]) else "line"
    extra = gpd.GeoDataFrame(
        {
            "id": pts["id"].astype(str),
            "name": pts["id"].astype(str),
            "type": type_code,
            "area_m2": pd.to_numeric(pts.get("area_m2"), errors="coerce"),
            "status": "existing",
        },
        geometry=pts.geometry.values,
        crs=4326,
    )

    def cover(facilities: pd.DataFrame, network: gnet.Network | None = None) -> Coverage:
        return compute(
            b, facilities, f["facility_types"], sc.communities,
            grids=grids if len(grids) else None, roads=f.get("roads"), mode=mode,
            only=[type_code], gaps=False, network=network,
        )  # fmt: skip

    before = cover(f["facilities"])
    net = before.space.network if before.space is not None else None
    after = cover(pd.concat([f["facilities"], extra], ignore_index=True), net)
    level = "grid" if len(grids) else "community"
    units = (grids if len(grids) else sc.communities).copy()
    tname = t["name_zh"] if zh else t["name_en"]
    gm = GridMap(
        f"{'方案' if zh else 'Scenario'} {name} · {tname} · {sc.name}",
        _bounds(sc.communities),
        tiles=tiles,
        lang=lang,
        key=key,
    )
    shares = {}
    for label, cv in (("前", before), ("后", after)):
        s = cv.table[cv.table["level"] == level].set_index("code")
        shares[label] = units["code"].map(s["share"])
        u = units.copy()
        u["share_pct"] = shares[label].map(lambda v: "—" if pd.isna(v) else f"{v:.0%}")
        u["fill"] = share_colour(shares[label])
        gm.polygons(
            u,
            (
                f"覆盖率（建设{label}）"
                if zh
                else f"covered share ({'before' if label == '前' else 'after'})"
            ),
            fill=u["fill"],
            line="#ffffff",
            weight=0.8,
            tooltip={"code": "代码" if zh else "code", "share_pct": "覆盖率" if zh else "covered"},
            show=label == "后",
            overlay=False,
        )
    gain = (shares["后"].fillna(0) - shares["前"].fillna(0)) > 1e-9
    newly = units[gain.to_numpy()].copy()
    newly["gain"] = [
        f"{a:.0%} → {c:.0%}" for a, c in zip(shares["前"][gain], shares["后"][gain], strict=True)
    ]
    gm.polygons(
        newly,
        "新增覆盖的网格" if zh else "newly covered grids",
        line="#08519c",
        weight=3.5,
        tooltip={"code": "代码" if zh else "code", "gain": "覆盖率变化" if zh else "change"},
    )
    gm.polygons(sc.communities, "社区边界" if zh else "communities", line="#222222", weight=2)
    view = shapely.box(*sc.communities.total_bounds).buffer(0.01)
    fac = f["facilities"]
    fac = fac[(fac["type"] == type_code) & fac.within(view)].reset_index(drop=True)
    gm.points(fac, ("现有" if zh else "existing ") + tname, colour="#2c7bb6", label="name")
    gm.points(
        pts.assign(label=pts["id"].astype(str)),
        "候选/选中站点" if zh else "candidate sites",
        colour="#e7298a",
        radius=8,
        label="label",
        circle_m=float(t["radius_m"]),
    )
    ranking = pd.DataFrame(results.get("ranking") or [])
    if len(ranking):
        table = ranking[["rank", "id", "newly_covered", "share_after"]].copy()
        table["share_after"] = table["share_after"].map(lambda v: f"{v:.2%}")
        table.columns = ["排名", "候选点", "新增覆盖", "覆盖率(后)"] if zh else table.columns
    else:
        table = pd.DataFrame(
            {
                ("指标" if zh else "item"): ["目标", "目标值", "最优性差距", "新增覆盖"]
                if zh
                else ["objective", "value", "gap", "newly covered"],
                ("值" if zh else "value"): [
                    results.get("objective_name"),
                    f"{results.get('objective', 0):,.1f}",
                    f"{results.get('gap', 0):.3%}",
                    f"{results.get('newly_covered', 0):,.0f}",
                ],
            }
        )
    gm.side_panel(("方案结果" if zh else "results") + f" — {name}", table)
    gm.search("code", units)
    notes = [] if len(newly) else ["无新增覆盖的网格" if zh else "no grid gains coverage"]
    gm.legend("覆盖率" if zh else "covered share", share_legend(lang), note="；".join(notes))
    gm.legend(
        "站点" if zh else "sites",
        [("#e7298a", "候选/选中站点" if zh else "candidate"), ("#2c7bb6", "现有设施" if zh else "existing"),
         ("#08519c", "新增覆盖网格" if zh else "newly covered")],
        kind="dot",
    )  # fmt: skip
    return gm
