"""Exact grid division of small communities, and the packing bound, with OR-Tools CP-SAT.

:func:`partition` cuts a graph of units (blocks, block pieces, cells) into ``k``
connected parts, lexicographically best: fewest parts out of the band, then the smallest
worst excursion from it, then the least border not on streets. Connectivity is a
single-commodity flow per part from its root (the part's lowest-numbered unit, which also
breaks the parts' symmetry). Each stage is a CP-SAT solve bounded by a *deterministic*
time (so the same input always gives the same grids) and seeded with the heuristic's
answer, which stays the fallback: a stage that proves nothing better keeps it.

:func:`packing` answers whether the units' sizes allow every grid in the band at all,
ignoring adjacency — the honest bound the division's band share is measured against:
``"yes"`` (a packing is shown), ``"no"`` (none exists, proved) or ``"unknown"``.

Written against CP-SAT rather than a MILP (HiGHS) because the lexicographic stages, the
max-excursion and the boolean "out of band" terms are native there, and hints carry the
heuristic's answer in; both were tried on the city's hard communities (bench_grids).
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce

import numpy as np

from gis.rules import Band

#: communities with at most this many units are solved exactly
MAX_UNITS = 60
#: … and the flow model (when no in-band division exists) at most this many
MAX_FLOW_UNITS = 10
#: CP-SAT deterministic time (≈ seconds of one core) per stage of one community
STAGE_TIME = 0.15


@dataclass
class Exact:
    """The labels found and what the solver proved about them."""

    labels: np.ndarray
    out_of_band: int
    worst: int
    open_border: int
    optimal: bool  # every stage proved optimal


def score(w: np.ndarray, labels: np.ndarray, k: int, band: Band) -> tuple[int, int]:
    """Grids out of band and the worst excursion (households) of a division, to compare."""
    loads = np.bincount(labels, weights=w, minlength=k)
    exc = np.maximum(0, np.maximum(band.min - loads, loads - band.max))
    return int((exc > 0).sum()), int(exc.max()) if len(exc) else 0


def partition(
    w: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    cost: np.ndarray,
    k: int,
    band: Band,
    hint: np.ndarray | None = None,
    stage_time: float = STAGE_TIME,
    stages: int = 3,
) -> Exact | None:
    """``k`` connected parts of the graph of ``len(w)`` units with edges ``(a, b)``;
    ``cost`` is each edge's border length not on streets (whole metres).

    Returns ``None`` when the solver finds no connected division in time.
    """
    from ortools.sat.python import cp_model

    n = len(w)
    wi = np.round(w).astype(np.int64)
    H = int(wi.sum())
    m = cp_model.CpModel()
    x = [[m.new_bool_var(f"x{i}_{p}") for p in range(k)] for i in range(n)]
    root = [[m.new_bool_var(f"r{i}_{p}") for p in range(k)] for i in range(n)]
    for i in range(n):
        m.add_exactly_one(x[i])
    rid = []
    for p in range(k):
        m.add_exactly_one(root[i][p] for i in range(n))
        r = m.new_int_var(0, n - 1, f"root{p}")
        m.add(r == sum(i * root[i][p] for i in range(n)))
        rid.append(r)
        for i in range(n):
            m.add_implication(root[i][p], x[i][p])
            m.add(r <= i).only_enforce_if(x[i][p])  # the root is the part's lowest unit
    for p in range(k - 1):
        m.add(rid[p] < rid[p + 1])
    # connectivity: each part's root sends one unit of flow to every other member
    nbr_in: list[list[tuple[int, int]]] = [[] for _ in range(n)]
    arcs = [(int(i), int(j)) for i, j in zip(a, b, strict=True)]
    arcs += [(j, i) for i, j in arcs]
    flow = {}
    for p in range(k):
        for t, (i, j) in enumerate(arcs):
            f = m.new_int_var(0, n - 1, f"f{t}_{p}")
            m.add(f == 0).only_enforce_if(x[i][p].Not())
            m.add(f == 0).only_enforce_if(x[j][p].Not())
            flow[(t, p)] = f
    for t, (i, j) in enumerate(arcs):
        nbr_in[j].append((t, i))
    out_arcs: list[list[int]] = [[] for _ in range(n)]
    for t, (i, _) in enumerate(arcs):
        out_arcs[i].append(t)
    for p in range(k):
        for i in range(n):
            inflow = sum(flow[(t, p)] for t, _ in nbr_in[i])
            outflow = sum(flow[(t, p)] for t in out_arcs[i])
            m.add(inflow - outflow >= x[i][p] - n * root[i][p])
    # loads, excursions, out-of-band flags
    exc, out = [], []
    for p in range(k):
        load = m.new_int_var(0, H, f"load{p}")
        m.add(load == sum(int(wi[i]) * x[i][p] for i in range(n)))
        e = m.new_int_var(0, max(H, band.min), f"exc{p}")
        m.add_max_equality(e, [0, band.min - load, load - band.max])
        o = m.new_bool_var(f"out{p}")
        m.add(e == 0).only_enforce_if(o.Not())
        exc.append(e)
        out.append(o)
    worst = m.new_int_var(0, max(H, band.min), "worst")
    m.add_max_equality(worst, exc)
    cut_terms = []
    for t, (i, j) in enumerate(zip(a, b, strict=True)):
        c = int(cost[t])
        if c <= 0:
            continue
        y = m.new_bool_var(f"y{t}")
        for p in range(k):
            m.add(y >= x[int(i)][p] - x[int(j)][p])
        cut_terms.append(c * y)
    n_out = sum(out)
    open_border = sum(cut_terms) if cut_terms else 0

    if hint is not None:
        # relabel so part order follows the parts' lowest units, as the model requires
        firsts = sorted(
            {int(hint[i]) for i in range(n)}, key=lambda q: int(np.flatnonzero(hint == q)[0])
        )
        if len(firsts) == k:
            rel = {q: p for p, q in enumerate(firsts)}
            for i in range(n):
                for p in range(k):
                    m.add_hint(x[i][p], rel[int(hint[i])] == p)

    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = 0
    solver.parameters.max_deterministic_time = stage_time
    optimal = True
    best = None
    for objective, name in ((n_out, "out"), (worst, "worst"), (open_border, "border"))[:stages]:
        if isinstance(objective, int):
            continue
        m.minimize(objective)
        status = solver.solve(m)
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            if best is None:
                return None
            break
        optimal &= status == cp_model.OPTIMAL
        val = int(round(solver.objective_value))
        best = np.array(
            [next(p for p in range(k) if solver.boolean_value(x[i][p])) for i in range(n)],
            dtype=np.int64,
        )
        # keep the stage's answer as the next stage's start and bound
        m.clear_hints()
        for i in range(n):
            for p in range(k):
                m.add_hint(x[i][p], int(best[i]) == p)
        m.add(objective <= val)
        del name
    assert best is not None
    n_o, wst = score(w, best, k, band)
    ob = int(sum(int(cost[t]) for t in range(len(a)) if best[a[t]] != best[b[t]]))
    return Exact(best, n_o, wst, ob, optimal)


class TooMany(Exception):
    """More candidate grids than :data:`MAX_SETS`: the community is left to the heuristic."""


#: at most this many candidate grids (connected, in band) are enumerated per community
MAX_SETS = 10_000


class _RootDone(Exception):
    """One root's share of a sampled enumeration is used up."""


