"""Stable re-division (网格动态调整): households change every year, grids mostly should not.

Grids whose households are still inside the band keep their code and their exact
boundary. Each grid that left the band is grown into a small region with neighbouring
grids (the out-of-band ones first) until the region's households can be split into grids
inside the band; only that region is divided again. New grids get fresh sequences above
every one the community ever used, and the retired codes go to the ``grid_history``
layer, so a code never names two different areas.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

import geopandas as gpd
import shapely

from gis import schema
from gis.graphcut import GRID_SIZE, shared_borders
from gis.partition import divide_community, number_grids, scale_and_roads
from gis.rules import Band, GridRules


@dataclass
class Update:
    """Result of :func:`update`: the new grids layer, history rows added, and counts."""

    grids: gpd.GeoDataFrame
    history: pd.DataFrame
    kept: int
    retired: int
    created: int

    @property
    def stable_share(self) -> float:
        """Share of the previous grids that kept code and boundary."""
        total = self.kept + self.retired
        return self.kept / total if total else 1.0


def _assign(points: np.ndarray, polys: np.ndarray) -> np.ndarray:
    """Index of the polygon each point lies in; points outside all go to the nearest."""
    tree = shapely.STRtree(polys)
    pts = shapely.points(points)
    pi, gi = tree.query(pts, predicate="intersects")
    out = np.full(len(points), -1, dtype=np.int64)
    order = np.lexsort((gi, pi))
    first = np.unique(pi[order], return_index=True)[1]
    out[pi[order][first]] = gi[order][first]
    lost = np.flatnonzero(out < 0)
    if len(lost):
        out[lost] = tree.query_nearest(pts[lost], return_distance=False)[1]
    return out


def _regions(polys: np.ndarray, hh: np.ndarray, band: Band, max_grids: int = 8) -> list[list[int]]:
    """Groups of adjacent grids to divide again: each out-of-band grid plus as few
    neighbours as make the group's households splittable into in-band grids.
    """
    n = len(polys)
    a, b, shared = shared_borders(polys, grid_size=GRID_SIZE)  # grids: on their fixed grid
    nbrs: list[dict[int, float]] = [{} for _ in range(n)]
    for i, j, length in zip(a.tolist(), b.tolist(), shared.tolist(), strict=True):
        if length > 0:
            nbrs[i][j] = length
            nbrs[j][i] = length
    inband = np.asarray(band.contains(hh), dtype=bool)
    taken = np.zeros(n, dtype=bool)
    out = []
    for g in np.flatnonzero(~inband):
        if taken[g]:
            continue
        region = [int(g)]
        total = float(hh[int(g)])
        while not band.reachable(total) and len(region) < max_grids:
            cand = {j for i in region for j in nbrs[i] if j not in region and not taken[j]}
            if not cand:
                break
            # out-of-band neighbours first, then the one whose households fix the group best
            j = min(
                sorted(cand),
                key=lambda j: (
                    bool(inband[j]),
                    0 if band.reachable(total + float(hh[j])) else 1,
                    -sum(nbrs[j].get(i, 0) for i in region),
                ),
            )
            region.append(j)
            total += float(hh[j])
        if band.reachable(total) and (len(region) > 1 or band.choose(total) > 1):
            taken[region] = True
            out.append(region)
    return out


def update(
    grids: gpd.GeoDataFrame,
    communities: gpd.GeoDataFrame,
    buildings: gpd.GeoDataFrame,
    roads: gpd.GeoDataFrame | None = None,
    *,
    rules: GridRules | None = None,
    history: pd.DataFrame | None = None,
    today: date | None = None,
) -> Update:
    """Re-divide only what changed households require.

    Parameters
    ----------
    grids
        The current ``grids`` layer.
    communities, buildings, roads
        Current layers (buildings with this year's households).
    rules
        Household bands (default 300–400, target 350).
    history
        The ``grid_history`` layer so far (retired codes are never reused).
    today
        Date recorded for retired grids (default today).

    Returns
    -------
    Update
        New grids layer (kept grids unchanged but for their counts), the history rows
        added, and how many grids were kept, retired and created.
    """
    rules = rules or GridRules()
    history = history if history is not None else schema.empty("grid_history")
    when = (today or date.today()).isoformat()
    kinds = communities.set_index("code")["kind"]
    scale, tree = scale_and_roads(communities, roads)
    polys = grids.geometry.values
    owner = _assign(shapely.get_coordinates(buildings.geometry.values), polys)
    hh_b = buildings["households"].to_numpy(dtype=float)
    res_b = (
        buildings["residents"].fillna(0).to_numpy(dtype=float)
        if "residents" in buildings
        else np.zeros(len(buildings))
    )
    bxy = shapely.get_coordinates(buildings.geometry.values)
    hh = np.bincount(owner, weights=hh_b, minlength=len(grids))
    res = np.bincount(owner, weights=res_b, minlength=len(grids))
    out = grids.copy()
    out["households"] = hh.astype(np.int64)
    out["residents"] = res.astype(np.int64)
    drop: list[int] = []
    new_rows: list[dict] = []
    hist_rows: list[dict] = []
    used = history.groupby("community_code")["seq"].apply(set).to_dict() if len(history) else {}
    for code, idx in grids.groupby("community_code").indices.items():
        band = rules.band(str(kinds.get(code, "urban")))
        seqs = set(grids["seq"].to_numpy()[idx].tolist()) | used.get(code, set())
        for region in _regions(polys[idx], hh[idx], band):
            members = idx[region]
            area = shapely.union_all(polys[members])
            inside = np.flatnonzero(np.isin(owner, members))
            made = divide_community(area, bxy[inside], hh_b[inside], band, tree, scale)
            rows = number_grids(code, area, made, seqs, hh_b[inside], res_b[inside])
            seqs |= {r["seq"] for r in rows}
            new_rows += rows
            made_codes = [r["code"] for r in rows]
            for i in members:
                hist_rows.append(
                    {
                        "code": grids["code"].iloc[i],
                        "community_code": code,
                        "seq": int(grids["seq"].iloc[i]),
                        "retired": when,
                        "replaced_by": ",".join(made_codes),
                    }
                )
            drop.extend(members.tolist())
    kept = out.drop(index=out.index[drop])
    added = (
        gpd.GeoDataFrame(new_rows, geometry="geometry", crs=grids.crs)
        if new_rows
        else schema.empty("grids")
    )
    merged = pd.concat([kept, added], ignore_index=True).sort_values("code", kind="stable")
    new_grids = schema.conform(
        "grids", gpd.GeoDataFrame(merged, geometry="geometry", crs=grids.crs)
    )
    added_hist = (
        schema.conform("grid_history", pd.DataFrame(hist_rows))
        if hist_rows
        else schema.empty("grid_history")
    )
    return Update(new_grids, added_hist, kept=len(kept), retired=len(drop), created=len(new_rows))
