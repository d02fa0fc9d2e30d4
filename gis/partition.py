"""Grid division (网格划分): every community cut into coded grids of a workable size.

Method, per community:

1. The number of grids ``k`` is the whole number closest to ``households / target``
   inside the band's feasible range ``ceil(H / max) ≤ k ≤ floor(H / min)`` (when that
   range is empty the band is unreachable and the ``k`` with the smallest excursion from
   the band is used). A building with more households than the band's top gets a grid of
   its own. A community of one grid (most villages) is that grid, whole.
2. The community is cut into units (:mod:`gis.blocks`): street blocks, a block split only
   where it alone holds more than the band allows — along its internal paths, then into
   building cells. Units with no households join a neighbour; uninhabited pieces the
   nearest unit (that grid is then a MultiPolygon); pieces of a multi-part community are
   linked so one grid may hold several.
3. The units' graph (edges weighted by shared border: a street costs
   :data:`~gis.graphcut.ROAD_FACTOR`, a path :data:`PATH_FACTOR` of open ground) is cut
   by contiguous METIS and refined (:func:`~gis.graphcut.best_partition`). Where a grid
   is still out of band: ejection chains along neighbouring grids
   (:func:`~gis.graphcut.chains`); for a community of few units the exact search over
   every connected in-band grid (:func:`gis.exact.cover`: Algorithm X, then CP-SAT for
   the least border off the streets), which also proves when none exists; else, or
   then, each grid out of band is divided anew with the grids around it
   (:func:`gis.exact.repair`), and other numbers of grids are tried; the smallest
   communities get the lexicographic optimum (:func:`gis.exact.partition`).
4. Grids are unions of their units, so they tile the community, follow its streets and
   never cut a block that fits in one grid.

The report gives per community the exact packing bound (:func:`gis.exact.packing`):
whether the buildings' sizes allow the band at all. Everything is deterministic: the same
input gives the same grids.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

import geopandas as gpd
import shapely

from gis import blocks, codes, exact, schema
from gis.blocks import Roads
from gis.crs import metric_crs_of
from gis.errors import ValidationError
from gis.graphcut import (
    GRID_SIZE,
    ROAD_FACTOR,
    Graph,
    best_partition,
    chains,
    components,
    grid_count,
)
from gis.rules import Band, GridRules

Progress = Callable[[int, int], None]
#: an internal path costs this share of open ground to cut along (a street: ROAD_FACTOR)
PATH_FACTOR = 0.3


@dataclass
class Division:
    """The result of dividing: grids (layer ``grids``) and a report per community."""

    grids: gpd.GeoDataFrame
    communities: pd.DataFrame


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
) -> tuple[float, Roads | None]:
    """The x scale (cos of the mean latitude) that makes lon/lat locally isotropic, and the
    roads in those scaled coordinates, streets and internal paths apart.
    """
    lat0 = float(np.mean(communities.total_bounds[[1, 3]])) if len(communities) else 35.0
    scale = math.cos(math.radians(lat0))
    if roads is None or not len(roads):
        return scale, None
    geoms = shapely.transform(
        roads.geometry.values, lambda c: np.column_stack([c[:, 0] * scale, c[:, 1]])
    )
    kind = roads["kind"].astype(str).to_numpy() if "kind" in roads else np.full(len(roads), "")
    is_path = np.isin(kind, list(blocks.PATH_KINDS))
    return scale, Roads(np.asarray(geoms[~is_path]), np.asarray(geoms[is_path]))


def divide(
    communities: gpd.GeoDataFrame,
    buildings: gpd.GeoDataFrame,
    roads: gpd.GeoDataFrame | None = None,
    *,
    rules: GridRules | None = None,
    only: Sequence[str] | None = None,
    used: Mapping[str, Iterable[int]] | None = None,
    progress: Progress | None = None,
    footprints: gpd.GeoDataFrame | None = None,
    workers: int | None = None,
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
    footprints
        Layer ``footprints`` (building id → polygon): where given, a block too big for one
        grid is split along its buildings' footprints rather than their points.

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
    fp = _footprints(buildings, footprints)
    job = _Job(comms, by_comm, bxy, hh, res, fp, rules, tree, scale, dict(used or {}))
    rows: list[dict] = []
    infos: dict[str, dict] = {}
    for done, (part_rows, part_infos) in enumerate(_run(job, workers), start=1):
        rows += part_rows
        infos.update(part_infos)
        if progress:
            progress(min(done * _CHUNK, len(comms)), len(comms))
    rows.sort(key=lambda r: r["code"])
    grids = (
        gpd.GeoDataFrame(rows, geometry="geometry", crs=schema.STORAGE_CRS)
        if rows
        else schema.empty("grids")
    )
    grids = schema.conform("grids", grids)
    return Division(grids, report_communities(grids, comms, buildings, rules, infos))


@dataclass
class _Job:
    comms: gpd.GeoDataFrame
    by_comm: Mapping[str, np.ndarray]
    xy: np.ndarray
    hh: np.ndarray
    res: np.ndarray
    fp: np.ndarray | None
    rules: GridRules
    roads: Roads | None
    scale: float
    used: Mapping[str, Iterable[int]]


_CHUNK = 25  # communities per task
_JOB: _Job | None = None  # the job a forked worker inherits


def _chunk(rows: np.ndarray, job: _Job | None = None) -> tuple[list[dict], dict[str, dict]]:
    """Divide the communities at ``rows`` of the job."""
    job = job or _JOB
    assert job is not None
    out: list[dict] = []
    infos: dict[str, dict] = {}
    for r in rows.tolist():
        c = job.comms.iloc[r]
        idx = job.by_comm.get(c["code"], np.zeros(0, dtype=np.int64))
        info: dict = {}
        made = divide_community(
            c.geometry, job.xy[idx], job.hh[idx], job.rules.band(c["kind"]), job.roads,
            job.scale, footprints=None if job.fp is None else job.fp[idx], info=info,
        )  # fmt: skip
        infos[c["code"]] = info
        out += number_grids(
            c["code"], c.geometry, made, job.used.get(c["code"], ()), job.hh[idx], job.res[idx]
        )
    return out, infos


def _run(job: _Job, workers: int | None) -> Iterator[tuple[list[dict], dict[str, dict]]]:
    """The job's chunks, divided here or by forked worker processes (same results)."""
    n = len(job.comms)
    # the costly communities first (the most buildings), so the workers end together
    cost = np.array([len(job.by_comm.get(c, ())) for c in job.comms["code"]])
    order = np.argsort(-cost, kind="stable")
    chunks = [order[i : i + _CHUNK] for i in range(0, n, _CHUNK)]
    if workers is None:
        workers = (os.cpu_count() or 1) if n >= 100 else 1
    if workers <= 1 or len(chunks) <= 1 or "fork" not in mp.get_all_start_methods():
        for ch in chunks:
            yield _chunk(ch, job)
        return
    global _JOB
    _JOB = job
    try:
        ctx = mp.get_context("fork")
        with ctx.Pool(min(workers, len(chunks))) as pool:
            yield from pool.imap_unordered(_chunk, chunks)
    finally:
        _JOB = None


