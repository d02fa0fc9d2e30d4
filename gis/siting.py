"""Facility siting (设施选址): test candidate sites and optimise where to build.

Everything starts from a coverage run (:func:`gis.coverage.compute`): the buildings' current
distance to the nearest facility of the type, their KD-tree and the road network are reused,
so testing a site only measures the distances from the site itself.

Optimisation models (existing facilities count as already open):

- ``mclp`` maximal covering: k new sites that newly cover the most demand;
- ``lscp`` set covering: the fewest sites that cover all demand any candidate can reach;
- ``pmedian``: k new sites that minimise the total demand-weighted distance to the
  nearest facility, existing or new.

They are solved exactly as mixed-integer programmes with HiGHS (SciPy's ``milp``) under a
time limit; the optimality gap HiGHS proves is reported. Demand points that the same set of
candidates covers are merged first (an exact reduction that shrinks city-scale instances
many times). A greedy answer is computed too: it is kept, with its worst-case bound, when
HiGHS finds nothing better within the limit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import Bounds, LinearConstraint, milp

import geopandas as gpd
import shapely

from gis import network as gnet
from gis import schema
from gis.coverage import Coverage, served
from gis.errors import ValidationError
from gis.io import locate

OBJECTIVES = ("mclp", "lscp", "pmedian")
# a p-median MILP keeps one variable per (demand, closer candidate) pair
MAX_PMEDIAN_PAIRS = 4_000_000


@dataclass
class Planner:
    """One facility type's siting context, built once from a coverage run."""

    type: pd.Series  # the catalogue row
    cv: Coverage
    weight: np.ndarray  # served demand per building
    dist: np.ndarray  # current distance to the nearest existing facility (inf: none)
    covered: np.ndarray
    facilities_xy: np.ndarray  # existing facilities of the type, metric
    facilities_area: np.ndarray
    network: bool
    households: pd.Series  # per community

    @property
    def code(self) -> str:
        """The facility type code."""
        return str(self.type["code"])

    @property
    def radius(self) -> float:
        """The type's service distance in metres."""
        return float(self.type["radius_m"])

    @classmethod
    def from_coverage(
        cls,
        cv: Coverage,
        buildings: pd.DataFrame,
        facilities: gpd.GeoDataFrame,
        types: pd.DataFrame,
        code: str,
    ) -> Planner:
        """The context for type ``code`` from coverage ``cv`` of ``buildings``."""
        known = types.set_index("code")
        if code not in known.index:
            raise ValidationError(
                "siting",
                [f"unknown facility type {code!r}; the catalogue has {', '.join(known.index)}"],
            )
        if cv.space is None or f"dist_{code}" not in cv.buildings:
            raise ValidationError("siting", [f"coverage of {code} has not been computed"])
        t = known.loc[code].copy()
        t["code"] = code
        space = cv.space
        status = facilities.get("status", pd.Series("existing", index=facilities.index))
        mine = (
            facilities["type"].eq(code).to_numpy()
            & status.fillna("existing").eq("existing").to_numpy()
        )
        fm = facilities[mine].to_crs(space.crs)
        dist = cv.buildings[f"dist_{code}"].to_numpy(dtype=float)
        return cls(
            type=t,
            cv=cv,
            weight=served(buildings, str(t["serves"]), space.kinds),
            dist=np.where(np.isnan(dist), np.inf, dist),
            covered=cv.buildings[f"covered_{code}"].to_numpy(dtype=bool),
            facilities_xy=shapely.get_coordinates(fm.geometry.values),
            facilities_area=fm["area_m2"].to_numpy(dtype=float),
            network=cv.mode == "network",
            households=buildings.groupby("community_code")["households"].sum(),
        )