def connected_sets(
    w: np.ndarray,
    nbr: list[int],
    lo: float,
    hi: float,
    max_sets: int = MAX_SETS,
    sample: bool = False,
) -> list[int]:
    """Every connected set of units whose households lie in ``[lo, hi]``, as bit masks;
    a unit over ``hi`` on its own also counts (it can only be a grid by itself).

    ESU enumeration (Wernicke 2006): each connected set is grown once, from its lowest
    unit, by exclusive neighbours only; a branch stops as soon as it passes ``hi`` (all
    weights are positive, so every superset would too). Raises :class:`TooMany` past
    ``max_sets`` sets (or ten times as many grown) — unless ``sample``: then each unit
    grows at most its share of them, and the sets returned are some, not all.
    """
    n = len(w)
    out: list[int] = []
    budget = max(1, max_sets // max(n, 1)) if sample else max_sets
    count = [0, 0]  # sets grown, kept or not (many tiny units make many light sets); kept

    def grow(sub: int, wt: float, ext: int, seen: int, higher: int) -> None:
        count[0] += 1
        if count[0] > 10 * budget:
            raise _RootDone if sample else TooMany
        if wt >= lo:
            out.append(sub)
            count[1] += 1
            if count[1] > budget:
                raise _RootDone if sample else TooMany
        while ext:
            low = ext & -ext
            ext ^= low
            u = low.bit_length() - 1
            wu = wt + w[u]
            if wu > hi:
                continue
            grow(sub | low, wu, ext | (nbr[u] & higher & ~seen), seen | nbr[u], higher)

    for v in range(n):
        if w[v] > hi:
            out.append(1 << v)
            continue
        higher = ~((1 << (v + 1)) - 1)
        if sample:
            count[0] = count[1] = 0
        try:
            grow(1 << v, float(w[v]), nbr[v] & higher, nbr[v] | (1 << v), higher)
        except _RootDone:
            pass
    return out


#: CP-SAT shortens the border of the cover found only where there are at most this many
#: candidate grids (building the model costs more than the search beyond)
MAX_POLISH_SETS = 2_000
#: nodes the exact-cover search may visit before it leaves the question to CP-SAT
MAX_NODES = 3_000


def exact_cover(
    sets: Sequence[int],
    n: int,
    w: np.ndarray,
    nbr: Sequence[int],
    band: Band,
    counts: Sequence[int] | None = None,
    max_nodes: int = MAX_NODES,
) -> list[int] | None | str:
    """Sets (bit masks over ``n`` units of households ``w``, neighbours ``nbr``) that
    cover every unit exactly once — their indices — or ``None`` when no such choice
    exists (proved), or ``"unknown"`` when the search gave up after ``max_nodes`` nodes.
    ``counts``: the numbers of sets allowed.

    Knuth's Algorithm X on bit masks: the uncovered unit in the fewest candidate sets is
    covered first, by each set that avoids what is already covered; a branch ends as
    soon as a connected piece of what is left cannot be cut into grids in the band (its
    households between ``c·min`` and ``c·max`` for no ``c``). Faster than CP-SAT on the
    small, tightly packed covers of grid division (a solution, or the proof there is none,
    in milliseconds); CP-SAT then only shortens the border of the cover found.
    """
    by_unit: list[list[int]] = [[] for _ in range(n)]
    for s, mask in enumerate(sets):
        m = mask
        while m:
            low = m & -m
            by_unit[low.bit_length() - 1].append(s)
            m ^= low
    order = sorted(range(n), key=lambda i: len(by_unit[i]))
    full = (1 << n) - 1
    wl = [float(x) for x in w]
    lone = [x > band.max for x in wl]
    allowed = None if counts is None else set(counts)
    chosen: list[int] = []
    nodes = [0]

    def splittable(left: int) -> bool:
        while left:
            seed = left & -left
            comp, frontier = seed, seed
            while frontier:  # grow the piece by its neighbours still uncovered
                nxt = 0
                f = frontier
                while f:
                    low = f & -f
                    nxt |= nbr[low.bit_length() - 1]
                    f ^= low
                frontier = nxt & left & ~comp
                comp |= frontier
            left &= ~comp
            h, c = 0.0, comp
            huge = 0
            while c:
                low = c & -c
                i = low.bit_length() - 1
                if lone[i]:
                    huge += 1
                else:
                    h += wl[i]
                c ^= low
            if h > 0 and math.floor(h / band.min + 1e-9) < math.ceil(h / band.max - 1e-9):
                return False
            if h <= 0 and not huge:
                return False
        return True

    def search(covered: int) -> bool:
        nodes[0] += 1
        if nodes[0] > max_nodes:
            raise TooMany
        if covered == full:
            return allowed is None or len(chosen) in allowed
        if not splittable(full & ~covered):
            return False
        i = next(i for i in order if not covered >> i & 1)
        for s in by_unit[i]:
            if sets[s] & covered:
                continue
            chosen.append(s)
            if search(covered | sets[s]):
                return True
            chosen.pop()
        return False

    try:
        return list(chosen) if search(0) else None
    except TooMany:
        return "unknown"


def cover(
    w: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    cost: np.ndarray,
    band: Band,
    ks: Sequence[int],
    time: float = 0.15,
    max_sets: int = MAX_SETS,
) -> tuple[Exact | None, str]:
    """The division with every grid in the band (units over the band's top alone) and
    the least border off the streets, over any ``k`` in ``ks``: a set partition over all
    connected in-band sets, solved by CP-SAT.

    Returns the division (or ``None``) and a verdict: ``"found"``, ``"impossible"`` (proved:
    no division of these units into connected grids puts every grid in the band),
    ``"too many"`` (more than :data:`MAX_SETS` candidate grids) or ``"unknown"`` (out of
    time).
    """
    from ortools.sat.python import cp_model

    n = len(w)
    if n > 62:
        return None, "too many"
    nbr = [0] * n
    for i, j in zip(a.tolist(), b.tolist(), strict=True):
        nbr[i] |= 1 << j
        nbr[j] |= 1 << i
    try:
        sets = connected_sets(np.asarray(w, dtype=float), nbr, band.min, band.max, max_sets)
        complete = True
    except (TooMany, RecursionError):
        # too many to list them all: a sample of them may still hold a division (found
        # so, it is in band; not found proves nothing)
        sets = connected_sets(np.asarray(w, dtype=float), nbr, band.min, band.max, max_sets, True)
        complete = False
    if reduce(operator.or_, sets, 0) != (1 << n) - 1:  # a unit in no candidate grid
        return None, "impossible" if complete else "too many"
    masks = np.array(sets, dtype=np.int64)
    M = ((masks[:, None] >> np.arange(n, dtype=np.int64)) & 1).astype(bool)
    crossing = M[:, a] != M[:, b]
    set_cost = (crossing @ np.asarray(cost, dtype=np.int64)).astype(np.int64)
    # cheapest borders first, so the search's first cover is already a good one
    order = np.argsort(set_cost, kind="stable")
    sets = [sets[i] for i in order.tolist()]
    M, set_cost = M[order], set_cost[order]
    wf = np.asarray(w, dtype=float)
    huge = wf > band.max
    rest = float(wf[~huge].sum())
    implied = range(
        int(huge.sum()) + math.ceil(rest / band.max - 1e-9),
        int(huge.sum()) + math.floor(rest / band.min + 1e-9) + 1,
    )
    counts = None if set(implied) <= set(ks) else ks  # in band already implies a count in ks
    # first any division with every grid in band, or the proof there is none (the search
    # of exact_cover, else CP-SAT); then, where the model is small, the least border off
    # the streets from it
    found = exact_cover(sets, n, wf, nbr, band, counts)
    if found is None:
        return None, "impossible" if complete else "too many"
    if found == "unknown" and not complete:
        return None, "too many"
    if found != "unknown" and len(sets) > MAX_POLISH_SETS:
        on = set(found)
        picked = [s in on for s in range(len(sets))]
        status = cp_model.FEASIBLE
    else:
        m = cp_model.CpModel()
        y = [m.new_bool_var("") for _ in range(len(sets))]
        for i in range(n):
            m.add_exactly_one(y[s] for s in np.flatnonzero(M[:, i]).tolist())
        if counts is not None:
            m.add_linear_expression_in_domain(sum(y), cp_model.Domain.from_values(sorted(set(ks))))
        solver = cp_model.CpSolver()
        solver.parameters.num_workers = 1
        solver.parameters.random_seed = 0
        solver.parameters.max_deterministic_time = time
        if found == "unknown":
            status = solver.solve(m)
            if status == cp_model.INFEASIBLE:
                return None, "impossible"
            if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
                return None, "unknown"
            first = [solver.boolean_value(v) for v in y]
        else:
            on = set(found)
            first = [s in on for s in range(len(sets))]
        for v, on_ in zip(y, first, strict=True):
            m.add_hint(v, on_)
        m.minimize(sum(int(c) * v for c, v in zip(set_cost.tolist(), y, strict=True)))
        status = solver.solve(m)
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            status = cp_model.FEASIBLE
            picked = first
        else:
            picked = [solver.boolean_value(v) for v in y]
    chosen = [s for s in range(len(sets)) if picked[s]]
    labels = np.zeros(n, dtype=np.int64)
    for p, s in enumerate(chosen):
        labels[M[s]] = p
    k = len(chosen)
    o, wst = score(np.asarray(w, dtype=float), labels, k, band)
    return Exact(
        labels, o, wst, int(set_cost[chosen].sum()) // 2, status == cp_model.OPTIMAL
    ), "found"


def repair(
    w: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    cost: np.ndarray,
    band: Band,
    labels: np.ndarray,
    *,
    max_units: int = 40,
    max_sets: int = 2_000,
    time: float = 0.05,
) -> np.ndarray:
    """Large-neighbourhood repair of a division: each grid out of band, with the grids
    around it (one ring, then two, three), is divided anew by :func:`cover` — every grid
    of the neighbourhood in the band, least border off the streets — and the first
    neighbourhood that allows it is replaced. Grids elsewhere are untouched, so a
    community of any size gets an exact answer where its trouble is local.

    Each accepted step puts one more grid in the band and none out of it, so the
    repair ends; the labels returned are renumbered ``0..k-1``.
    """
    labels = np.unique(labels, return_inverse=True)[1].ravel().astype(np.int64)
    w = np.asarray(w, dtype=float)
    tried: set[frozenset[int]] = set()
    while True:
        k = int(labels.max()) + 1
        loads = np.bincount(labels, weights=w, minlength=k)
        exc = np.maximum(0, np.maximum(band.min - loads, loads - band.max))
        size = np.bincount(labels, minlength=k)
        lone_huge = (size == 1) & (loads > band.max)  # a building over the band: its own grid
        cross = labels[a] != labels[b]
        ga, gb = labels[a][cross], labels[b][cross]
        adj: list[set[int]] = [set() for _ in range(k)]
        for i, j in zip(ga.tolist(), gb.tolist(), strict=True):
            adj[i].add(j)
            adj[j].add(i)
        changed = False
        for p in np.argsort(-exc, kind="stable").tolist():
            if exc[p] <= 0 or lone_huge[p]:
                continue
            region = {p}
            for _ in range(3):
                region = region | {q for r in region for q in adj[r]}
                units = np.flatnonzero(np.isin(labels, list(region)))
                if len(units) > max_units:
                    break
                key = frozenset(units.tolist())
                if key in tried:
                    continue
                tried.add(key)
                local = np.full(len(w), -1, dtype=np.int64)
                local[units] = np.arange(len(units))
                inner = (local[a] >= 0) & (local[b] >= 0)
                found, verdict = cover(
                    w[units], local[a][inner], local[b][inner], np.asarray(cost)[inner], band,
                    range(1, len(units) + 1), time=time, max_sets=max_sets,
                )  # fmt: skip
                if found is not None:
                    labels[units] = found.labels + k
                    changed = True
                    break
                if verdict == "too many":
                    break
            if changed:
                break
        if not changed:
            return np.unique(labels, return_inverse=True)[1].ravel().astype(np.int64)
        labels = np.unique(labels, return_inverse=True)[1].ravel().astype(np.int64)


def _lpt(w: np.ndarray, k: int) -> np.ndarray:
    """Largest first, each to the least loaded bin (a quick packing)."""
    loads = np.zeros(k)
    for x in np.sort(w)[::-1]:
        loads[int(np.argmin(loads))] += x
    return loads


def packing(w: np.ndarray, band: Band, ks: Sequence[int], time: float = 0.1) -> str:
    """Whether items of sizes ``w`` can be packed into ``k`` bins each holding between
    ``band.min`` and ``band.max`` for some ``k`` in ``ks`` (adjacency ignored).

    Largest-first packing shows most "yes" at once; otherwise CP-SAT decides, under a
    small deterministic time per ``k`` (the two ``k`` nearest the band's target), and
    says ``"unknown"`` when it neither finds a packing nor proves there is none.
    """
    w = np.asarray(w, dtype=float)
    w = w[w > 0]
    if (w > band.max).any():
        return "no"
    H = float(w.sum())
    ks = [k for k in ks if k >= 1 and k * band.min <= H <= k * band.max]
    if not ks:
        return "no"
    for k in ks:
        loads = _lpt(w, k)
        if loads.min() >= band.min and loads.max() <= band.max:
            return "yes"
    from ortools.sat.python import cp_model

    items = np.sort(np.round(w).astype(np.int64))[::-1]
    verdict = "no"
    tried = sorted(ks, key=lambda k: abs(H / k - band.target))
    for k in tried[:2]:
        m = cp_model.CpModel()
        x = [[m.new_bool_var("") for _ in range(k)] for _ in items]
        for i in range(len(items)):
            m.add_exactly_one(x[i])
        for j in range(k):
            m.add_linear_constraint(
                sum(int(items[i]) * x[i][j] for i in range(len(items))), band.min, band.max
            )
        for i in range(min(k, len(items))):  # item i only in the first i+1 bins
            for j in range(i + 1, k):
                m.add(x[i][j] == 0)
        s = cp_model.CpSolver()
        s.parameters.num_workers = 1
        s.parameters.max_deterministic_time = time
        status = s.solve(m)
        if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            return "yes"
        if status != cp_model.INFEASIBLE:
            verdict = "unknown"
    return verdict if len(tried) <= 2 or verdict == "unknown" else "unknown"
