"""Sinking workers into grids (下沉网格): every grid gets one responsible worker.

Per community, the grid workers (the roster less its window staff) each take a connected
set of grids; the sets are balanced by households (the largest load as small as it can be
made), using the same graph machinery as grid division on the grid adjacency graph. Named
workers are then matched to the sets (Hungarian method, ``scipy``): on a re-run a worker
keeps the set that overlaps most with the grids they had, otherwise the set nearest home.
A community's previous assignment is kept whole while its grids are unchanged and its
largest load is no worse than a fresh one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

import geopandas as gpd
import shapely

from gis.graphcut import (
    GRID_SIZE,
    METRES_PER_DEGREE,
    Graph,
    Refiner,
    connected,
    make_contiguous,
    metis,
    shared_borders,
)
from gis.rules import Band
from gis.staffing import StaffRules


@dataclass
class Assignment:
    """Result of :func:`assign`."""

    assignments: pd.DataFrame  # grid_code, worker_id
    workers: pd.DataFrame  # the roster with role (window/grid) filled in
    loads: pd.DataFrame  # per grid worker: community, grids, households, in_band, note
    moved: int  # workers whose grids changed against the previous assignment

    @property
    def share_in_band_where_possible(self) -> float:
        """Share of grid workers at 300–400 households in communities whose grids allow it."""
        ok = self.loads[self.loads["possible"]]
        return float(ok["in_band"].mean()) if len(ok) else float("nan")


def roles(workers: pd.DataFrame, window: pd.Series) -> pd.DataFrame:
    """Fill ``role``: per community the given number of window staff (其他 posts first, the
    longest-serving first), everyone else ``grid``.
    """
    w = workers.copy()
    w["role"] = "grid"
    rank = w.assign(_o=w["post"].map({"其他": 0, "副职": 1, "正职": 2}))
    rank = rank.sort_values(["community_code", "_o", "hired", "id"])
    n = rank.groupby("community_code").cumcount()
    limit = rank["community_code"].map(window).fillna(0).to_numpy()
    w.loc[rank.index[n.to_numpy() < limit], "role"] = "window"
    return w


def _grid_graph(polys: np.ndarray, hh: np.ndarray) -> Graph:
    n = len(polys)
    # grids are drawn on a fixed grid (gis.partition.GRID_SIZE): compare borders on it
    a, b, shared = shared_borders(polys, grid_size=GRID_SIZE)
    nbrs: list[list[int]] = [[] for _ in range(n)]
    ew: dict[tuple[int, int], int] = {}
    for i, j, length in zip(a.tolist(), b.tolist(), shared.tolist(), strict=True):
        if length * METRES_PER_DEGREE > 1.0:
            ew[(i, j)] = max(1, int(length * METRES_PER_DEGREE))
            nbrs[i].append(j)
            nbrs[j].append(i)
    xy = shapely.get_coordinates(shapely.point_on_surface(polys))
    return Graph(xy, hh.astype(float), [np.array(sorted(v), dtype=np.int64) for v in nbrs], ew)


def _groups(g: Graph, k: int, load_band: tuple[float, float]) -> np.ndarray:
    """K connected groups of grids with balanced households (small largest load)."""
    n = len(g.w)
    if k >= n:
        return np.arange(n, dtype=np.int64)
    total = float(g.w.sum())
    avg = total / k
    band = Band(
        min=int(min(load_band[0], math.floor(avg))),
        target=int(round(avg)),
        max=int(max(load_band[1], math.ceil(avg))),
    )
    nodes = np.arange(n)
    best: tuple[float, np.ndarray] | None = None
    for seed in range(4):
        lab = make_contiguous(g, nodes, metis(g, nodes, k, band, seed=seed, ufactor=30))
        r = Refiner(g, nodes, lab, band)
        r.run(max_steps=50 * n)
        r.anneal(np.random.default_rng(seed), iters=300 * n)
        r.run(max_steps=50 * n)
        lab = r.labels(nodes)
        worst = float(np.bincount(lab, weights=g.w, minlength=k).max())
        if best is None or worst < best[0]:
            best = (worst, lab)
    assert best is not None
    return _fill_empty(g, np.unique(best[1], return_inverse=True)[1].ravel(), k)


def _fill_empty(g: Graph, labels: np.ndarray, k: int) -> np.ndarray:
    """Open groups METIS left empty: the largest group gives up a grid on its edge (one
    whose removal keeps the group connected) until there are k groups.
    """
    labels = labels.copy()
    while int(labels.max()) + 1 < k:
        loads = np.bincount(labels, weights=g.w)
        for p in np.argsort(-loads, kind="stable"):
            members = set(np.flatnonzero(labels == p).tolist())
            if len(members) < 2:
                continue
            for n in sorted(members, key=lambda n: g.w[n]):
                if connected(members - {n}, g.nbrs):
                    labels[n] = int(labels.max()) + 1
                    break
            else:
                continue
            break
        else:
            break
    return labels


def _possible(hh: np.ndarray, k: int, lo: float, hi: float) -> bool:
    """Whether grid households can be grouped into k loads all in [lo, hi] (ignoring
    adjacency, so a 'no' is certain). Depth-first bin filling; small inputs only.
    """
    if k <= 0 or not (lo * k <= hh.sum() <= hi * k):
        return False
    items = sorted(hh.tolist(), reverse=True)
    if len(items) > 24:
        return True  # too large to decide quickly: assume possible
    loads = [0.0] * k
    steps = [0]

    def place(i: int) -> bool:
        steps[0] += 1
        if steps[0] > 200_000:
            return True
        if i == len(items):
            return all(lo <= x <= hi for x in loads)
        tried = set()
        for j in range(k):
            if loads[j] in tried or loads[j] + items[i] > hi:
                continue
            tried.add(loads[j])
            loads[j] += items[i]
            if place(i + 1):
                return True
            loads[j] -= items[i]
        return False

    return place(0)


def assign(
    grids: gpd.GeoDataFrame,
    quota: pd.DataFrame,
    workers: pd.DataFrame | None = None,
    previous: pd.DataFrame | None = None,
    *,
    rules: StaffRules | None = None,
) -> Assignment:
    """Give every grid one responsible worker.

    Parameters
    ----------
    grids
        The ``grids`` layer.
    quota
        :func:`gis.staffing.quotas` output (``window`` and ``grid_workers`` per community).
    workers
        The roster (layer ``workers``); communities without one get vacant posts
        (``worker_id`` ``<community>-V01`` …) in the quota's number.
    previous
        The ``assignments`` layer of an earlier run, to keep.
    rules
        Staffing rules (for the window staff).

    Returns
    -------
    Assignment
    """
    rules = rules or StaffRules()
    q = quota.set_index("code")
    roster = (
        workers
        if workers is not None
        else pd.DataFrame(columns=["id", "name", "community_code", "post", "hired"])
    )
    roster = roles(roster, q["window"]) if len(roster) else roster.assign(role=pd.Series(dtype=str))
    prev = (
        previous.set_index("grid_code")["worker_id"]
        if previous is not None and len(previous)
        else pd.Series(dtype=str)
    )
    homes = (
        roster.set_index("id")[["home_lon", "home_lat"]]
        if {"home_lon", "home_lat"} <= set(roster.columns)
        else None
    )
    rows, load_rows = [], []
    moved = 0
    for code, idx in grids.groupby("community_code").indices.items():
        gi = grids.iloc[idx]
        hh = gi["households"].to_numpy(dtype=float)
        names = (
            roster.loc[
                (roster["community_code"] == code) & (roster["role"] == "grid"), "id"
            ].tolist()
            if len(roster)
            else []
        )
        if not names:
            n = int(q["grid_workers"].get(code, 1)) if code in q.index else 1
            names = [f"{code}-V{j + 1:02d}" for j in range(max(1, n))]
        k = min(len(names), len(gi))
        g = _grid_graph(gi.geometry.values, hh)
        codes_ = gi["code"].tolist()
        old = {c: prev.get(c) for c in codes_}
        fresh = _groups(g, k, rules.policy_range)
        keep_old = (
            all(v is not None and v in names for v in old.values()) and len(set(old.values())) <= k
        )
        if keep_old:
            old_lab = pd.factorize(pd.Series([old[c] for c in codes_]))[0]
            if (
                np.bincount(old_lab, weights=hh).max()
                <= np.bincount(fresh, weights=hh).max() + 1e-9
            ):
                label_worker = {int(lab): old[codes_[i]] for i, lab in enumerate(old_lab)}
                labels = old_lab
            else:
                keep_old = False
        if not keep_old:
            labels = np.unique(fresh, return_inverse=True)[1].ravel()
            k = int(labels.max()) + 1
            cost = np.zeros((len(names), k))
            for w_i, w in enumerate(names):
                for grp in range(k):
                    mine = [codes_[i] for i in np.flatnonzero(labels == grp)]
                    overlap = sum(hh[codes_.index(c)] for c in mine if old.get(c) == w)
                    dist = 0.0
                    if (
                        homes is not None
                        and w in homes.index
                        and pd.notna(homes.loc[w, "home_lon"])
                    ):
                        cx, cy = g.xy[labels == grp].mean(axis=0)
                        hx, hy = homes.loc[w, ["home_lon", "home_lat"]].to_numpy(dtype=float)
                        dist = (
                            math.hypot((cx - hx) * math.cos(math.radians(cy)), cy - hy)
                            * METRES_PER_DEGREE
                        )
                    cost[w_i, grp] = dist - 1e7 * overlap
            r_idx, c_idx = linear_sum_assignment(cost)
            label_worker = {int(c): names[r] for r, c in zip(r_idx, c_idx, strict=True)}
        for i, c in enumerate(codes_):
            rows.append({"grid_code": c, "worker_id": label_worker[int(labels[i])]})
        before: dict[str, set[str]] = {}
        for c, w in old.items():
            if w is not None:
                before.setdefault(w, set()).add(c)
        after: dict[str, set[str]] = {}
        for i, c in enumerate(codes_):
            after.setdefault(label_worker[int(labels[i])], set()).add(c)
        if len(prev):
            moved += len([w for w in set(before) | set(after) if before.get(w) != after.get(w)])
        lo, hi = rules.policy_range
        possible = _possible(hh, len(names), lo, hi)
        for w in names:
            held = after.get(w, set())
            load = float(sum(hh[codes_.index(c)] for c in held))
            in_band = lo <= load <= hi
            note = ""
            if not held:
                note = f"{len(names)} grid workers for {len(codes_)} grids: no grid left (support)"
            elif not in_band and not possible:
                note = (
                    f"{len(codes_)} grids of {int(hh.min())}–{int(hh.max())} households cannot be grouped "
                    f"into {len(names)} loads of {lo:g}–{hi:g}"
                )
            elif not in_band:
                note = "the grids' adjacency leaves no connected grouping inside the band"
            load_rows.append(
                {
                    "worker_id": w,
                    "community_code": code,
                    "grids": len(held),
                    "households": int(load),
                    "in_band": in_band,
                    "possible": possible,
                    "note": note,
                }
            )
    return Assignment(
        pd.DataFrame(rows, columns=["grid_code", "worker_id"]),
        roster,
        pd.DataFrame(load_rows),
        moved,
    )