def _footprints(
    buildings: gpd.GeoDataFrame, footprints: gpd.GeoDataFrame | None
) -> np.ndarray | None:
    """Each building's footprint (or its point where it has none), aligned to ``buildings``."""
    if footprints is None or not len(footprints):
        return None
    by_id = pd.Series(footprints.geometry.values, index=footprints["building_id"].to_numpy())
    fp = by_id.reindex(buildings["id"].to_numpy()).to_numpy()
    none = pd.isna(fp)
    fp[none] = buildings.geometry.values[none]
    return fp


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
    tree: Roads | None,
    scale: float,
    *,
    footprints: np.ndarray | None = None,
    info: dict | None = None,
) -> list[tuple[shapely.Geometry, np.ndarray]]:
    """Divide one community into grids: (grid polygon, building indices) pairs.

    Grids are unions of whole units (:mod:`gis.blocks`): street blocks, split only where
    one alone holds more than the band. The units' graph is cut by the heuristic
    (:func:`~gis.graphcut.best_partition`); a community of at most
    :data:`gis.exact.MAX_UNITS` units whose heuristic answer leaves a grid out of band is
    solved exactly (:func:`gis.exact.partition`). ``info``, when given, is filled with
    what the report needs (units, blocks split, repairs, exact, the packing bound).
    """
    info = info if info is not None else {}
    everything = np.arange(len(xy))
    if len(xy) == 0 or float(w.sum()) <= 0 or grid_count(w, band) == 1:
        info.update(units=1, packing=exact.packing(w, band, [1]) if len(xy) else "no")
        return [(geom, everything)]

    def to_scaled(c: np.ndarray) -> np.ndarray:
        return np.column_stack([c[:, 0] * scale, c[:, 1]])

    def from_scaled(c: np.ndarray) -> np.ndarray:
        return np.column_stack([c[:, 0] / scale, c[:, 1]])

    area = shapely.transform(geom, to_scaled)
    fp = None if footprints is None else shapely.transform(footprints, to_scaled)
    units = blocks.build(area, to_scaled(xy), w, band, tree, fp)
    labels, g, solved, verdict = _solve(units, band)
    score = exact.score(units.w, labels, int(labels.max()) + 1, band)
    if score[0] and units.split_blocks:
        # the pieces of the blocks too big for one grid cannot be grouped into the band:
        # those blocks (only those) go down to their buildings' cells
        fine = blocks.build(area, to_scaled(xy), w, band, tree, fp, fine=True)
        f_labels, f_g, f_solved, f_verdict = _solve(fine, band)
        if exact.score(fine.w, f_labels, int(f_labels.max()) + 1, band) < score:
            units, labels, g, solved = fine, f_labels, f_g, f_solved
        # what is proved of the finest units the rule allows (a division of the coarse
        # ones is one of the fine ones too, so only the fine verdict proves impossibility)
        verdict = f_verdict
    n = len(units.w)
    labels = _no_empty(labels, units.w, g)
    info.update(
        units=n,
        split_blocks=units.split_blocks,
        snapped=units.snapped,
        empty_joined=units.empty_joined,
        islands=units.islands,
        exact=solved is not None,
        cover=verdict,
        exact_optimal=bool(solved is not None and solved.optimal),
        packing=exact.packing(w, band, range(*_k_span(float(w.sum()), band))),
    )
    made = []
    raw, raw_lab = units.spread_empty(labels)
    for p in range(int(labels.max()) + 1):
        mine = np.flatnonzero(labels == p)
        pieces = raw[raw_lab == p]
        poly = _valid(shapely.transform(union(pieces), from_scaled))
        members = np.sort(np.concatenate([units.members[u] for u in mine]))
        made.append((poly, members))
    if shapely.get_num_geometries(geom) == 1:
        # hairline mismatches between block, path and cell borders can leave a union in
        # pieces: each stray piece joins the grid it shares most border with
        made = _mend_pieces([p for p, _ in made], [m for _, m in made], xy)
    return made


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


