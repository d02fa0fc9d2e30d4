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
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pymetis
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import QhullError, Voronoi

import geopandas as gpd
import shapely

from gis import codes, schema
from gis.crs import metric_crs_of
from gis.errors import ValidationError

METRES_PER_DEGREE = 111_320.0
ROAD_FACTOR = 0.05
MIN_SHARED_M = 2.0  # neighbours must share at least this much border inside the community
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Band:
    """Households per grid: the allowed band and the target inside it."""

    min: int = 300
    target: int = 350
    max: int = 400

    def __post_init__(self) -> None:
        if not 0 < self.min <= self.target <= self.max:
            raise ValidationError(
                "grid band",
                [f"need 0 < min ≤ target ≤ max, got {self.min}, {self.target}, {self.max}"],
            )

    def k_range(self, households: float) -> tuple[int, int]:
        """The whole numbers of grids ``[lo, hi]`` that keep every grid in the band."""
        return math.ceil(households / self.max), math.floor(households / self.min)

    def reachable(self, households: float) -> bool:
        """Whether some whole number of grids puts ``households`` in the band.

        Examples
        --------
        >>> Band().reachable(450), Band().reachable(700)
        (False, True)
        """
        lo, hi = self.k_range(households)
        return households > 0 and max(lo, 1) <= hi

    def choose(self, households: float) -> int:
        """The number of grids for ``households``: nearest the target within the band, else
        the one with the smallest excursion from the band (fewer grids on a tie).
        """
        if households <= 0:
            return 1
        lo, hi = self.k_range(households)
        lo = max(lo, 1)
        if lo <= hi:
            return int(min(max(round(households / self.target), lo), hi))
        options = sorted({max(1, hi), max(1, lo)})
        return min(options, key=lambda k: (self.excursion(households / k), k))

    def excursion(self, households: float) -> float:
        """How far one grid's households lie outside the band (0 inside)."""
        return max(0.0, self.min - households, households - self.max)

    def contains(self, households: np.ndarray | float) -> np.ndarray | bool:
        """Whether households lie inside the band."""
        return (np.asarray(households) >= self.min) & (np.asarray(households) <= self.max)


@dataclass(frozen=True)
class GridRules:
    """Bands per community kind (defaults: 300–400, target 350, for both)."""

    urban: Band = field(default_factory=Band)
    rural: Band = field(default_factory=Band)

    def band(self, kind: str) -> Band:
        """The band of a community kind (``urban`` or ``rural``)."""
        return self.rural if kind == "rural" else self.urban


@dataclass
class Division:
    """The result of dividing: grids (layer ``grids``) and a report per community."""

    grids: gpd.GeoDataFrame
    communities: pd.DataFrame


# --- the graph --------------------------------------------------------------------------


@dataclass
class _Graph:
    xy: np.ndarray  # scaled coordinates (x·cos φ, y), degrees
    w: np.ndarray  # households per node
    nbrs: list[np.ndarray]
    ew: dict[tuple[int, int], int]

    def csr(self, nodes: np.ndarray) -> tuple[list[int], list[int], list[int]]:
        index = {int(n): i for i, n in enumerate(nodes)}
        xadj, adjncy, eweights = [0], [], []
        for n in nodes:
            for m in self.nbrs[n]:
                j = index.get(int(m))
                if j is not None:
                    adjncy.append(j)
                    eweights.append(self.ew[(min(n, m), max(n, m))])
            xadj.append(len(adjncy))
        return xadj, adjncy, eweights


