"""Benchmark siting on the whole city and against PySAL spopt.

1. Testing one candidate site after the coverage step (distances reused), line and network.
2. MCLP, LSCP and p-median on the same instances with gridgis and spopt (both solve with
   HiGHS through their own modelling; spopt through PuLP): objectives and time ratio.
3. MCLP with 20,000 demand points × 2,000 candidates, k = 20, under a 60 s limit.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import time
import warnings

import numpy as np
from scipy.spatial import cKDTree

from gis import siting
from gis.coverage import compute, pairs_within
from gis.synth import build_city

TYPE = "elderly_day_care"


def _rss() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _instance(xy: np.ndarray, w: np.ndarray, m: int, n: int, seed: int):
    """``m`` demand buildings nearest the densest spot and ``n`` candidate buildings
    among them: a compact urban instance where service areas overlap."""
    rng = np.random.default_rng(seed)
    cell = np.floor(xy / 2000).astype(np.int64)
    keys, count = np.unique(cell, axis=0, return_counts=True)
    centre = (keys[np.argmax(count)] + 0.5) * 2000  # the densest 2 km square
    near = cKDTree(xy).query(centre, k=m)[1]
    d_xy, d_w = xy[near], np.maximum(w[near], 1.0)
    c_xy = d_xy[rng.choice(m, n, replace=False)]
    return d_xy, d_w, c_xy


def _spopt(kind: str, cost: np.ndarray, w: np.ndarray, r: float, k: int, out: mp.Queue) -> None:
    import pulp
    from spopt.locate import LSCP, MCLP, PMedian

    warnings.simplefilter("ignore")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # HiGHS prints its banner even with msg=False
    solver = pulp.HiGHS(msg=False)
    t = time.perf_counter()
    if kind == "mclp":
        model = MCLP.from_cost_matrix(cost, w, service_radius=r, p_facilities=k).solve(solver)
    elif kind == "lscp":
        model = LSCP.from_cost_matrix(cost, service_radius=r).solve(solver)
    else:
        model = PMedian.from_cost_matrix(cost, w, p_facilities=k).solve(solver)
    value = float(pulp.value(model.problem.objective))
    out.put((value, time.perf_counter() - t))


def _run_spopt(kind: str, cost, w, r, k, limit: float) -> tuple[float, float] | None:
    ctx = mp.get_context("fork")
    q: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=_spopt, args=(kind, cost, w, r, k, q))
    proc.start()
    proc.join(limit)
    if proc.is_alive():
        proc.kill()
        proc.join()
        return None
    return q.get() if not q.empty() else None


def _ours(kind: str, cost: np.ndarray, w: np.ndarray, r: float, k: int) -> tuple[float, float]:
    t = time.perf_counter()
    if kind in ("mclp", "lscp"):
        rows, cols = np.nonzero(cost <= r)
        a, mw = siting._merge_rows(rows, cols, w, cost.shape[1])
        ans = siting.solve_mclp(a, mw, k) if kind == "mclp" else siting.solve_lscp(a)
    else:
        rows, cols = np.nonzero(np.isfinite(cost))
        ans = siting.solve_pmedian(
            rows, cols, cost[rows, cols], w, np.full(len(w), np.inf), cost.shape[1], k
        )
    return ans.objective, time.perf_counter() - t


def main() -> None:
    city = build_city()
    b, f, types = city["buildings"], city["facilities"], city["facility_types"]
    print(f"== siting, {TYPE}, whole city ({len(b):,} buildings) ==")
    for mode in ("line", "network"):
        t = time.perf_counter()
        cv = compute(
            b,
            f,
            types,
            city["communities"],
            roads=city["roads"],
            mode=mode,
            only=[TYPE],
            gaps=False,
        )
        t_cov = time.perf_counter() - t
        p = siting.Planner.from_coverage(cv, b, f, types, TYPE)
        cands = siting.generate(p, 200)
        one = cands.iloc[[0]]
        siting.evaluate(p, one)  # warm
        t = time.perf_counter()
        ev = siting.evaluate(p, one)
        t_one = time.perf_counter() - t
        t = time.perf_counter()
        siting.evaluate(p, cands)
        t_200 = time.perf_counter() - t
        print(
            f"{mode:<8} coverage step {t_cov:5.1f} s; test one site {t_one * 1000:6.1f} ms "
            f"(newly covered {ev.ranking['newly_covered'].iloc[0]:,.0f}); 200 sites "
            f"{t_200 * 1000:6.0f} ms; peak RSS {_rss():,.0f} MB",
            flush=True,
        )

    xy = cv.space.xy
    w = p.weight
    print("\n== against spopt (same cost matrix, straight line, no existing sites) ==")
    print(
        f"{'model':<8} {'demand×cand':>12} {'k':>3} {'gridgis':>12} {'spopt':>12} "
        f"{'t gridgis':>10} {'t spopt':>9} {'ratio':>7}"
    )
    for kind, m, n, k in (
        ("mclp", 2000, 200, 10),
        ("mclp", 5000, 500, 15),
        ("lscp", 2000, 200, 0),
        ("lscp", 5000, 500, 0),
        ("pmedian", 1000, 100, 5),
        ("pmedian", 2000, 150, 8),
    ):
        d_xy, d_w, c_xy = _instance(xy, w, m, n, seed=m + n)
        cost = np.hypot(*(d_xy[:, None, :] - c_xy[None, :, :]).transpose(2, 0, 1))
        if kind == "lscp":  # every demand point coverable
            cost[np.arange(m), np.argmin(cost, axis=1)] = 0
        ours, t_ours = _ours(kind, cost, d_w, 300.0, k)
        ref = _run_spopt(kind, cost, d_w, 300.0, k, limit=600)
        if ref is None:
            print(f"{kind:<8} {m:>5}×{n:<6} {k:>3} {ours:>12,.1f} {'(>600 s)':>12} {t_ours:>9.2f}s")
            continue
        print(
            f"{kind:<8} {m:>5}×{n:<6} {k:>3} {ours:>12,.1f} {ref[0]:>12,.1f} {t_ours:>9.2f}s "
            f"{ref[1]:>8.2f}s {ref[1] / t_ours:>6.1f}×",
            flush=True,
        )

    print("\n== MCLP 20,000 demand × 2,000 candidates, k = 20, time limit 60 s ==")
    d_xy, d_w, c_xy = _instance(xy, w, 20_000, 2_000, seed=1)
    t = time.perf_counter()
    src, dst, _ = pairs_within(cKDTree(d_xy), c_xy, 300.0)
    a, mw = siting._merge_rows(dst, src, d_w, 2_000)
    ans = siting.solve_mclp(a, mw, 20, time_limit=60)
    print(
        f"{time.perf_counter() - t:.1f} s; {a.shape[0]:,} distinct demand rows after merging; "
        f"objective {ans.objective:,.0f}, bound {ans.bound:,.0f}, gap {ans.gap:.3%}, "
        f"{ans.status}; peak RSS {_rss():,.0f} MB"
    )
    greedy = siting._covered_weight(a, mw, siting.greedy_mclp(a, mw, 20))
    print(f"greedy alone covers {greedy:,.0f} ({greedy / ans.objective:.2%} of the answer)")


if __name__ == "__main__":
    main()