def _solve(units: blocks.Units, band: Band) -> tuple[np.ndarray, Graph, exact.Exact | None, str]:
    """Grid labels of the units: the heuristic, and where it leaves a grid out of band in
    a community of few units, the exact solvers.
    """
    L = units.length
    weight = L[:, blocks.STREET] * ROAD_FACTOR + L[:, blocks.PATH] * PATH_FACTOR + L[:, blocks.OPEN]
    weight = np.where(units.virtual, 1, np.maximum(1, np.round(weight))).astype(np.int64)
    n = len(units.w)
    nbrs: list[list[int]] = [[] for _ in range(n)]
    ew: dict[tuple[int, int], int] = {}
    for i, j, wt in zip(units.a.tolist(), units.b.tolist(), weight.tolist(), strict=True):
        ew[(i, j)] = wt
        nbrs[i].append(j)
        nbrs[j].append(i)
    g = Graph(units.xy, units.w, [np.array(sorted(v), dtype=np.int64) for v in nbrs], ew)
    nodes = np.arange(n)
    k = grid_count(units.w, band)
    lo, hi = band.k_range(float(units.w.sum()))
    ks = sorted({k, *range(max(lo, 1), hi + 1)})
    open_cost = np.where(units.virtual, 0, np.round(L[:, blocks.PATH] + L[:, blocks.OPEN]))
    comps = components(g, nodes)  # one piece unless the graph could not be joined
    small = n <= exact.MAX_UNITS and len(comps) == 1
    labels = np.zeros(n, dtype=np.int64)
    for comp in comps:
        lab = best_partition(g, comp, band, anneal=False, attempts=3 if small else 8)
        _, lab = np.unique(lab, return_inverse=True)
        labels[comp] = lab.ravel() + (labels.max() + 1 if comp[0] != nodes[0] else 0)
    _, labels = np.unique(labels, return_inverse=True)
    labels = labels.ravel()
    k = int(labels.max()) + 1
    solved, verdict = None, "in band" if k == 1 else "heuristic"
    if k > 1 and len(comps) == 1 and exact.score(units.w, labels, k, band)[0]:
        labels = chains(g, labels, band)
    if k == 1 or len(comps) != 1 or not exact.score(units.w, labels, k, band)[0]:
        return labels, g, solved, verdict

    def fix(lab: np.ndarray) -> np.ndarray:
        return exact.repair(units.w, units.a, units.b, open_cost, band, lab)

    # a grid out of band: for few units, every grid in band if that exists (any k in the
    # band's range); else the grids around each one out of band divided anew
    if small:
        solved, verdict = exact.cover(units.w, units.a, units.b, open_cost, band, ks)
    if solved is not None:
        return solved.labels, g, solved, verdict
    labels = fix(labels)
    if exact.score(units.w, labels, int(labels.max()) + 1, band)[0]:
        labels = _other_counts(g, nodes, band, labels, ks, fix)
        k = int(labels.max()) + 1
        before = exact.score(units.w, labels, k, band)
        if before[0] and n <= exact.MAX_FLOW_UNITS:
            # the fewest grids out of band, then the smallest excursion, proved
            solved = exact.partition(units.w, units.a, units.b, open_cost, k, band, hint=labels)
            if solved is not None and (solved.out_of_band, solved.worst) <= before:
                labels = solved.labels
    return labels, g, solved, verdict