def _graph(
    xy: np.ndarray, w: np.ndarray, region: shapely.Geometry, roads: shapely.STRtree | None
) -> _Graph:
    """Voronoi-dual adjacency of the nodes inside ``region`` (all in scaled coordinates)."""
    n = len(xy)
    nbrs: list[list[int]] = [[] for _ in range(n)]
    ew: dict[tuple[int, int], int] = {}
    if n < 2:
        return _Graph(xy, w, [np.array(v, dtype=np.int64) for v in nbrs], ew)
    minx, miny = xy.min(axis=0)
    maxx, maxy = xy.max(axis=0)
    span = max(maxx - minx, maxy - miny, 1e-4) * 10
    cx, cy = (minx + maxx) / 2, (miny + maxy) / 2
    dummies = np.array(
        [
            [cx - span, cy - span],
            [cx + span, cy - span],
            [cx + span, cy + span],
            [cx - span, cy + span],
        ]
    )
    try:
        vor = Voronoi(np.vstack([xy, dummies]))
    except QhullError:  # all nodes on one line: neighbours along it
        order = np.lexsort((xy[:, 1], xy[:, 0]))
        pairs = np.column_stack([order[:-1], order[1:]])
        lengths = np.full(len(pairs), 1e-4)
    else:
        rp = np.asarray(vor.ridge_points)
        rv = np.asarray(vor.ridge_vertices)
        keep = (rp < n).all(axis=1) & (rv >= 0).all(axis=1)
        pairs, rv = rp[keep], rv[keep]
        segs = shapely.linestrings(vor.vertices[rv])
        lengths = shapely.length(shapely.intersection(segs, region))
        ok = lengths * METRES_PER_DEGREE > MIN_SHARED_M  # a real shared border, not a touch
        pairs, lengths = pairs[ok], lengths[ok]
    if roads is not None and len(pairs):
        links = shapely.linestrings(np.stack([xy[pairs[:, 0]], xy[pairs[:, 1]]], axis=1))
        crossing = np.unique(roads.query(links, predicate="intersects")[0])
        lengths = lengths.copy()
        lengths[crossing] *= ROAD_FACTOR
    weights = np.maximum(1, np.round(lengths * METRES_PER_DEGREE)).astype(np.int64)
    for (i, j), wt in zip(pairs.tolist(), weights.tolist(), strict=True):
        a, b = (i, j) if i < j else (j, i)
        if (a, b) in ew:
            ew[(a, b)] += wt
            continue
        ew[(a, b)] = wt
        nbrs[a].append(b)
        nbrs[b].append(a)
    return _Graph(xy, w, [np.array(sorted(v), dtype=np.int64) for v in nbrs], ew)


def _components(g: _Graph, nodes: np.ndarray) -> list[np.ndarray]:
    if len(nodes) <= 1:
        return [nodes]
    index = {int(n): i for i, n in enumerate(nodes)}
    rows, cols = [], []
    for n in nodes:
        for m in g.nbrs[n]:
            if int(m) in index:
                rows.append(index[int(n)])
                cols.append(index[int(m)])
    m = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(nodes), len(nodes)))
    count, label = connected_components(m, directed=False)
    return [nodes[label == c] for c in range(count)]


# --- partition and refinement -----------------------------------------------------------


def _grid_count(w: np.ndarray, band: Band) -> int:
    huge = w > band.max
    rest = float(w[~huge].sum())
    k = int(huge.sum()) + (band.choose(rest) if rest > 0 or not huge.any() else 0)
    return max(1, min(k, len(w)))


def _metis(
    g: _Graph, nodes: np.ndarray, k: int, band: Band, *, seed: int = 0, ufactor: int = 30
) -> np.ndarray:
    """Initial k-way labels of ``nodes`` (contiguous METIS, balanced by households)."""
    if k <= 1:
        return np.zeros(len(nodes), dtype=np.int64)
    if k >= len(nodes):
        return np.arange(len(nodes), dtype=np.int64)
    w = g.w[nodes]
    xadj, adjncy, eweights = g.csr(nodes)
    # huge buildings ask for a part of their own size; the rest share what is left equally
    huge = np.flatnonzero(w > band.max)
    total = float(w.sum()) or 1.0
    tp = None
    if len(huge) and len(huge) < k:
        rest = (total - w[huge].sum()) / (k - len(huge))
        tp = [float(w[h] / total) for h in huge] + [float(rest / total)] * (k - len(huge))
        s = sum(tp)
        tp = [t / s * 0.999999 for t in tp]
    opts = pymetis.Options(seed=seed, ufactor=ufactor, contig=1, niter=20, ncuts=3)
    try:
        _, parts = pymetis.part_graph(
            k,
            xadj=xadj,
            adjncy=adjncy,
            vweights=np.maximum(w, 1).astype(np.int64).tolist(),
            eweights=eweights,
            tpwgts=tp,
            options=opts,
        )
    except Exception:  # METIS refuses some tiny or odd graphs: fall back to bisection
        return _bisect(g.xy[nodes], w, k)
    return np.asarray(parts, dtype=np.int64)


