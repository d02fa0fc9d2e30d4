"""The graph-cut engine behind grid division, re-division and worker assignment.

A :class:`Graph` holds weighted nodes (blocks, block pieces and cells, or grids) and weighted edges (shared
border); :func:`best_partition` cuts it into parts whose weights fall in a :class:`Band`:
contiguous METIS (``pymetis``) from several seeds and imbalance settings, each start made
contiguous and refined by :class:`Refiner` (moves and swaps of boundary nodes that strictly
lower the band violation, then the imbalance), with simulated annealing for lumpy weights.
Everything is deterministic for a given input.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymetis
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

import shapely

from gis.rules import Band

METRES_PER_DEGREE = 111_320.0
#: the precision (degrees, ≈ 0.1 mm) grids are drawn at (see gis.partition.union)
GRID_SIZE = 1e-9
ROAD_FACTOR = 0.05


@dataclass
class Graph:
    """Nodes with weights and coordinates, their neighbours and integer edge weights."""

    xy: np.ndarray  # scaled coordinates (x·cos φ, y), degrees
    w: np.ndarray  # households per node
    nbrs: list[np.ndarray]
    ew: dict[tuple[int, int], int]

    def csr(self, nodes: np.ndarray) -> tuple[list[int], list[int], list[int]]:
        """The subgraph of ``nodes`` in METIS's compressed form (xadj, adjncy, weights)."""
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


def components(g: Graph, nodes: np.ndarray) -> list[np.ndarray]:
    """The connected pieces of the subgraph of ``nodes``."""
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


def grid_count(w: np.ndarray, band: Band) -> int:
    """Parts for nodes of weights ``w``: one per node over the band's top, and the band's
    choice for the rest.
    """
    huge = w > band.max
    rest = float(w[~huge].sum())
    k = int(huge.sum()) + (band.choose(rest) if rest > 0 or not huge.any() else 0)
    return max(1, min(k, len(w)))