def _other_counts(
    g: Graph,
    nodes: np.ndarray,
    band: Band,
    labels: np.ndarray,
    ks: Sequence[int],
    fix: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """While a grid is out of band, another number of grids in the band's range may fit:
    the heuristic's division for each, repaired by ``fix``, kept where it scores better.
    """
    k = int(labels.max()) + 1
    for other in ks:
        if other == k or not exact.score(g.w, labels, k, band)[0]:
            continue
        alt = fix(best_partition(g, nodes, band, k=other, anneal=False, attempts=3))
        if exact.score(g.w, alt, int(alt.max()) + 1, band) < exact.score(g.w, labels, k, band):
            labels, k = alt, int(alt.max()) + 1
    return labels


def union(pieces: np.ndarray) -> shapely.Geometry:
    """The union of a grid's pieces on a fixed grid of :data:`GRID_SIZE`: unit borders
    that coincide only to within floating error would otherwise leave a grid in pieces
    a hairline apart, and the stray piece would be given, with its households, to
    another grid.
    """
    return shapely.union_all(pieces, grid_size=GRID_SIZE)


def _valid(poly: shapely.Geometry) -> shapely.Geometry:
    """The polygon, repaired where unions of nearly coincident unit borders left it
    self-touching (only its polygonal parts are kept).
    """
    if shapely.is_valid(poly):
        return poly
    parts = shapely.get_parts(shapely.make_valid(poly))
    parts = shapely.get_parts(parts[np.isin(shapely.get_type_id(parts), [3, 6])])
    return shapely.union_all(parts[shapely.area(parts) > 0])


def _no_empty(labels: np.ndarray, w: np.ndarray, g: Graph) -> np.ndarray:
    """A grid of empty units only joins the neighbouring grid it shares most border with."""
    labels = labels.copy()
    for _ in range(int(labels.max()) + 1):
        load = np.bincount(labels, weights=w)
        empty = [p for p in range(len(load)) if load[p] <= 0 and (labels == p).any()]
        if not empty:
            break
        p = empty[0]
        border: dict[int, int] = {}
        for (i, j), wt in g.ew.items():
            li, lj = labels[i], labels[j]
            if li != lj and p in (li, lj):
                q = int(lj if li == p else li)
                border[q] = border.get(q, 0) + wt
        if not border:
            break
        labels[labels == p] = max(sorted(border), key=lambda q: border[q])
    _, labels = np.unique(labels, return_inverse=True)
    return labels.ravel()


def _k_span(h: float, band: Band) -> tuple[int, int]:
    lo, hi = band.k_range(h)
    return max(lo, 1), max(hi, 1) + 1


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


def border_alignment(
    grids: gpd.GeoDataFrame,
    communities: gpd.GeoDataFrame,
    roads: gpd.GeoDataFrame | None,
    within_m: float = 10.0,
) -> pd.DataFrame:
    """How much of the grids' inner border runs along a road, per district.

    The inner border is where two grids of one community meet (a community's own outline
    is not the division's choice, so it is left out). Returns per ``district_code``: the
    inner border length (m), the length within ``within_m`` of a road (street or internal
    path), and their ratio ``share``; a last row ``all`` for the whole set.
    """
    cols = ["district_code", "inner_m", "along_roads_m", "share"]
    if not len(grids):
        return pd.DataFrame(columns=cols)
    crs = metric_crs_of(grids)
    g = grids.to_crs(crs)
    outline = communities.set_index("code").to_crs(crs).geometry
    district = communities.set_index("code")["district_code"]
    lines = roads.to_crs(crs).geometry.values if roads is not None and len(roads) else np.empty(0)
    tree = shapely.STRtree(lines) if len(lines) else None
    acc: dict[str, list[float]] = {}
    for code, idx in g.groupby("community_code").indices.items():
        if len(idx) < 2:
            continue
        edge = shapely.buffer(shapely.boundary(outline[code]), 0.5)
        inner = shapely.difference(
            shapely.union_all(shapely.boundary(g.geometry.values[idx])), edge
        )
        along = 0.0
        if tree is not None and not inner.is_empty:
            near = lines[tree.query(inner, predicate="dwithin", distance=within_m)]
            if len(near):
                zone = shapely.buffer(shapely.union_all(near), within_m)
                along = float(shapely.length(shapely.intersection(inner, zone)))
        a = acc.setdefault(str(district[code]), [0.0, 0.0])
        a[0] += float(inner.length)
        a[1] += along
    rows = [(d, v[0], v[1]) for d, v in sorted(acc.items())]
    rows.append(("all", sum(r[1] for r in rows), sum(r[2] for r in rows)))
    out = pd.DataFrame(rows, columns=cols[:3])
    out["share"] = np.where(
        out["inner_m"] > 0, out["along_roads_m"] / out["inner_m"].clip(lower=1e-9), np.nan
    )
    return out


def report_communities(
    grids: gpd.GeoDataFrame,
    communities: gpd.GeoDataFrame,
    buildings: gpd.GeoDataFrame,
    rules: GridRules | None = None,
    infos: Mapping[str, Mapping] | None = None,
) -> pd.DataFrame:
    """Per community: households, grids, whether the band is reachable, grids in band, the
    smallest and largest grid, huge buildings, median compactness; with the division's
    ``infos``, also its units, blocks split, repairs, exact solving and the packing bound.

    ``reachable`` is the exact packing bound (``bound == "yes"``: the buildings' sizes
    allow every grid in the band, adjacency ignored; :func:`gis.exact.packing`), taken
    from the division's ``infos`` or worked out here.
    """
    rules = rules or GridRules()
    kinds = communities.set_index("code")["kind"]
    q = grid_quality(grids, rules, kinds)
    g = pd.concat([grids.drop(columns="geometry"), q], axis=1)
    g["empty"] = g["households"] <= 0
    g["multipart"] = (shapely.get_num_geometries(grids.geometry.values) > 1) if len(grids) else []
    per = g.groupby("community_code").agg(
        grids=("code", "size"),
        households=("households", "sum"),
        in_band=("in_band", "sum"),
        min_households=("households", "min"),
        max_households=("households", "max"),
        median_pp=("polsby_popper", "median"),
        empty=("empty", "sum"),
        multipart=("multipart", "sum"),
    )
    rows = []
    hh_b = buildings.groupby("community_code")["households"]
    for c in communities.itertuples(index=False):
        band = rules.band(c.kind)
        p = per.loc[c.code] if c.code in per.index else None
        h = int(hh_b.get_group(c.code).sum()) if c.code in hh_b.groups else 0
        huge = int((hh_b.get_group(c.code) > band.max).sum()) if c.code in hh_b.groups else 0
        lo, hi = band.k_range(h)
        info = (infos or {}).get(c.code)
        if info is not None and "packing" in info:
            bound = info["packing"]
        elif c.code in hh_b.groups and h > 0:
            bound = exact.packing(hh_b.get_group(c.code).to_numpy(), band, range(*_k_span(h, band)))
        else:
            bound = "no"
        rows.append(
            {
                "community_code": c.code,
                "name": c.name,
                "kind": c.kind,
                "households": h,
                "grids": int(p["grids"]) if p is not None else 0,
                "band": f"{band.min}-{band.max}",
                "reachable": bound == "yes",
                "bound": bound,
                "k_range": f"{max(lo, 1)}-{hi}" if max(lo, 1) <= hi else "—",
                "in_band": int(p["in_band"]) if p is not None else 0,
                "min_households": int(p["min_households"]) if p is not None else 0,
                "max_households": int(p["max_households"]) if p is not None else 0,
                "huge_buildings": huge,
                "median_pp": float(p["median_pp"]) if p is not None else float("nan"),
                "empty_grids": int(p["empty"]) if p is not None else 0,
                "multipart_grids": int(p["multipart"]) if p is not None else 0,
                **{key: (info or {}).get(key, dflt) for key, dflt in _INFO.items()},
            }
        )
    return pd.DataFrame(rows)


#: what the division reports per community, and its value where it did not run
_INFO = {"units": 0, "split_blocks": 0, "snapped": 0, "empty_joined": 0, "islands": 0,
         "exact": False, "exact_optimal": False, "cover": "in band"}  # fmt: skip


def summary(
    report: pd.DataFrame, grids: gpd.GeoDataFrame, quality: pd.DataFrame
) -> dict[str, float]:
    """City-wide figures: grids, households, share in band where reachable, median PP."""
    reach = set(report.loc[report["reachable"], "community_code"])
    in_reach = grids["community_code"].isin(reach).to_numpy()
    share = (
        float(quality["in_band"].to_numpy()[in_reach].mean()) if in_reach.any() else float("nan")
    )
    possible = reach - (
        set(report.loc[report["cover"] == "impossible", "community_code"])
        if "cover" in report
        else set()
    )
    in_possible = grids["community_code"].isin(possible).to_numpy()
    return {
        "communities": int(len(report)),
        "grids": int(len(grids)),
        "empty_grids": int((grids["households"] <= 0).sum()),
        "multipart_grids": int((shapely.get_num_geometries(grids.geometry.values) > 1).sum())
        if len(grids)
        else 0,
        "households": int(grids["households"].sum()),
        "communities_reachable": int(len(reach)),
        "grids_in_reachable": int(in_reach.sum()),
        "share_in_band_where_reachable": share,
        "communities_proved_impossible": int(len(reach) - len(possible)),
        "share_in_band_where_reachable_and_not_proved_impossible": float(
            quality["in_band"].to_numpy()[in_possible].mean()
        )
        if in_possible.any()
        else float("nan"),
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
    "border_alignment",
    "report_communities",
    "summary",
]