def _bisect(xy: np.ndarray, w: np.ndarray, k: int) -> np.ndarray:
    """Weighted recursive coordinate bisection (fallback when METIS cannot run)."""
    labels = np.zeros(len(xy), dtype=np.int64)

    def split(idx: np.ndarray, k: int, first: int) -> None:
        if k <= 1 or len(idx) <= 1:
            labels[idx] = first
            return
        pts = xy[idx]
        axis = int(np.ptp(pts[:, 0]) < np.ptp(pts[:, 1]))
        order = idx[np.argsort(pts[:, axis], kind="stable")]
        k1 = k // 2
        cum = np.cumsum(np.maximum(w[order], 1e-9))
        cut = int(np.searchsorted(cum, cum[-1] * k1 / k)) + 1
        cut = min(max(cut, 1), len(order) - 1)
        split(order[:cut], k1, first)
        split(order[cut:], k - k1, first + k1)

    split(np.arange(len(xy)), k, 0)
    return labels


def _connected(nodes: set[int], nbrs: list[np.ndarray]) -> bool:
    if not nodes:
        return False
    start = next(iter(nodes))
    seen = {start}
    stack = [start]
    while stack:
        n = stack.pop()
        for m in nbrs[n]:
            m = int(m)
            if m in nodes and m not in seen:
                seen.add(m)
                stack.append(m)
    return len(seen) == len(nodes)