def metis(
    g: Graph, nodes: np.ndarray, k: int, band: Band, *, seed: int = 0, ufactor: int = 30
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
        tp = [t / s for t in tp]
        tp[-1] = 1.0 - sum(tp[:-1])  # pymetis wants the shares to sum to one exactly
    opts = pymetis.Options(seed=seed, ufactor=ufactor, contig=1, niter=20, ncuts=3)
    try:
        _, parts = pymetis.part_graph(
            k,
            pymetis.CSRAdjacency(adj_starts=xadj, adjacent=adjncy),
            vweights=np.maximum(w, 1).astype(np.int64).tolist(),
            eweights=eweights,
            tpwgts=tp,
            options=opts,
        )
    except RuntimeError:  # METIS refuses some tiny or odd graphs: fall back to bisection
        return bisect(g.xy[nodes], w, k)
    return np.asarray(parts, dtype=np.int64)


def bisect(xy: np.ndarray, w: np.ndarray, k: int) -> np.ndarray:
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


def connected(nodes: set[int], nbrs: list[np.ndarray]) -> bool:
    """Whether ``nodes`` form one connected piece."""
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


class Refiner:
    """Local search on one component: single moves and pairwise swaps of boundary
    buildings between neighbouring grids. Every accepted step strictly lowers
    (band violation, imbalance) in lexicographic order, so the search ends; grids stay
    connected and non-empty.
    """

    def __init__(self, g: Graph, nodes: np.ndarray, labels: np.ndarray, band: Band) -> None:
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
        """Whether the violation is down to what no division can avoid."""
        return self.violation() <= self.floor + 1e-9

    def viol(self, x: float) -> float:
        """How far a part of weight ``x`` lies outside the band."""
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
        """The band violation summed over the parts."""
        return float(sum(self.viol(x) for x in self.W))

    def _apply(self, n: int, q: int) -> None:
        p = self.lab[n]
        self.members[p].discard(n)
        self.members[q].add(n)
        self.lab[n] = q
        self.W[p] -= self.g.w[n]
        self.W[q] += self.g.w[n]

    def step_move(self) -> bool:
        """Apply the best improving move of one node; whether one was found."""
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
            if len(self.members[p]) > 1 and connected(self.members[p] - {n}, g.nbrs):
                self._apply(n, q)
                return True
        return False

    def step_swap(self) -> bool:
        """Apply the best improving swap of two nodes; whether one was found."""
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
            if connected(new_p, g.nbrs) and connected(new_q, g.nbrs):
                self._apply(n, q)
                self._apply(m, p)
                return True
        return False

    def run(self, max_steps: int) -> None:
        """Improving moves and swaps until none is left (or ``max_steps``)."""
        for _ in range(max_steps):
            if self.done():
                return
            if not (self.step_move() or self.step_swap()):
                return

    def energy(self) -> float:
        """Violation plus a small imbalance term (what annealing lowers)."""
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
            if not connected(self.members[p] - {n}, g.nbrs):
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
        """The part of each of ``nodes``."""
        return np.array([self.lab[int(n)] for n in nodes], dtype=np.int64)

    def cut(self) -> int:
        """Total weight of the edges between parts."""
        return sum(
            w
            for (a, b), w in self.g.ew.items()
            if a in self.lab and b in self.lab and self.lab[a] != self.lab[b]
        )


def chains(g: Graph, labels: np.ndarray, band: Band, depth: int = 4) -> np.ndarray:
    """Ejection chains for the grids still out of band: a grid short of households takes
    a border unit from a neighbour that puts it in the band; the neighbour, if now short
    itself, takes one from another, and so on up to ``depth`` grids, ending at one that
    can spare it (a grid over the band gives along a chain the same way). A chain is
    applied only if it ends so, so no grid leaves the band and all stay connected.

    Refiner's moves and swaps change two grids at a time, which is not enough where
    every neighbour of a short grid sits just above the band's floor; CP-SAT finds such
    divisions too, but needs seconds where this needs milliseconds.
    """
    lab = labels.astype(np.int64).copy()
    k = int(lab.max()) + 1
    W = np.bincount(lab, weights=g.w, minlength=k).astype(float)
    members = [set(np.flatnonzero(lab == p).tolist()) for p in range(k)]
    lo, hi = float(band.min), float(band.max)

    def move(u: int, q: int) -> None:
        p = int(lab[u])
        members[p].discard(u)
        members[q].add(u)
        lab[u] = q
        W[p] -= g.w[u]
        W[q] += g.w[u]

    def border(r: int, inward: bool) -> list[tuple[int, int]]:
        """(unit, grid) pairs: units next to ``r`` and their grid (``inward``), or
        units of ``r`` and a neighbouring grid.
        """
        out = set()
        for u in members[r]:
            for v in g.nbrs[u]:
                v = int(v)
                q = int(lab[v])
                if q != r:
                    out.add((v, q) if inward else (u, q))
        return sorted(out)

    def take(r: int, depth: int, seen: set[int]) -> bool:  # r is short of households
        for u, q in border(r, inward=True):
            wu = float(g.w[u])
            if q in seen or wu <= 0 or not lo <= W[r] + wu <= hi or len(members[q]) == 1:
                continue
            if not connected(members[q] - {u}, g.nbrs):
                continue
            move(u, r)
            if W[q] >= lo or (depth > 1 and take(q, depth - 1, seen | {q})):
                return True
            move(u, q)
        return False

    def give(r: int, depth: int, seen: set[int]) -> bool:  # r holds too many
        for u, q in border(r, inward=False):
            wu = float(g.w[u])
            if q in seen or wu <= 0 or not lo <= W[r] - wu <= hi or len(members[r]) == 1:
                continue
            if not connected(members[r] - {u}, g.nbrs):
                continue
            move(u, q)
            if W[q] <= hi or (depth > 1 and give(q, depth - 1, seen | {q})):
                return True
            move(u, r)
        return False

    for _ in range(k):
        out = [p for p in range(k) if W[p] < lo or (W[p] > hi and len(members[p]) > 1)]
        fixed = False
        for p in sorted(out, key=lambda p: -max(lo - W[p], W[p] - hi)):
            if (take if W[p] < lo else give)(p, depth, {p}):
                fixed = True
        if not fixed:
            break
    return lab


def make_contiguous(g: Graph, nodes: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Give every stray piece of a part (METIS does not always honour contiguity) to the
    neighbouring part it shares most border with; the largest piece keeps the label.
    """
    lab = {int(n): int(labels[i]) for i, n in enumerate(nodes)}
    for _ in range(len(nodes)):
        moved = False
        for p in sorted(set(lab.values())):
            members = np.array([n for n, q in lab.items() if q == p], dtype=np.int64)
            comps = components(g, members)
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


def best_partition(
    g: Graph,
    comp: np.ndarray,
    band: Band,
    *,
    anneal: bool = True,
    attempts: int = len(_ATTEMPTS),
    k: int | None = None,
) -> np.ndarray:
    """Best of several METIS starts, each refined: least violation, then least cut; with
    ``anneal``, simulated annealing where no start fits the band (callers with an exact
    solver for the case switch it off).
    """
    k = grid_count(g.w[comp], band) if k is None else k
    if k == 1:
        return np.zeros(len(comp), dtype=np.int64)
    best: tuple[tuple[float, int], np.ndarray] | None = None
    for seed, ufactor in _ATTEMPTS[:attempts]:
        start = make_contiguous(g, comp, metis(g, comp, k, band, seed=seed, ufactor=ufactor))
        r = Refiner(g, comp, start, band)
        r.run(max_steps=40 * len(comp))
        score = (round(r.violation(), 6), r.cut())
        if best is None or score < best[0]:
            best = (score, r.labels(comp))
        if r.done():
            return best[1]
    assert best is not None
    if not anneal:
        return best[1]
    return polish(g, comp, best[1], band)


def polish(g: Graph, comp: np.ndarray, labels: np.ndarray, band: Band) -> np.ndarray:
    """Lumpy households (big blocks): anneal from ``labels``, then refine; the better of
    that and ``labels`` (least violation, then least cut).
    """
    r = Refiner(g, comp, labels, band)
    start = (round(r.violation(), 6), r.cut())
    r.anneal(np.random.default_rng(len(comp)), iters=min(8_000, 200 * len(comp)))
    r.run(max_steps=40 * len(comp))
    score = (round(r.violation(), 6), r.cut())
    return r.labels(comp) if score < start else labels


def shared_borders(
    polys: np.ndarray, grid_size: float | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs ``(i, j)``, ``i < j``, of polygons that share a border, and its length (in the
    polygons' units); polygons touching only at points are left out. ``grid_size``: the
    borders are compared on that grid (grids drawn on a fixed grid, whose neighbours'
    borders meet to within it rather than exactly).
    """
    tree = shapely.STRtree(polys)
    a, b = tree.query(polys, predicate="intersects")
    keep = a < b
    a, b = a[keep], b[keep]
    length = shapely.length(
        shapely.intersection(
            shapely.boundary(polys[a]), shapely.boundary(polys[b]), grid_size=grid_size
        )
    )
    ok = length > 0
    return a[ok], b[ok], length[ok]