def candidates(
    points: gpd.GeoDataFrame | pd.DataFrame | list[tuple[float, float]],
    *,
    area: float | list[float | None] | None = None,
    prefix: str = "S",
) -> gpd.GeoDataFrame:
    """Candidate sites as a frame ``id, area_m2, geometry`` (EPSG:4326 points).

    ``points`` is a frame with point geometry (ids kept when it has an ``id`` column) or
    a list of (lon, lat).
    """
    if isinstance(points, gpd.GeoDataFrame):
        gdf = points.to_crs(schema.STORAGE_CRS) if points.crs else points.set_crs(4326)
        ids = gdf["id"].astype(str) if "id" in gdf else None
        geom = gdf.geometry.values
        areas = gdf["area_m2"] if "area_m2" in gdf else None
    else:
        pts = np.asarray(points, dtype=float).reshape(-1, 2)
        geom = shapely.points(pts)
        ids, areas = None, None
    n = len(geom)
    if ids is None:
        ids = pd.Series([f"{prefix}{i + 1:04d}" for i in range(n)])
    if areas is None:
        areas = pd.Series(area if isinstance(area, list) else [area] * n, dtype="Float64")
    problems = []
    bad = ~shapely.is_valid(geom) | (shapely.get_type_id(geom) != 0)
    problems += [f"candidate {i}: not a point" for i in np.asarray(ids)[bad]]
    a = pd.to_numeric(pd.Series(np.asarray(areas, dtype=object)), errors="coerce")
    problems += [
        f"candidate {i}: floor area {v:g} m² is negative"
        for i, v in zip(ids, a, strict=True)
        if pd.notna(v) and v < 0
    ]
    if pd.Series(ids).duplicated().any():
        problems.append(f"duplicate candidate ids: {sorted(set(ids[pd.Series(ids).duplicated()]))}")
    if problems:
        raise ValidationError("candidate sites", problems)
    return gpd.GeoDataFrame(
        {"id": np.asarray(ids, dtype=object), "area_m2": a.to_numpy(dtype=float)},
        geometry=gpd.GeoSeries(geom, crs=schema.STORAGE_CRS),
        crs=schema.STORAGE_CRS,
    )


def _place(p: Planner, cands: gpd.GeoDataFrame) -> tuple[np.ndarray, pd.Series]:
    """Metric coordinates and community of each candidate; outside the city is an error."""
    space = p.cv.space
    assert space is not None
    if space.communities is not None:
        comm = locate(cands.geometry, space.communities)
        outside = comm.isna().to_numpy()
    else:
        hull = shapely.convex_hull(shapely.multipoints(space.xy))
        xy = shapely.get_coordinates(cands.to_crs(space.crs).geometry.values)
        outside = ~shapely.contains_xy(shapely.buffer(hull, p.radius), xy[:, 0], xy[:, 1])
        comm = pd.Series([None] * len(cands), index=cands.index, dtype=object)
    if outside.any():
        raise ValidationError(
            "candidate sites",
            [
                f"candidate {i} at {g.x:.6f},{g.y:.6f} lies outside the city"
                for i, g in zip(cands["id"][outside], cands.geometry[outside], strict=True)
            ],
        )
    xy = shapely.get_coordinates(cands.to_crs(space.crs).geometry.values)
    return xy, comm


@dataclass
class Evaluation:
    """Result of :func:`evaluate`.

    One row per candidate, best first, and the newly covered demand per grid and community.
    """

    ranking: pd.DataFrame
    by_unit: pd.DataFrame