class _Refiner:
    """Local search on one component: single moves and pairwise swaps of boundary
    buildings between neighbouring grids. Every accepted step strictly lowers
    (band violation, imbalance) in lexicographic order, so the search ends; grids stay
    connected and non-empty.
    """

    def __init__(self, g: _Graph, nodes: np.ndarray, labels: np.ndarray, band: Band) -> None:
        self.g, self.band = g, band
        self.lab = {int(n): int(labels[i]) for i, n in enumerate(nodes)}
        self.k = int(labels.max()) + 1
        self.members: list[set[int]] = [set() for _ in range(self.k)]
        self.W = np.zeros(self.k)
        for n, p in self.lab.items():
            self.members[p].add(n)
            self.W[p] += g.w[n]
        self.t = float(band.target)
        # the violation no division can avoid: H above k·max or below k·min
        total = float(self.W.sum())
        self.floor = max(0.0, total - self.k * band.max) + max(0.0, self.k * band.min - total)

    def done(self) -> bool:
        return self.violation() <= self.floor + 1e-9

    def viol(self, x: float) -> float:
        return max(0.0, self.band.min - x) + max(0.0, x - self.band.max)

    def _delta(self, p: int, q: int, out_p: float, out_q: float) -> tuple[float, float]:
        """Change of (violation, imbalance) when p loses out_p−out_q and q gains it."""
        W, t = self.W, self.t
        move = out_p - out_q
        dv = self.viol(W[p] - move) + self.viol(W[q] + move) - self.viol(W[p]) - self.viol(W[q])
        db = (
            (W[p] - move - t) ** 2 + (W[q] + move - t) ** 2 - (W[p] - t) ** 2 - (W[q] - t) ** 2
        ) / t**2
        return dv, db

    @staticmethod
    def _better(dv: float, db: float) -> bool:
        return dv < -1e-9 or (abs(dv) <= 1e-9 and db < -1e-9)

    def violation(self) -> float:
        return float(sum(self.viol(x) for x in self.W))

    def _apply(self, n: int, q: int) -> None:
        p = self.lab[n]
        self.members[p].discard(n)
        self.members[q].add(n)
        self.lab[n] = q
        self.W[p] -= self.g.w[n]
        self.W[q] += self.g.w[n]

    def step_move(self) -> bool:
        g, lab = self.g, self.lab
        cands = []
        for n, p in lab.items():
            wn = float(g.w[n])
            for q in {lab[int(m)] for m in g.nbrs[n] if int(m) in lab} - {p}:
                dv, db = self._delta(p, q, wn, 0.0)
                if self._better(dv, db):
                    cands.append((dv, db, n, q))
        for _, _, n, q in sorted(cands):
            p = lab[n]
            if len(self.members[p]) > 1 and _connected(self.members[p] - {n}, g.nbrs):
                self._apply(n, q)
                return True
        return False

    def step_swap(self) -> bool:
        g, lab = self.g, self.lab
        cands = []
        for n, p in lab.items():
            for m in g.nbrs[n]:
                m = int(m)
                q = lab.get(m)
                if q is None or q == p or n > m:
                    continue
                dv, db = self._delta(p, q, float(g.w[n]), float(g.w[m]))
                if self._better(dv, db):
                    cands.append((dv, db, n, m))
        for _, _, n, m in sorted(cands):
            p, q = lab[n], lab[m]
            new_p = (self.members[p] - {n}) | {m}
            new_q = (self.members[q] - {m}) | {n}
            if _connected(new_p, g.nbrs) and _connected(new_q, g.nbrs):
                self._apply(n, q)
                self._apply(m, p)
                return True
        return False

    def run(self, max_steps: int) -> None:
        for _ in range(max_steps):
            if self.done():
                return
            if not (self.step_move() or self.step_swap()):
                return

    def energy(self) -> float:
        return self.violation() + 1e-3 * float(((self.W - self.t) ** 2).sum()) / self.t

    def anneal(self, rng: np.random.Generator, iters: int) -> None:
        """Simulated annealing over single moves (worse moves accepted with falling
        probability), for the lumpy cases where no improving move or swap exists; ends
        on the best state seen.
        """
        g, lab = self.g, self.lab
        nodes = np.array(sorted(lab), dtype=np.int64)
        best_e, best = self.energy(), dict(lab)
        temps = np.geomspace(self.band.max - self.band.min, 1.0, iters)
        picks = rng.integers(0, len(nodes), size=iters)
        coins = rng.random(iters)
        for it in range(iters):
            n = int(nodes[picks[it]])
            nb = g.nbrs[n]
            if not len(nb):
                continue
            m = int(nb[int(coins[it] * 1e6) % len(nb)])
            p, q = lab[n], lab.get(m)
            if q is None or q == p or len(self.members[p]) == 1:
                continue
            dv, db = self._delta(p, q, float(g.w[n]), 0.0)
            de = dv + 1e-3 * db * self.t
            if de > 0 and rng.random() >= np.exp(-de / temps[it]):
                continue
            if not _connected(self.members[p] - {n}, g.nbrs):
                continue
            self._apply(n, q)
            e = self.energy()
            if e < best_e - 1e-12:
                best_e, best = e, dict(lab)
                if self.done():
                    break
        for n, p in best.items():
            if lab[n] != p:
                self._apply(n, p)

    def labels(self, nodes: np.ndarray) -> np.ndarray:
        return np.array([self.lab[int(n)] for n in nodes], dtype=np.int64)

    def cut(self) -> int:
        return sum(
            w
            for (a, b), w in self.g.ew.items()
            if a in self.lab and b in self.lab and self.lab[a] != self.lab[b]
        )


