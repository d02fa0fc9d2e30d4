"""Staffing: quotas under the cap, roles, assignment of workers to grids, grades, payroll."""

from __future__ import annotations

from datetime import date
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shapely

from gis.assign import assign
from gis.errors import ValidationError
from gis.graphcut import GRID_SIZE, connected
from gis.partition import divide
from gis.regrid import update
from gis.staffing import GradeRules, StaffRules, apportion, payroll, quotas, salary_table


def reference_apportion(h: list[int], minimum: int, cap: int) -> list[int]:
    """Hamilton with floors, written independently with exact fractions."""
    fixed: dict[int, int] = {}
    while True:
        pool = [i for i in range(len(h)) if i not in fixed]
        seats = cap - sum(fixed.values())
        total = sum(h[i] for i in pool)
        shares = {i: Fraction(seats * h[i], total) for i in pool}
        low = [i for i in pool if shares[i] < minimum]
        if not low:
            break
        for i in low:
            fixed[i] = minimum
    out = dict(fixed)
    floors = {i: int(s) for i, s in shares.items()}
    left = seats - sum(floors.values())
    ranked = sorted(shares, key=lambda i: (-(shares[i] - floors[i]), -h[i], i))
    for i in ranked[:left]:
        floors[i] += 1
    out.update(floors)
    return [out[i] for i in range(len(h))]


@settings(max_examples=100, deadline=None)
@given(
    h=st.lists(st.integers(0, 6000), min_size=1, max_size=40),
    extra=st.integers(0, 200),
)
def test_apportion_matches_independent_computation(h, extra):
    cap = 5 * len(h) + extra
    if sum(h) == 0:
        return
    got = apportion(
        np.array(h), np.full(len(h), 5), cap, np.array([f"{i:03d}" for i in range(len(h))])
    )
    assert got.tolist() == reference_apportion(h, 5, cap)
    assert got.sum() == cap and (got >= 5).all()


def test_cap_too_small_says_by_how_much():
    with pytest.raises(
        ValidationError, match="cap 12 cannot cover the minimums \\(15 workers\\): 3 short"
    ):
        apportion(np.array([100, 200, 300]), np.array([5, 5, 5]), 12)


def test_zaozhuang_quota(district_city):
    c = district_city
    hh = c["buildings"].groupby("community_code")["households"].sum()
    q = quotas(c["communities"], hh, StaffRules(cap=120))
    urban = q[q["kind"] == "urban"]
    assert (urban["rule_quota"] == np.maximum(5, np.ceil(urban["households"] / 350))).all()
    assert urban["rule_quota"].sum() > 120
    assert urban["quota"].sum() == 120 and (urban["quota"] >= 5).all()
    assert urban["quota"].tolist() == reference_apportion(urban["households"].tolist(), 5, 120)
    rural = q[q["kind"] == "rural"]
    assert (rural["quota"] == np.ceil(rural["households"] / 350)).all()
    assert (q["policy_min"] <= q["policy_max"]).all()
    assert (q["window"] + q["grid_workers"] == q["quota"]).all()
    no_cap = quotas(c["communities"], hh, StaffRules(cap=None))
    assert (no_cap["quota"] == no_cap["rule_quota"]).all()


def test_grades_and_payroll():
    w = pd.DataFrame(
        {
            "id": ["a", "b", "c", "d"],
            "community_code": ["370405001001"] * 4,
            "post": ["正职", "副职", "其他", "其他"],
            "hired": ["2010-01-01", "2024-06-01", "2023-01-01", "1990-01-01"],
            "education": ["本科", "硕士", "大专", "博士"],
        }
    )
    g = GradeRules().grade(w["post"], w["hired"], w["education"], date(2026, 1, 1))
    # 16 years + 3 (bachelor) = 19 → +6 → 13; 1 + 5 → +2 → 6; 3 + 0 → +1 → 2; capped at 12
    assert g.tolist() == [13, 6, 2, 12]
    quota = pd.DataFrame({"code": ["370405001001"], "quota": [6]})
    out, totals = payroll(w, quota, on=date(2026, 1, 1))
    table = salary_table().set_index(["post", "grade"])["monthly_yuan"]
    assert out["monthly_yuan"].tolist() == [
        table[("正职", 13)],
        table[("副职", 6)],
        table[("其他", 2)],
        table[("其他", 12)],
    ]
    assert totals["vacancies"] == 2
    assert totals["quota_monthly_yuan"] == pytest.approx(
        totals["roster_monthly_yuan"] + 2 * table[("其他", 1)]
    )


def _check_assignment(grids, a):
    assert a.assignments["grid_code"].is_unique and set(a.assignments["grid_code"]) == set(
        grids["code"]
    )
    g = grids.set_index("code")
    by_worker = a.assignments.groupby("worker_id")["grid_code"].apply(list)
    for worker, codes in by_worker.items():
        assert len({c[:12] for c in codes}) == 1, worker  # one community
        polys = g.loc[codes].geometry.values
        tree = shapely.STRtree(polys)
        i, j = tree.query(polys, predicate="intersects")
        nbrs = [[] for _ in codes]
        for x, y in zip(i, j, strict=True):
            # grids are drawn on a fixed grid: neighbours' borders meet to within it
            shared = shapely.intersection(polys[x].boundary, polys[y].boundary, grid_size=GRID_SIZE)
            if x != y and shared.length > 0:
                nbrs[x].append(y)
        assert connected(set(range(len(codes))), [np.array(n) for n in nbrs]), worker


def test_assignment_invariants_and_stability(district_city):
    c = district_city
    d = divide(c["communities"], c["buildings"], c["roads"])
    hh = c["buildings"].groupby("community_code")["households"].sum()
    q = quotas(c["communities"], hh)
    a = assign(d.grids, q, c["workers"])
    _check_assignment(d.grids, a)
    assert a.share_in_band_where_possible >= 0.95
    out = a.loads[~a.loads["in_band"]]
    assert (out["note"] != "").all()  # every worker outside 300–400 is explained
    roles = a.workers.groupby("community_code")["role"].apply(lambda r: (r == "window").sum())
    assert (roles == 1).all()
    # a seeded ±5 % change moves fewer than 10 % of the workers
    b = c["buildings"].copy()
    rng = np.random.default_rng(11)
    b["households"] = np.round(b["households"] * rng.uniform(0.95, 1.05, len(b))).astype(np.int64)
    u = update(d.grids, c["communities"], b, c["roads"])
    q2 = quotas(c["communities"], b.groupby("community_code")["households"].sum())
    a2 = assign(u.grids, q2, c["workers"], previous=a.assignments)
    _check_assignment(u.grids, a2)
    assert a2.moved < 0.10 * len(a2.loads)
    same = assign(d.grids, q, c["workers"], previous=a.assignments)
    assert same.moved == 0


def test_bad_rules():
    with pytest.raises(ValidationError, match="ratio must be positive"):
        StaffRules(ratio=0)