def evaluate(p: Planner, cands: gpd.GeoDataFrame) -> Evaluation:
    """What each candidate site would add on its own, side by side."""
    space = p.cv.space
    assert space is not None
    cxy, comm = _place(p, cands)
    n = len(cands)
    src, dst, _ = space.reach(cxy, p.radius, p.network)
    new = ~p.covered[dst] & (p.weight[dst] > 0)
    gain = np.bincount(src[new], weights=p.weight[dst[new]], minlength=n)
    gain_b = np.bincount(src[new], minlength=n)
    total = p.weight.sum()
    covered_now = p.weight[p.covered].sum()
    # 2SFCA as coverage computes it (straight line): a new site adds its supply over the
    # demand in its catchment to every building there; the other ratios do not change
    s_src, s_dst, _ = _pairs(space, cxy, p.radius)
    load = np.bincount(s_src, weights=p.weight[s_dst], minlength=n)
    supply = np.where(np.isnan(cands["area_m2"].to_numpy(dtype=float)), 1.0, cands["area_m2"])
    ratio = np.divide(supply, load, out=np.zeros(n), where=load > 0)
    access = p.cv.buildings[f"access_{p.code}"].to_numpy(dtype=float)
    before = np.divide(
        np.bincount(s_src, weights=p.weight[s_dst] * access[s_dst], minlength=n),
        load,
        out=np.full(n, np.nan),
        where=load > 0,
    )
    ranking = pd.DataFrame(
        {
            "id": cands["id"].to_numpy(),
            "type": p.code,
            "lon": cands.geometry.x.to_numpy(),
            "lat": cands.geometry.y.to_numpy(),
            "community_code": comm.to_numpy(),
            "area_m2": cands["area_m2"].to_numpy(dtype=float),
            "newly_covered": gain,
            "newly_covered_buildings": gain_b,
            "uncovered_after": total - covered_now - gain,
            "share_before": covered_now / total if total else np.nan,
            "share_after": (covered_now + gain) / total if total else np.nan,
            "access_before": before,
            "access_after": np.where(load > 0, before + ratio, np.nan),
        }
    )
    if pd.notna(p.type.get("area_per_100_households")):
        ranking = ranking.join(_area_change(p, ranking))
    ranking = ranking.sort_values(["newly_covered", "id"], ascending=[False, True])
    ranking.insert(0, "rank", np.arange(1, n + 1))
    units = space.units
    parts = []
    for level in ("grid", "community"):
        if level not in units:
            continue
        key = units[level].to_numpy()[dst[new]]
        ok = pd.notna(key)
        f = pd.DataFrame(
            {
                "id": cands["id"].to_numpy()[src[new][ok]],
                "level": level,
                "code": key[ok],
                "newly_covered": p.weight[dst[new][ok]],
                "buildings": 1,
            }
        )
        parts.append(f.groupby(["id", "level", "code"], as_index=False).sum())
    by_unit = (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame(columns=["id", "level", "code", "newly_covered", "buildings"])
    )
    return Evaluation(ranking.reset_index(drop=True), by_unit)