def _make_contiguous(g: _Graph, nodes: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Give every stray piece of a part (METIS does not always honour contiguity) to the
    neighbouring part it shares most border with; the largest piece keeps the label.
    """
    lab = {int(n): int(labels[i]) for i, n in enumerate(nodes)}
    for _ in range(len(nodes)):
        moved = False
        for p in sorted(set(lab.values())):
            members = np.array([n for n, q in lab.items() if q == p], dtype=np.int64)
            comps = _components(g, members)
            if len(comps) <= 1:
                continue
            comps.sort(key=lambda c: (-float(g.w[c].sum()), -len(c), int(c.min())))
            for comp in comps[1:]:
                border: dict[int, int] = {}
                for n in comp:
                    for m in g.nbrs[n]:
                        q = lab.get(int(m))
                        if q is not None and q != p:
                            border[q] = border.get(q, 0) + g.ew[(min(n, m), max(n, m))]
                if border:
                    q = max(sorted(border), key=lambda x: border[x])
                    for n in comp:
                        lab[int(n)] = q
                    moved = True
        if not moved:
            break
    return np.array([lab[int(n)] for n in nodes], dtype=np.int64)


#: METIS imbalance tolerances (‰) tried in turn until a division fits the band
_ATTEMPTS = ((0, 30), (1, 60), (2, 10), (3, 100), (4, 30), (5, 150), (6, 60), (7, 200))


def _partition_component(g: _Graph, comp: np.ndarray, band: Band) -> np.ndarray:
    """Best of several METIS starts, each refined: least violation, then least cut."""
    k = _grid_count(g.w[comp], band)
    if k == 1:
        return np.zeros(len(comp), dtype=np.int64)
    best: tuple[tuple[float, int], np.ndarray] | None = None
    for seed, ufactor in _ATTEMPTS:
        start = _make_contiguous(g, comp, _metis(g, comp, k, band, seed=seed, ufactor=ufactor))
        r = _Refiner(g, comp, start, band)
        r.run(max_steps=40 * len(comp))
        score = (round(r.violation(), 6), r.cut())
        if best is None or score < best[0]:
            best = (score, r.labels(comp))
        if r.done():
            return best[1]
    assert best is not None
    # lumpy households (big blocks): anneal from the best start, then polish
    r = _Refiner(g, comp, best[1], band)
    r.anneal(np.random.default_rng(len(comp)), iters=min(60_000, 1_500 * len(comp)))
    r.run(max_steps=40 * len(comp))
    score = (round(r.violation(), 6), r.cut())
    return r.labels(comp) if score < best[0] else best[1]


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
    if _grid_count(nw, band) == 1:
        return [(part, np.arange(len(xy)))]

    def to_scaled(c: np.ndarray) -> np.ndarray:
        return np.column_stack([c[:, 0] * scale, c[:, 1]])

    def from_scaled(c: np.ndarray) -> np.ndarray:
        return np.column_stack([c[:, 0] / scale, c[:, 1]])

    sxy = to_scaled(uniq)
    region = shapely.transform(part, to_scaled)
    g = _graph(sxy, nw, region, roads)
    labels = np.full(len(uniq), -1, dtype=np.int64)
    nxt = 0
    for comp in _components(g, np.arange(len(uniq))):
        lab = _partition_component(g, comp, band)
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


def shared_borders(polys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs ``(i, j)``, ``i < j``, of polygons that share a border, and its length (in the
    polygons' units); polygons touching only at points are left out.
    """
    tree = shapely.STRtree(polys)
    a, b = tree.query(polys, predicate="intersects")
    keep = a < b
    a, b = a[keep], b[keep]
    length = shapely.length(
        shapely.intersection(shapely.boundary(polys[a]), shapely.boundary(polys[b]))
    )
    ok = length > 0
    return a[ok], b[ok], length[ok]


def _scale_and_roads(
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
    scale, tree = _scale_and_roads(comms, roads)
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
        grids = _divide_community(c.geometry, bxy[idx], hh[idx], band, tree, scale)
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


def _divide_community(
    geom: shapely.Geometry,
    xy: np.ndarray,
    w: np.ndarray,
    band: Band,
    tree: shapely.STRtree | None,
    scale: float,
) -> list[tuple[shapely.Geometry, np.ndarray]]:
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
    "divide",
    "grid_quality",
    "report_communities",
    "summary",
]
