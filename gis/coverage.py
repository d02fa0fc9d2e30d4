"""Service coverage and gaps (服务覆盖与缺口): who is beyond reach of which facility.

Per facility type of the catalogue: each building's distance to the nearest facility
(straight line in the metric zone, or walking distance on the road network), whether it is
within the type's service distance, the served population (households, or the type's group:
elderly, children, disabled, rural households) covered and uncovered per grid, community,
street, district and city; gap areas drawn from the building cells of uncovered buildings;
facility floor area per 100 households against the standard; and a capacity-aware
accessibility score (two-step floating catchment, 2SFCA).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

import geopandas as gpd
import shapely

from gis import network as gnet
from gis import schema
from gis.crs import metric_crs_of
from gis.errors import ValidationError
from gis.io import community_kind, locate

LEVELS = ("grid", "community", "street", "district", "city")


@dataclass
class Space:
    """What :func:`compute` measured once and siting reuses: the buildings in the metric
    zone with their KD-tree, the road network, the units each building belongs to.
    """

    crs: Any  # the metric CRS
    xy: np.ndarray  # building coordinates, metres
    tree: cKDTree
    network: gnet.Network | None
    units: pd.DataFrame  # per building: grid (when grids were given), community, …, city
    kinds: pd.Series  # community code -> urban/rural
    communities: gpd.GeoDataFrame | None

    def reach(
        self, xy: np.ndarray, limit: float, network: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pairs (point, building, distance) within ``limit`` metres of each point of
        ``xy`` (metric), straight or on the road network.
        """
        src, dst, dist = pairs_within(self.tree, xy, limit)
        if not network or self.network is None or not len(src):
            return src, dst, dist
        # the straight distance is a lower bound of the walk, so the pairs within the limit
        # are among those found; Dijkstra bounded by the limit, a chunk of points at a time
        net = self.network
        pv, pa = gnet.snap(net, xy)
        bv, ba = gnet.snap(net, self.xy[dst])
        walk = np.empty(len(src))
        for lo in range(0, len(xy), 256):
            hi = min(lo + 256, len(xy))
            d = dijkstra(net.graph, directed=False, indices=pv[lo:hi], limit=limit)
            sel = (src >= lo) & (src < hi)
            walk[sel] = d[src[sel] - lo, bv[sel]]
        walk += pa[src] + ba
        keep = walk <= limit
        return src[keep], dst[keep], walk[keep]


