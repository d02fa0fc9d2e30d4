"""Grid division (网格划分): every community cut into coded grids of a workable size.

Method, per connected part of each community:

1. Buildings at the same spot are merged; the number of grids ``k`` is the whole number
   closest to ``households / target`` inside the band's feasible range
   ``ceil(H / max) ≤ k ≤ floor(H / min)`` (when that range is empty the band is
   unreachable and the ``k`` with the smallest excursion from the band is used). A
   building with more households than the band's top gets a grid of its own.
2. The building adjacency graph is the Voronoi dual: two buildings are neighbours when
   their Voronoi cells share an edge inside the community. Edge weights are the shared
   edge length, cut to a quarter where the straight line between the buildings crosses a
   road, so cuts run along roads and grids stay compact.
3. METIS (``pymetis``, contiguous k-way, fixed seed) splits the graph balanced by
   households; a local refinement then moves single boundary buildings between
   neighbouring grids, never disconnecting one, while the band violation (or, at equal
   violation, the imbalance) strictly falls.
4. Grid polygons are unions of the buildings' Voronoi cells clipped to the community part,
   so grids tile the community exactly, no house is cut and boundaries run midway between
   buildings (along roads where the graph was cut at roads). A grid that clipping left in
   pieces keeps its main piece; the others join the neighbour they share most border with.

Everything is deterministic: the same input gives the same grids.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

import geopandas as gpd
import shapely

from gis import codes, schema
from gis.crs import metric_crs_of
from gis.errors import ValidationError
from gis.graphcut import best_partition, components, grid_count, voronoi_graph
from gis.rules import Band, GridRules

Progress = Callable[[int, int], None]


@dataclass
class Division:
    """The result of dividing: grids (layer ``grids``) and a report per community."""

    grids: gpd.GeoDataFrame
    communities: pd.DataFrame


# --- polygons ---------------------------------------------------------------------------


def _cells_union(
    xy: np.ndarray, labels: np.ndarray, frame: shapely.Geometry
) -> list[shapely.Geometry]:
    """Union of the Voronoi cells of each label (the cells tile ``frame``)."""
    k = int(labels.max()) + 1
    if len(xy) == 1 or k == 1:
        return [frame]
    cells = shapely.get_parts(
        shapely.voronoi_polygons(shapely.multipoints(xy), extend_to=frame, ordered=True)
    )
    out = []
    for p in range(k):
        mine = cells[labels == p]
        out.append(shapely.union_all(mine) if len(mine) else shapely.Polygon())
    return out


def _divide_part(
    part: shapely.Geometry,
    xy: np.ndarray,
    w: np.ndarray,
    band: Band,
    roads: shapely.STRtree | None,
    scale: float,
) -> list[tuple[shapely.Geometry, np.ndarray]]:
    """Divide one connected polygon; returns (grid polygon, building indices) pairs."""
    if len(xy) == 0:
        return [(part, np.zeros(0, dtype=np.int64))]
    uniq, inv = np.unique(np.round(xy, 12), axis=0, return_inverse=True)
    inv = inv.ravel()
    nw = np.bincount(inv, weights=w, minlength=len(uniq))
    if grid_count(nw, band) == 1:
        return [(part, np.arange(len(xy)))]

    def to_scaled(c: np.ndarray) -> np.ndarray:
        return np.column_stack([c[:, 0] * scale, c[:, 1]])

    def from_scaled(c: np.ndarray) -> np.ndarray:
        return np.column_stack([c[:, 0] / scale, c[:, 1]])

    sxy = to_scaled(uniq)
    region = shapely.transform(part, to_scaled)
    g = voronoi_graph(sxy, nw, region, roads)
    labels = np.full(len(uniq), -1, dtype=np.int64)
    nxt = 0
    for comp in components(g, np.arange(len(uniq))):
        lab = best_partition(g, comp, band)
        _, lab = np.unique(lab, return_inverse=True)  # drop parts METIS left empty
        labels[comp] = lab.ravel() + nxt
        nxt += int(lab.max()) + 1
    minx, miny, maxx, maxy = region.bounds
    pad = max(maxx - minx, maxy - miny) + 1.0
    frame = shapely.box(minx - pad, miny - pad, maxx + pad, maxy + pad)
    unions = _cells_union(sxy, labels, frame)
    polys = [shapely.intersection(shapely.transform(u, from_scaled), part) for u in unions]
    node_of = [np.flatnonzero(labels[inv] == p) for p in range(len(polys))]
    return _mend_pieces(polys, node_of, xy)


def _mend_pieces(
    polys: list[shapely.Geometry], members: list[np.ndarray], xy: np.ndarray
) -> list[tuple[shapely.Geometry, np.ndarray]]:
    """Make every grid one polygon: stray pieces join the neighbour with the longest
    shared border, taking their buildings along.
    """
    owner = np.full(len(xy), -1, dtype=np.int64)
    for i, m in enumerate(members):
        owner[m] = i
    polys = list(polys)
    for _ in range(20):
        changed = False
        for i in range(len(polys)):
            parts = [
                p for p in shapely.get_parts(polys[i]) if p.geom_type == "Polygon" and p.area > 0
            ]
            if len(parts) <= 1:
                polys[i] = parts[0] if parts else polys[i]
                continue
            idx = np.flatnonzero(owner == i)
            counts = [
                int(shapely.contains_xy(p, xy[idx, 0], xy[idx, 1]).sum()) if len(idx) else 0
                for p in parts
            ]
            main = max(range(len(parts)), key=lambda j: (counts[j], parts[j].area))
            keep = parts[main]
            for j, piece in enumerate(parts):
                if j == main:
                    continue
                shared = [
                    shapely.length(shapely.intersection(piece.boundary, polys[o].boundary))
                    if o != i
                    else -1.0
                    for o in range(len(polys))
                ]
                o = int(np.argmax(shared))
                if shared[o] <= 0:  # an island of the part itself: nothing to join
                    keep = shapely.union_all([keep, piece])
                    continue
                polys[o] = shapely.union_all([polys[o], piece])
                if len(idx):
                    inside = idx[shapely.contains_xy(piece, xy[idx, 0], xy[idx, 1])]
                    owner[inside] = o
                changed = True
            polys[i] = keep
        if not changed:
            break
    out = []
    for i, p in enumerate(polys):
        if p.is_empty:
            continue
        out.append((p, np.flatnonzero(owner == i)))
    return out


# --- the city ---------------------------------------------------------------------------


def _check_inputs(communities: gpd.GeoDataFrame, buildings: gpd.GeoDataFrame) -> None:
    problems = []
    for name, df in (("communities", communities), ("buildings", buildings)):
        if df.crs is None or not df.crs.equals(schema.STORAGE_CRS):
            problems.append(
                f"{name} must be in EPSG:4326 (got {df.crs}); use gdf.to_crs('EPSG:4326')"
            )
    unknown = set(buildings["community_code"]) - set(communities["code"])
    if unknown:
        problems.append(
            f"buildings refer to unknown communities: {', '.join(sorted(unknown)[:10])}"
        )
    if problems:
        raise ValidationError("grid division input", problems)


def scale_and_roads(
    communities: gpd.GeoDataFrame, roads: gpd.GeoDataFrame | None
) -> tuple[float, shapely.STRtree | None]:
    """The x scale (cos of the mean latitude) that makes lon/lat locally isotropic, and an
    R-tree of the roads in those scaled coordinates.
    """
    lat0 = float(np.mean(communities.total_bounds[[1, 3]])) if len(communities) else 35.0
    scale = math.cos(math.radians(lat0))
    tree = None
    if roads is not None and len(roads):
        sroads = shapely.transform(
            roads.geometry.values, lambda c: np.column_stack([c[:, 0] * scale, c[:, 1]])
        )
        tree = shapely.STRtree(sroads)
    return scale, tree


def divide(
    communities: gpd.GeoDataFrame,
    buildings: gpd.GeoDataFrame,
    roads: gpd.GeoDataFrame | None = None,
    *,
    rules: GridRules | None = None,
    only: Sequence[str] | None = None,
    used: Mapping[str, Iterable[int]] | None = None,
    progress: Progress | None = None,
) -> Division:
    """Divide communities into grids.

    Parameters
    ----------
    communities, buildings, roads
        Layers ``communities``, ``buildings`` and (optionally) ``roads`` in EPSG:4326.
    rules
        Household bands per community kind (default 300–400, target 350).
    only
        Community codes to divide (default all).
    used
        Community code → grid sequences used before (live or retired): such communities
        are numbered on from the highest, so no code is ever reused for another area.
    progress
        Called as ``progress(done, total)`` after each community.

    Returns
    -------
    Division
        ``grids`` (the ``grids`` layer) and a per-community report.

    Examples
    --------
    >>> from gis.synth import build_city
    >>> city = build_city(districts=["370405"])
    >>> d = divide(city["communities"], city["buildings"], city["roads"])
    >>> int(d.grids["households"].sum()) == int(city["buildings"]["households"].sum())
    True
    """
    rules = rules or GridRules()
    _check_inputs(communities, buildings)
    comms = communities if only is None else communities[communities["code"].isin(list(only))]
    if only is not None:
        missing = sorted(set(only) - set(communities["code"]))
        if missing:
            raise ValidationError("grid division", [f"unknown community code {c}" for c in missing])
    comms = comms.sort_values("code").reset_index(drop=True)
    scale, tree = scale_and_roads(comms, roads)
    by_comm = buildings.groupby("community_code").indices
    bxy = shapely.get_coordinates(buildings.geometry.values)
    hh = buildings["households"].to_numpy(dtype=float)
    res = (
        buildings["residents"].fillna(0).to_numpy(dtype=float)
        if "residents" in buildings
        else np.zeros(len(buildings))
    )
    rows: list[dict] = []
    for i, c in enumerate(comms.itertuples(index=False)):
        idx = by_comm.get(c.code, np.zeros(0, dtype=np.int64))
        band = rules.band(c.kind)
        grids = divide_community(c.geometry, bxy[idx], hh[idx], band, tree, scale)
        rows += number_grids(
            c.code, c.geometry, grids, (used or {}).get(c.code, ()), hh[idx], res[idx]
        )
        if progress:
            progress(i + 1, len(comms))
    grids = (
        gpd.GeoDataFrame(rows, geometry="geometry", crs=schema.STORAGE_CRS)
        if rows
        else schema.empty("grids")
    )
    grids = schema.conform("grids", grids)
    return Division(grids, report_communities(grids, comms, buildings, rules))


def number_grids(
    community: str,
    area: shapely.Geometry,
    made: list[tuple[shapely.Geometry, np.ndarray]],
    used: Iterable[int],
    households: np.ndarray,
    residents: np.ndarray,
) -> list[dict]:
    """Rows of the ``grids`` layer for new grids of one community: sequences above every
    one in ``used``, given west→east, north→south (rows about one grid high).
    """
    if not made:
        return []
    pts = shapely.get_coordinates(shapely.point_on_surface([p for p, _ in made]))
    minx, miny, maxx, maxy = area.bounds
    order = codes.reading_order(
        pts[:, 0], pts[:, 1], math.sqrt((maxx - minx) * (maxy - miny) / len(made))
    )
    rows = []
    for seq, j in zip(codes.next_sequences(used, len(made)), order, strict=True):
        poly, members = made[j]
        rows.append(
            {
                "code": codes.grid_code(community, seq),
                "community_code": community,
                "seq": seq,
                "households": int(households[members].sum()),
                "residents": int(residents[members].sum()),
                "geometry": poly,
            }
        )
    return rows


def divide_community(
    geom: shapely.Geometry,
    xy: np.ndarray,
    w: np.ndarray,
    band: Band,
    tree: shapely.STRtree | None,
    scale: float,
) -> list[tuple[shapely.Geometry, np.ndarray]]:
    """Divide one community (each of its pieces apart): (grid polygon, building indices)."""
    parts = [p for p in shapely.get_parts(geom) if p.area > 0]
    if len(parts) == 1:
        return _divide_part(parts[0], xy, w, band, tree, scale)
    # a community in several pieces is divided piece by piece
    where = np.full(len(xy), -1, dtype=np.int64)
    for j, p in enumerate(parts):
        inside = shapely.contains_xy(p, xy[:, 0], xy[:, 1]) & (where < 0)
        where[inside] = j
    if (where < 0).any():  # on a boundary: the nearest piece
        lost = np.flatnonzero(where < 0)
        d = np.array([shapely.distance(p, shapely.points(xy[lost])) for p in parts])
        where[lost] = d.argmin(axis=0)
    out = []
    for j, p in enumerate(parts):
        idx = np.flatnonzero(where == j)
        out += [(poly, idx[m]) for poly, m in _divide_part(p, xy[idx], w[idx], band, tree, scale)]
    return out


# --- quality ----------------------------------------------------------------------------


def grid_quality(
    grids: gpd.GeoDataFrame, rules: GridRules | None = None, kinds: pd.Series | None = None
) -> pd.DataFrame:
    """Per grid: area (m²), Polsby–Popper compactness 4πA/P², and whether it is in band.

    Returns a frame on the grids' index. ``kinds`` maps community code → kind (for the band).
    """
    rules = rules or GridRules()
    metric = grids.to_crs(metric_crs_of(grids)) if len(grids) else grids
    area = metric.area.to_numpy() if len(grids) else np.zeros(0)
    perim = metric.length.to_numpy() if len(grids) else np.zeros(0)
    pp = np.where(perim > 0, 4 * np.pi * area / np.maximum(perim, 1e-9) ** 2, 0.0)
    kind = (
        grids["community_code"].map(kinds)
        if kinds is not None
        else pd.Series("urban", index=grids.index)
    )
    lo = kind.map(lambda k: rules.band(k).min).to_numpy(dtype=float)
    hi = kind.map(lambda k: rules.band(k).max).to_numpy(dtype=float)
    h = grids["households"].to_numpy(dtype=float)
    return pd.DataFrame(
        {"area_m2": area, "polsby_popper": pp, "in_band": (h >= lo) & (h <= hi)}, index=grids.index
    )


def report_communities(
    grids: gpd.GeoDataFrame,
    communities: gpd.GeoDataFrame,
    buildings: gpd.GeoDataFrame,
    rules: GridRules | None = None,
) -> pd.DataFrame:
    """Per community: households, grids, whether the band is reachable (per part), grids in
    band, the smallest and largest grid, huge buildings, median compactness.
    """
    rules = rules or GridRules()
    kinds = communities.set_index("code")["kind"]
    q = grid_quality(grids, rules, kinds)
    g = pd.concat([grids.drop(columns="geometry"), q], axis=1)
    per = g.groupby("community_code").agg(
        grids=("code", "size"),
        households=("households", "sum"),
        in_band=("in_band", "sum"),
        min_households=("households", "min"),
        max_households=("households", "max"),
        median_pp=("polsby_popper", "median"),
    )
    rows = []
    hh_b = buildings.groupby("community_code")["households"]
    for c in communities.itertuples(index=False):
        band = rules.band(c.kind)
        p = per.loc[c.code] if c.code in per.index else None
        h = int(hh_b.get_group(c.code).sum()) if c.code in hh_b.groups else 0
        huge = int((hh_b.get_group(c.code) > band.max).sum()) if c.code in hh_b.groups else 0
        lo, hi = band.k_range(h)
        rows.append(
            {
                "community_code": c.code,
                "name": c.name,
                "kind": c.kind,
                "households": h,
                "grids": int(p["grids"]) if p is not None else 0,
                "band": f"{band.min}-{band.max}",
                "reachable": band.reachable(h) and huge == 0,
                "k_range": f"{max(lo, 1)}-{hi}" if max(lo, 1) <= hi else "—",
                "in_band": int(p["in_band"]) if p is not None else 0,
                "min_households": int(p["min_households"]) if p is not None else 0,
                "max_households": int(p["max_households"]) if p is not None else 0,
                "huge_buildings": huge,
                "median_pp": float(p["median_pp"]) if p is not None else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def summary(
    report: pd.DataFrame, grids: gpd.GeoDataFrame, quality: pd.DataFrame
) -> dict[str, float]:
    """City-wide figures: grids, households, share in band where reachable, median PP."""
    reach = set(report.loc[report["reachable"], "community_code"])
    in_reach = grids["community_code"].isin(reach).to_numpy()
    share = (
        float(quality["in_band"].to_numpy()[in_reach].mean()) if in_reach.any() else float("nan")
    )
    return {
        "communities": int(len(report)),
        "grids": int(len(grids)),
        "households": int(grids["households"].sum()),
        "communities_reachable": int(len(reach)),
        "grids_in_reachable": int(in_reach.sum()),
        "share_in_band_where_reachable": share,
        "share_in_band_all": float(quality["in_band"].mean()) if len(quality) else float("nan"),
        "median_polsby_popper": float(quality["polsby_popper"].median())
        if len(quality)
        else float("nan"),
    }


__all__ = [
    "Band",
    "GridRules",
    "Division",
    "divide_community",
    "number_grids",
    "scale_and_roads",
    "divide",
    "grid_quality",
    "report_communities",
    "summary",
]