def _pairs(space: object, xy: np.ndarray, r: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from gis.coverage import pairs_within

    return pairs_within(space.tree, xy, r)  # type: ignore[attr-defined]


def _area_change(p: Planner, ranking: pd.DataFrame) -> pd.DataFrame:
    cap = p.cv.capacity
    cap = cap[cap["type"] == p.code].set_index("community_code")
    hh = p.households.reindex(ranking["community_code"]).to_numpy(dtype=float)
    area = cap["area_m2"].reindex(ranking["community_code"]).fillna(0).to_numpy(dtype=float)
    add = ranking["area_m2"].fillna(0).to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return pd.DataFrame(
            {
                "area_per_100_before": area / hh * 100,
                "area_per_100_after": (area + add) / hh * 100,
                "area_standard": float(p.type["area_per_100_households"]),
            },
            index=ranking.index,
        )


def generate(p: Planner, n: int = 200) -> gpd.GeoDataFrame:
    """Candidate sites drawn from the gaps: uncovered demand is binned into squares as
    wide as the service distance; each of the ``n`` heaviest squares gives one site at the
    uncovered building nearest its demand-weighted centre (on the road network, the road
    vertex nearest that building).
    """
    space = p.cv.space
    assert space is not None
    need = np.flatnonzero(~p.covered & (p.weight > 0))
    if not len(need):
        return candidates([], prefix="G")
    xy, w = space.xy[need], p.weight[need]
    cell = np.floor(xy / p.radius).astype(np.int64)
    _, key = np.unique(cell, axis=0, return_inverse=True)
    key = key.ravel()
    mass = np.bincount(key, weights=w)
    cx = np.bincount(key, weights=w * xy[:, 0]) / mass
    cy = np.bincount(key, weights=w * xy[:, 1]) / mass
    top = np.argsort(-mass, kind="stable")[:n]
    # the uncovered building of the square nearest its centre
    d = np.hypot(xy[:, 0] - cx[key], xy[:, 1] - cy[key])
    order = np.lexsort((d, key))
    first = order[np.unique(key[order], return_index=True)[1]]
    site = xy[first[top]]
    pts = gpd.GeoSeries(shapely.points(site), crs=space.crs).to_crs(schema.STORAGE_CRS)
    if p.network and space.network is not None:
        v, _ = gnet.snap(space.network, site)
        on_road = gpd.GeoSeries(shapely.points(space.network.xy[v]), crs=space.crs).to_crs(
            schema.STORAGE_CRS
        )
        # a road vertex outside the city would be no site: keep the building there
        inside = (
            locate(on_road, space.communities).notna().to_numpy()
            if space.communities is not None
            else np.ones(len(v), dtype=bool)
        )
        pts = pts.where(~inside, on_road)
    out = candidates(gpd.GeoDataFrame(geometry=pts), prefix="G")
    return out.drop_duplicates("geometry").reset_index(drop=True)


@dataclass
class Solution:
    """Result of :func:`optimise`."""

    objective_name: str
    chosen: list[str]
    objective: float  # mclp: newly covered demand; lscp: sites; pmedian: weighted distance
    bound: float  # proven bound on the optimum (upper for mclp, lower otherwise)
    gap: float  # relative gap between objective and bound
    status: str  # optimal | time limit | heuristic
    seconds: float
    newly_covered: float
    uncoverable: float = 0.0  # demand no candidate reaches (lscp, pmedian)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """The solution as plain JSON-ready values."""
        return {
            "objective_name": self.objective_name,
            "chosen": self.chosen,
            "objective": self.objective,
            "bound": self.bound,
            "gap": self.gap,
            "status": self.status,
            "seconds": round(self.seconds, 3),
            "newly_covered": self.newly_covered,
            "uncoverable": self.uncoverable,
            "notes": self.notes,
        }


def optimise(
    p: Planner,
    cands: gpd.GeoDataFrame,
    k: int | None,
    objective: str = "mclp",
    *,
    time_limit: float = 60.0,
    within: str | None = None,
) -> Solution:
    """Choose new sites among ``cands`` for the planner's type.

    ``within`` restricts demand to the buildings of one district, street or community
    (a code prefix).
    """
    t0 = time.perf_counter()
    problems = []
    if objective not in OBJECTIVES:
        problems.append(f"objective {objective!r} is not one of {', '.join(OBJECTIVES)}")
    if objective != "lscp":
        if k is None or k < 1:
            problems.append(f"k must be a positive number of sites (got {k})")
        elif k > len(cands):
            problems.append(f"k = {k} is more than the {len(cands)} candidate sites")
    if not len(cands):
        problems.append("no candidate sites")
    if problems:
        raise ValidationError("optimise", problems)
    space = p.cv.space
    assert space is not None
    cxy, _ = _place(p, cands)
    notes: list[str] = []
    mask = p.weight > 0
    if within:
        mask &= space.units["community"].str.startswith(within).to_numpy()
        if not mask.any():
            raise ValidationError("optimise", [f"no demand within {within!r}"])
    ids = cands["id"].to_numpy()
    if objective in ("mclp", "lscp"):
        src, dst, _ = space.reach(cxy, p.radius, p.network)
        keep = mask[dst] & ~p.covered[dst]
        a, w = _merge_rows(dst[keep], src[keep], p.weight, len(cands))
        uncoverable = float(p.weight[mask & ~p.covered].sum() - w.sum())
        if objective == "mclp":
            assert k is not None
            sol = solve_mclp(a, w, k, time_limit=time_limit)
        else:
            sol = solve_lscp(a, time_limit=time_limit)
    else:
        assert k is not None
        d0 = p.dist
        finite = np.isfinite(d0[mask])
        limit = float(d0[mask][finite].max()) if finite.any() else np.inf
        if finite.any() and not finite.all():
            notes.append(
                f"{p.weight[mask][~finite].sum():g} demand reaches no existing facility: "
                f"a site within {limit:,.0f} m serves it, else it counts as unserved"
            )
        estimate = len(cands) * int(mask.sum()) if not np.isfinite(limit) else None
        if estimate is not None and estimate > MAX_PMEDIAN_PAIRS:
            raise ValidationError(
                "optimise",
                [
                    f"p-median over {int(mask.sum()):,} demand points × {len(cands):,} "
                    f"candidates is too large ({estimate:,} pairs > {MAX_PMEDIAN_PAIRS:,}); "
                    "restrict it with --within DISTRICT|STREET|COMMUNITY or fewer candidates"
                ],
            )
        src, dst, d = space.reach(cxy, limit, p.network)
        keep = mask[dst] & (d < d0[dst])
        if keep.sum() > MAX_PMEDIAN_PAIRS:
            raise ValidationError(
                "optimise",
                [
                    f"p-median has {int(keep.sum()):,} demand-candidate pairs "
                    f"(> {MAX_PMEDIAN_PAIRS:,}); restrict it with --within or fewer candidates"
                ],
            )
        rows = np.flatnonzero(mask)
        pos = np.full(len(mask), -1)
        pos[rows] = np.arange(len(rows))
        sol = solve_pmedian(
            pos[dst[keep]],
            src[keep],
            d[keep],
            p.weight[rows],
            d0[rows],
            len(cands),
            k,
            time_limit=time_limit,
        )
        uncoverable = sol.uncoverable
    chosen = sol.chosen_index
    # what the chosen sites newly cover, whatever the objective
    if len(chosen):
        s2, d2, _ = space.reach(cxy[chosen], p.radius, p.network)
        hit = np.unique(d2[mask[d2] & ~p.covered[d2]])
        newly = float(p.weight[hit].sum())
    else:
        newly = 0.0
    return Solution(
        objective,
        [str(ids[i]) for i in chosen],
        sol.objective,
        sol.bound,
        sol.gap,
        sol.status,
        time.perf_counter() - t0,
        newly,
        uncoverable,
        notes + sol.notes,
    )


def _merge_rows(
    row: np.ndarray, col: np.ndarray, weight: np.ndarray, ncols: int
) -> tuple[sparse.csr_array, np.ndarray]:
    """Coverage matrix (demand × candidate), merged by rows.

    Demand points that the same candidates cover become one row with their summed weight.
    """
    if not len(row):
        return sparse.csr_array((0, ncols)), np.zeros(0)
    ids, r = np.unique(row, return_inverse=True)
    m = sparse.csr_array((np.ones(len(r)), (r.ravel(), col)), shape=(len(ids), ncols))
    m.sum_duplicates()
    m.sort_indices()
    m.data[:] = 1
    # a row's signature: its column list as bytes
    sig = [m.indices[m.indptr[i] : m.indptr[i + 1]].tobytes() for i in range(m.shape[0])]
    codes, uniq = pd.factorize(pd.Series(sig))
    w = np.bincount(codes, weights=weight[ids], minlength=len(uniq))
    first = np.unique(codes, return_index=True)[1]
    return m[first], w


@dataclass
class _Answer:
    chosen_index: np.ndarray
    objective: float
    bound: float
    gap: float
    status: str
    uncoverable: float = 0.0
    notes: list[str] = field(default_factory=list)


def _gap(obj: float, bound: float) -> float:
    if obj == bound:
        return 0.0
    return abs(bound - obj) / max(abs(obj), 1e-12)


def _status(res: object) -> str:
    return "optimal" if res.status == 0 else "time limit"  # type: ignore[attr-defined]


def greedy_mclp(a: sparse.csr_array, w: np.ndarray, k: int) -> np.ndarray:
    """Greedy MCLP: ``k`` sites, each the one adding the most uncovered weight."""
    at = a.T.tocsr()
    left = w.astype(float).copy()
    chosen: list[int] = []
    for _ in range(min(k, a.shape[1])):
        gain = at @ left
        gain[chosen] = -1
        j = int(np.argmax(gain))
        chosen.append(j)
        left[at.indices[at.indptr[j] : at.indptr[j + 1]]] = 0
    return np.asarray(chosen, dtype=np.int64)


def _covered_weight(a: sparse.csr_array, w: np.ndarray, chosen: np.ndarray) -> float:
    if not len(chosen) or not a.shape[0]:
        return 0.0
    hit = np.asarray(a[:, chosen].sum(axis=1)).ravel() > 0
    return float(w[hit].sum())


def solve_mclp(a: sparse.csr_array, w: np.ndarray, k: int, *, time_limit: float = 60.0) -> _Answer:
    """Maximal covering: pick ``k`` columns of ``a`` (rows: demand, 1 where a column
    covers a row) covering the most row weight ``w``.

    max Σ w_i z_i  s.t.  z_i ≤ Σ_j a_ij y_j,  Σ_j y_j = k,  y binary, 0 ≤ z ≤ 1.
    """
    m, n = a.shape
    g = greedy_mclp(a, w, k)
    gval = _covered_weight(a, w, g)
    if m == 0:
        return _Answer(g, 0.0, 0.0, 0.0, "optimal")
    c = np.concatenate([np.zeros(n), -w])
    cover = sparse.hstack([-a, sparse.eye_array(m)]).tocsr()
    count = sparse.csr_array(np.concatenate([np.ones(n), np.zeros(m)])[None, :])
    res = milp(
        c,
        constraints=[
            LinearConstraint(cover, -np.inf, 0),
            LinearConstraint(count, k, k),
        ],
        integrality=np.concatenate([np.ones(n), np.zeros(m)]),
        bounds=Bounds(0, 1),
        options={"time_limit": time_limit, "mip_rel_gap": 1e-9},
    )
    # greedy covers at least 1 - (1 - 1/k)^k of the optimum
    gbound = gval / (1 - (1 - 1 / k) ** k)
    if res.x is None:
        return _Answer(g, gval, gbound, _gap(gval, gbound), "heuristic")
    y = np.flatnonzero(res.x[:n] > 0.5)
    val = _covered_weight(a, w, y)
    bound = min(-res.mip_dual_bound, gbound) if res.mip_dual_bound is not None else gbound
    if gval > val:  # only possible under the time limit
        return _Answer(g, gval, bound, _gap(gval, bound), "time limit")
    bound = max(bound, val)
    return _Answer(y, val, bound, _gap(val, bound), _status(res))


def solve_lscp(a: sparse.csr_array, *, time_limit: float = 60.0) -> _Answer:
    """Set covering: the fewest columns covering every row of ``a``."""
    m, n = a.shape
    if m == 0:
        return _Answer(np.zeros(0, dtype=np.int64), 0.0, 0.0, 0.0, "optimal")
    res = milp(
        np.ones(n),
        constraints=[LinearConstraint(a, 1, np.inf)],
        integrality=np.ones(n),
        bounds=Bounds(0, 1),
        options={"time_limit": time_limit},
    )
    if res.x is None:  # greedy set cover, within H(max column size) of the optimum
        left = np.ones(m, dtype=bool)
        at = a.T.tocsr()
        chosen: list[int] = []
        while left.any():
            j = int(np.argmax(at @ left.astype(float)))
            chosen.append(j)
            left[at.indices[at.indptr[j] : at.indptr[j + 1]]] = False
        h = float(np.sum(1 / np.arange(1, int(np.diff(at.indptr).max()) + 1)))
        val = float(len(chosen))
        return _Answer(np.asarray(chosen), val, np.ceil(val / h), _gap(val, val / h), "heuristic")
    y = np.flatnonzero(res.x > 0.5)
    bound = float(np.ceil(res.mip_dual_bound - 1e-9)) if res.mip_dual_bound else len(y)
    return _Answer(y, float(len(y)), bound, _gap(len(y), bound), _status(res))


def solve_pmedian(
    row: np.ndarray,
    col: np.ndarray,
    d: np.ndarray,
    w: np.ndarray,
    d0: np.ndarray,
    n: int,
    k: int,
    *,
    time_limit: float = 60.0,
) -> _Answer:
    """p-median with already open facilities: demand i (weight ``w[i]``) goes to its
    nearest open facility: an existing one at ``d0[i]`` (inf: none) or a chosen candidate
    ``col`` at ``d`` (pairs given only where closer than ``d0``).

    min Σ w_i (d0_i x_i0 + Σ_j d_ij x_ij)  s.t.  x_i0 + Σ_j x_ij = 1,  x_ij ≤ y_j,
    Σ_j y_j = k.
    """
    m = len(w)
    reach = np.isfinite(d0)
    reach[row] = True
    notes = []
    lost = float(w[~reach].sum())
    if lost:
        notes.append(f"{lost:g} demand reaches no facility or candidate and is left out")
    # demand with no existing facility may stay unserved at a penalty beyond every
    # distance, so a k that cannot serve everyone is not infeasible (never chosen when a
    # chosen site reaches it)
    penalty = 10 * float(max(d.max(initial=0), d0[np.isfinite(d0)].max(initial=0))) + 1
    d0 = np.where(np.isfinite(d0), d0, penalty)
    i0 = np.flatnonzero(reach)
    p = len(row)
    # variables: y (n) | x pairs (p) | x0 (len(i0))
    nv = n + p + len(i0)
    c = np.concatenate([np.zeros(n), w[row] * d, w[i0] * d0[i0]])
    rows = np.flatnonzero(reach)
    rpos = np.full(m, -1)
    rpos[rows] = np.arange(len(rows))
    assign = sparse.csr_array(
        (
            np.ones(p + len(i0)),
            (np.concatenate([rpos[row], rpos[i0]]), n + np.arange(p + len(i0))),
        ),
        shape=(len(rows), nv),
    )
    link = sparse.csr_array(
        (
            np.concatenate([np.ones(p), -np.ones(p)]),
            (np.concatenate([np.arange(p), np.arange(p)]), np.concatenate([n + np.arange(p), col])),
        ),
        shape=(p, nv),
    )
    count = sparse.csr_array(
        (np.ones(n), (np.zeros(n, dtype=np.int64), np.arange(n))), shape=(1, nv)
    )
    res = milp(
        c,
        constraints=[
            LinearConstraint(assign, 1, 1),
            LinearConstraint(link, -np.inf, 0),
            LinearConstraint(count, k, k),
        ],
        integrality=np.concatenate([np.ones(n), np.zeros(p + len(i0))]),
        bounds=Bounds(0, 1),
        options={"time_limit": time_limit, "mip_rel_gap": 1e-9},
    )

    def cost(chosen: np.ndarray) -> float:
        best = d0.copy()
        sel = np.isin(col, chosen)
        np.minimum.at(best, row[sel], d[sel])
        return float((w * np.where(reach, best, 0)).sum())

    def unserved(chosen: np.ndarray) -> list[str]:
        best = d0.copy()
        sel = np.isin(col, chosen)
        np.minimum.at(best, row[sel], d[sel])
        left = float(w[reach & (best >= penalty)].sum())
        return [f"{left:g} demand is out of reach of every chosen site"] if left else []

    if res.x is None:  # greedy: add the site that cuts the cost most, k times
        chosen: list[int] = []
        for _ in range(k):
            trial = [(cost(np.asarray(chosen + [j])), j) for j in range(n) if j not in chosen]
            chosen.append(min(trial)[1])
        val = cost(np.asarray(chosen))
        # every candidate open bounds the optimum from below
        lb = cost(np.arange(n))
        g = np.asarray(chosen)
        return _Answer(g, val, lb, _gap(val, lb), "heuristic", lost, notes + unserved(g))
    y = np.flatnonzero(res.x[:n] > 0.5)
    val = cost(y)
    bound = min(float(res.mip_dual_bound), val) if res.mip_dual_bound is not None else val
    return _Answer(y, val, bound, _gap(val, bound), _status(res), lost, notes + unserved(y))