def pairs_within(
    tree: cKDTree, xy: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(point, tree item, distance) for every tree item within ``radius`` of each point.

    Unlike ``sparse_distance_matrix`` this keeps pairs at distance 0 (a facility on a
    building's spot).
    """
    if len(xy) == 0:
        e = np.empty(0, dtype=np.int64)
        return e, e, np.empty(0)
    hits = tree.query_ball_point(xy, radius, workers=-1)
    n = np.fromiter((len(h) for h in hits), dtype=np.int64, count=len(hits))
    src = np.repeat(np.arange(len(xy)), n)
    dst = np.fromiter((i for h in hits for i in h), dtype=np.int64, count=int(n.sum()))
    dist = np.hypot(*(tree.data[dst] - xy[src]).T)
    return src, dst, dist


@dataclass
class Coverage:
    """Result of :func:`compute`."""

    buildings: pd.DataFrame  # id, community_code, dist_<type>, covered_<type>, access_<type>
    table: pd.DataFrame  # layer ``coverage``
    gaps: gpd.GeoDataFrame  # layer ``gaps``
    capacity: pd.DataFrame  # per community and type with an area standard
    notes: list[str] = field(default_factory=list)
    mode: str = "line"
    space: Space | None = None


def applies(buildings: pd.DataFrame, scope: object, kinds: pd.Series) -> np.ndarray:
    """Whether a type of the catalogue (its ``applies``: urban, rural or both; missing is
    both) serves each building's community.
    """
    scope = scope if isinstance(scope, str) and scope in ("urban", "rural") else "both"
    if scope == "both":
        return np.ones(len(buildings), dtype=bool)
    return buildings["community_code"].map(kinds).eq(scope).to_numpy()


def served(buildings: pd.DataFrame, serves: str, kinds: pd.Series) -> np.ndarray:
    """The population a type serves in each building (missing counts as 0)."""
    if serves == "rural_households":
        rural = buildings["community_code"].map(kinds).eq("rural").to_numpy()
        return np.where(rural, buildings["households"].to_numpy(dtype=float), 0.0)
    return buildings[serves].astype("Float64").fillna(0).to_numpy(dtype=float)


def _check(
    buildings: gpd.GeoDataFrame,
    facilities: gpd.GeoDataFrame,
    types: pd.DataFrame,
    wanted: Sequence[str] | None,
) -> pd.DataFrame:
    problems = []
    for name, df in (("buildings", buildings), ("facilities", facilities)):
        if df.crs is None or not df.crs.equals(schema.STORAGE_CRS):
            problems.append(f"{name} must be in EPSG:4326 (got {df.crs})")
    if wanted:
        unknown = sorted(set(wanted) - set(types["code"]))
        problems += [
            f"unknown facility type {t!r}; the catalogue has {', '.join(types['code'])}"
            for t in unknown
        ]
    if problems:
        raise ValidationError("coverage", problems)
    return types[types["code"].isin(wanted)] if wanted else types


def compute(
    buildings: gpd.GeoDataFrame,
    facilities: gpd.GeoDataFrame,
    types: pd.DataFrame,
    communities: gpd.GeoDataFrame | None,
    *,
    grids: gpd.GeoDataFrame | None = None,
    roads: gpd.GeoDataFrame | None = None,
    mode: str | None = None,
    only: Sequence[str] | None = None,
    gaps: bool = True,
    network: gnet.Network | None = None,
) -> Coverage:
    """Coverage of every facility type (or ``only`` some).

    Parameters
    ----------
    buildings, facilities, communities, grids, roads
        Layers in EPSG:4326 (grids and roads optional).
    types
        The ``facility_types`` catalogue.
    mode
        ``line`` (straight line) or ``network`` (walking distance on the roads); default
        network when roads are given.
    only
        Facility type codes to compute (default all).
    gaps
        Whether to draw gap polygons.
    network
        The road network of an earlier run on the same communities and roads
        (``Coverage.space.network``), used instead of building it again.

    Returns
    -------
    Coverage
    """
    types = _check(buildings, facilities, types, only)
    mode = mode or ("network" if roads is not None and len(roads) else "line")
    if mode not in ("line", "network"):
        raise ValidationError("coverage", [f"mode {mode!r} is not line or network"])
    if mode == "network" and (roads is None or not len(roads)):
        raise ValidationError("coverage", ["network mode needs a roads layer"])
    metric = metric_crs_of(communities if communities is not None else buildings)
    bxy = shapely.get_coordinates(buildings.to_crs(metric).geometry.values)
    fm = facilities.to_crs(metric)
    fxy = shapely.get_coordinates(fm.geometry.values)
    notes: list[str] = []
    if communities is not None:
        fac_comm = locate(facilities.geometry, communities)
        for fid in facilities.loc[fac_comm.isna().to_numpy(), "id"]:
            notes.append(
                f"facility {fid} lies outside every community: it serves distances, not capacity"
            )
        kinds = communities.set_index("code")["kind"]
    else:  # no polygons: kinds from the codes, no gap areas, no capacity per community
        fac_comm = pd.Series([None] * len(facilities), index=facilities.index, dtype=object)
        codes = pd.Series(sorted(set(buildings["community_code"])))
        kinds = pd.Series(community_kind(codes).to_numpy(), index=codes.to_numpy())
        notes.append(
            "no communities given: gap areas and floor area per community are not computed"
        )
        gaps = False
    net = (
        (network or gnet.build(roads.to_crs(metric).geometry))
        if roads is not None and mode == "network"
        else None
    )
    out = buildings[["id", "community_code"]].reset_index(drop=True).copy()
    status = (
        facilities["status"]
        if "status" in facilities
        else pd.Series("existing", index=facilities.index)
    )
    existing = status.fillna("existing").eq("existing").to_numpy()
    rows: list[pd.DataFrame] = []
    gap_frames: list[gpd.GeoDataFrame] = []
    cap_rows: list[pd.DataFrame] = []
    unit = _units(buildings, grids)
    cells = _Cells(buildings, communities) if communities is not None and gaps else None
    ctx = {
        "types": list(types.itertuples(index=False)),
        "facilities": facilities,
        "existing": existing,
        "buildings": buildings,
        "kinds": kinds,
        "mode": mode,
        "bxy": bxy,
        "btree": cKDTree(bxy),  # built once, used by every type's 2SFCA
        "fxy": fxy,
        "net": net,
        "unit": unit,
        "per_community": communities is not None,
        "fac_comm": fac_comm,
    }
    # GEOS, cKDTree and scipy's graph routines release the GIL, so threads use every core
    # without copying the city into worker processes
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        results = list(pool.map(lambda i: _one_type(ctx, i), range(len(ctx["types"]))))
        if cells is not None:
            gap_frames = cells.layers(
                pool,
                [r["code"] for r in results],
                [r["uncovered"] for r in results],
                [r["demand"] for r in results],
            )
    for r in results:
        notes += r["notes"]
        out = out.assign(**r["columns"])
        rows.append(r["table"])
        if r["capacity"] is not None:
            cap_rows.append(r["capacity"])
    table = schema.conform("coverage", pd.concat(rows, ignore_index=True))
    gap_layer = (
        schema.conform("gaps", pd.concat(gap_frames, ignore_index=True))
        if gap_frames and any(len(g) for g in gap_frames)
        else schema.empty("gaps")
    )
    capacity = pd.concat(cap_rows, ignore_index=True) if cap_rows else pd.DataFrame()
    space = Space(metric, bxy, ctx["btree"], net, unit, kinds, communities)
    return Coverage(out, table, gap_layer, capacity, notes, mode, space)


def _units(buildings: gpd.GeoDataFrame, grids: gpd.GeoDataFrame | None) -> pd.DataFrame:
    code = buildings["community_code"].to_numpy()
    u = pd.DataFrame(
        {
            "community": code,
            "street": [c[:9] for c in code],
            "district": [c[:6] for c in code],
            "city": "city",
        }
    )
    if grids is not None and len(grids):
        tree = shapely.STRtree(grids.geometry.values)
        b, g = tree.query(buildings.geometry.values, predicate="intersects")
        first = np.unique(b, return_index=True)[1]
        grid = np.full(len(buildings), None, dtype=object)
        grid[b[first]] = grids["code"].to_numpy()[g[first]]
        u.insert(0, "grid", grid)
    return u


def _aggregate(
    code: str,
    unit: pd.DataFrame,
    demand: np.ndarray,
    covered: np.ndarray,
    reach: np.ndarray,
    applicable: np.ndarray,
) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "served": demand,
            "covered": np.where(covered, demand, 0.0),
            "unreachable": np.where(reach, 0.0, demand),
            "applies": applicable,
        }
    )
    parts = []
    for level in LEVELS:
        if level not in unit.columns:
            continue
        keys = unit[level]
        ok = keys.notna().to_numpy()
        agg = frame[ok].groupby(keys[ok].to_numpy()).agg(
            served=("served", "sum"), covered=("covered", "sum"),
            unreachable=("unreachable", "sum"), applies=("applies", "any"),
        )  # fmt: skip
        agg = agg.reset_index(names="code")
        agg.insert(0, "level", level)
        parts.append(agg)
    t = pd.concat(parts, ignore_index=True)
    t.insert(0, "type", code)
    t["uncovered"] = t["served"] - t["covered"]
    t["share"] = np.where(
        (t["served"] > 0) & t["applies"],
        t["covered"] / t["served"].where(t["served"] > 0, 1),
        np.nan,
    )
    return t


def _two_step(
    btree: cKDTree, demand: np.ndarray, fxy: np.ndarray, area: np.ndarray, radius: float
) -> np.ndarray:
    """2SFCA: each facility's supply (floor area, 1 where unknown) over the demand within
    its radius; each building sums the ratios of the facilities within reach.
    """
    n = btree.n
    if len(fxy) == 0:
        return np.zeros(n)
    supply = np.where(np.isnan(area), 1.0, area)
    f, b, _ = pairs_within(btree, fxy, radius)
    load = np.bincount(f, weights=demand[b], minlength=len(fxy))
    ratio = np.divide(supply, load, out=np.zeros(len(fxy)), where=load > 0)
    return np.bincount(b, weights=ratio[f], minlength=n)


def _capacity(
    t: object, facilities: gpd.GeoDataFrame, fac_comm: pd.Series, buildings: gpd.GeoDataFrame
) -> pd.DataFrame:
    """Floor area per 100 households against the type's standard, in the communities the
    type applies to (``buildings`` holds only those).
    """
    hh = buildings.groupby("community_code")["households"].sum()
    area = facilities["area_m2"].fillna(0).groupby(fac_comm.to_numpy()).sum()
    per100 = (area.reindex(hh.index).fillna(0) / hh.where(hh > 0) * 100).fillna(0)
    std = float(t.area_per_100_households)  # type: ignore[attr-defined]
    return pd.DataFrame(
        {
            "type": t.code,  # type: ignore[attr-defined]
            "community_code": hh.index,
            "households": hh.to_numpy(),
            "area_m2": area.reindex(hh.index).fillna(0).to_numpy(),
            "area_per_100_households": per100.to_numpy(),
            "standard": std,
            "under_standard": (per100 < std).to_numpy(),
        }
    )


def _one_type(c: dict, i: int) -> dict:
    """Everything computed for facility type ``i`` of the context."""
    t = c["types"][i]
    facilities, buildings = c["facilities"], c["buildings"]
    bxy, fxy = c["bxy"], c["fxy"]
    notes = []
    mine = (facilities["type"].to_numpy() == t.code) & c["existing"]
    # a type serves only the communities it applies to: elsewhere nobody is counted
    # (不适用), neither as served nor as uncovered
    applicable = applies(buildings, getattr(t, "applies", None), c["kinds"])
    demand = np.where(applicable, served(buildings, t.serves, c["kinds"]), 0.0)
    if not mine.any():
        notes.append(
            f"no existing facility of type {t.code} ({t.name_zh}): every building is uncovered"
        )
    if c["mode"] == "line":
        dist = cKDTree(fxy[mine]).query(bxy)[0] if mine.any() else np.full(len(bxy), np.inf)
    else:
        dist = gnet.nearest(c["net"], fxy[mine], bxy)
    reach = np.isfinite(dist)
    if mine.any() and not reach.all():
        notes.append(
            f"{t.code}: {int((~reach).sum())} buildings cannot reach any facility on the road network"
        )
    covered = reach & (dist <= t.radius_m)
    area = facilities["area_m2"].to_numpy(dtype=float)[mine]
    columns = {
        f"dist_{t.code}": np.where(reach, dist, np.nan),
        f"covered_{t.code}": covered,
        f"access_{t.code}": _two_step(c["btree"], demand, fxy[mine], area, t.radius_m),
    }
    return {
        "notes": notes,
        "columns": columns,
        "table": _aggregate(t.code, c["unit"], demand, covered, reach, applicable),
        "code": t.code,
        "uncovered": ~covered & (demand > 0),
        "demand": demand,
        "capacity": _capacity(t, facilities[mine], c["fac_comm"][mine], buildings[applicable])
        if pd.notna(t.area_per_100_households) and c["per_community"]
        else None,
    }


class _Cells:
    """Gap areas from the Voronoi cells of each community's buildings."""

    def __init__(self, buildings: gpd.GeoDataFrame, communities: gpd.GeoDataFrame) -> None:
        codes, self.names = pd.factorize(buildings["community_code"], sort=True)
        self.inverse = np.asarray(codes)
        self.names = np.asarray(self.names, dtype=object)
        self.geom = communities.set_index("code").geometry.reindex(self.names).to_numpy()
        self.index = pd.Series(np.arange(len(codes))).groupby(codes).indices
        self.size = np.bincount(self.inverse, minlength=len(self.names))
        self.xy = shapely.get_coordinates(buildings.geometry.values)
        self.points = buildings.geometry.values

    def layers(
        self,
        pool: ThreadPoolExecutor,
        type_codes: Sequence[str],
        uncovered: Sequence[np.ndarray],
        demand: Sequence[np.ndarray],
    ) -> list[gpd.GeoDataFrame]:
        """The gap polygons of each type: per community, its uncovered cells merged and
        split into connected parts, each with the demand of the uncovered buildings in it.

        The work goes by community, over every worker of ``pool``: a community's cells
        are computed once, merged for every type that needs them, and dropped.
        """
        count = np.stack(
            [np.bincount(self.inverse, weights=m, minlength=len(self.names)) for m in uncovered]
        )
        mixed = (count > 0) & (count < self.size)  # type x community
        todo = np.flatnonzero(mixed.any(axis=0))
        todo = todo[np.argsort(-self.size[todo], kind="stable")]  # big ones first
        chunks = [todo[i::64] for i in range(min(64, len(todo)))]

        def merge(chunk: np.ndarray) -> list[tuple[int, int, object]]:
            out = []
            for k in chunk.tolist():
                idx = self.index[k]
                cells = self._voronoi(k)
                poly = self.geom[k]
                for t in np.flatnonzero(mixed[:, k]).tolist():
                    mask = uncovered[t][idx]
                    # the cells tile the plane, so the gap is the community less the covered
                    # cells, or the uncovered cells within it: merge the smaller set
                    if count[t, k] * 2 > self.size[k]:
                        g = shapely.difference(poly, shapely.coverage_union_all(cells[~mask]))
                    else:
                        g = shapely.intersection(shapely.coverage_union_all(cells[mask]), poly)
                    out.append((t, k, g))
            return out

        merged = [m for part in pool.map(merge, chunks) for m in part]
        return list(
            pool.map(
                lambda t: self._layer(
                    type_codes[t],
                    uncovered[t],
                    demand[t],
                    np.flatnonzero(count[t] == self.size),
                    [(k, g) for tt, k, g in merged if tt == t],
                ),
                range(len(type_codes)),
            )
        )

    def _voronoi(self, k: int) -> np.ndarray:
        idx = self.index[k]
        poly = self.geom[k]
        if len(idx) == 1:
            return np.array([poly], dtype=object)
        pts = self.xy[idx] + np.random.default_rng(0).normal(0, 1e-9, (len(idx), 2))  # no twins
        # unclipped cells form an exact coverage: unions of them are fast and clean
        return shapely.get_parts(
            shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=poly, ordered=True)
        )

    def _layer(
        self,
        type_code: str,
        uncovered: np.ndarray,
        demand: np.ndarray,
        whole: np.ndarray,
        merged: list[tuple[int, object]],
    ) -> gpd.GeoDataFrame:
        n = len(self.names)
        # a community wholly uncovered is one gap, its own polygon; merged ones in parts
        parts, which = shapely.get_parts(
            np.asarray([g for _, g in merged], dtype=object), return_index=True
        )
        keep = shapely.area(parts) > 0
        parts = np.concatenate([self.geom[whole], parts[keep]])
        comm = np.concatenate(
            [whole, np.asarray([k for k, _ in merged], dtype=np.int64)[which[keep]]]
        ).astype(np.int64)
        if not len(parts):
            return schema.empty("gaps")
        # each uncovered building's demand goes to the part of its community that holds it
        # (the first part when it lies off every part, e.g. outside its community)
        nparts = np.bincount(comm, minlength=n)
        first_part = np.full(n, -1)
        first_part[comm[::-1]] = np.arange(len(parts))[::-1]
        part_of = np.where(uncovered, first_part[self.inverse], -1)
        split = nparts[comm] > 1
        if split.any():  # the parts are the query side: GEOS prepares each polygon once
            todo = np.flatnonzero(uncovered & (nparts[self.inverse] > 1))
            hit_part, hit_b = shapely.STRtree(self.points[todo]).query(
                parts[split], predicate="intersects"
            )
            hit_part, hit_b = np.flatnonzero(split)[hit_part], todo[hit_b]
            ok = comm[hit_part] == self.inverse[hit_b]
            part_of[hit_b[ok]] = hit_part[ok]
        got = part_of >= 0
        served = np.bincount(part_of[got], weights=demand[got], minlength=len(parts))
        order = np.lexsort((np.arange(len(parts)), comm))
        parts, comm, served = parts[order], comm[order], served[order]
        number = pd.Series(comm).groupby(comm).cumcount().to_numpy() + 1
        names = self.names[comm]
        return gpd.GeoDataFrame(
            {
                "id": [f"{type_code}:{c}:{k}" for c, k in zip(names, number, strict=True)],
                "type": type_code,
                "community_code": names,
                "served": served,
            },
            geometry=gpd.GeoSeries(parts, crs=schema.STORAGE_CRS),
            crs=schema.STORAGE_CRS,
        )
