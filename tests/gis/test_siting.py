"""Siting: optima against brute force, evaluation against a fresh coverage run, errors."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import geopandas as gpd

from gis import siting
from gis.coverage import compute
from gis.errors import ValidationError

TYPE = "elderly_day_care"


def _brute_mclp(a: sparse.csr_array, w: np.ndarray, k: int) -> float:
    dense = a.toarray() > 0
    return max(
        float(w[dense[:, list(s)].any(axis=1)].sum())
        for s in itertools.combinations(range(a.shape[1]), k)
    )


def _brute_lscp(a: sparse.csr_array) -> float:
    dense = a.toarray() > 0
    n = a.shape[1]
    for size in range(1, n + 1):
        if any(dense[:, list(s)].any(axis=1).all() for s in itertools.combinations(range(n), size)):
            return float(size)
    raise AssertionError("not coverable")


def _brute_pmedian(row, col, d, w, d0, n, k) -> float:
    full = np.full((len(w), n), np.inf)
    full[row, col] = d
    return min(
        float((w * np.minimum(d0, full[:, list(s)].min(axis=1))).sum())
        for s in itertools.combinations(range(n), k)
    )


@pytest.mark.parametrize("seed", range(6))
def test_mclp_and_lscp_optimal_on_random_instances(seed):
    rng = np.random.default_rng(seed)
    m, n = 60, 9
    dense = rng.random((m, n)) < 0.18
    dense[np.arange(m), rng.integers(0, n, m)] = True  # every row coverable
    a = sparse.csr_array(dense.astype(float))
    w = rng.integers(1, 50, m).astype(float)
    for k in (1, 2, 3, 4):
        got = siting.solve_mclp(a, w, k)
        assert got.objective == pytest.approx(_brute_mclp(a, w, k))
        assert len(got.chosen_index) == k and got.status == "optimal" and got.gap <= 1e-9
    got = siting.solve_lscp(a)
    assert got.objective == _brute_lscp(a)
    assert (dense[:, got.chosen_index].any(axis=1)).all()


@pytest.mark.parametrize("seed", range(6))
def test_pmedian_optimal_with_existing_facilities(seed):
    rng = np.random.default_rng(seed)
    m, n = 40, 8
    pts, cand = rng.random((m, 2)) * 1000, rng.random((n, 2)) * 1000
    full = np.hypot(*(pts[:, None, :] - cand[None, :, :]).transpose(2, 0, 1))
    d0 = np.hypot(*(pts - rng.random(2) * 1000).T)  # one existing facility
    d0[: m // 4] = np.inf  # some demand reaches no existing facility
    row, col = np.nonzero(full < d0[:, None])
    d = full[row, col]
    w = rng.integers(1, 20, m).astype(float)
    for k in (1, 2, 3):
        got = siting.solve_pmedian(row, col, d, w, d0, n, k)
        assert got.objective == pytest.approx(_brute_pmedian(row, col, d, w, d0, n, k), rel=1e-9)
        assert got.status == "optimal" and len(got.chosen_index) == k


def test_merge_rows_keeps_the_optimum():
    rng = np.random.default_rng(7)
    rows, cols = np.nonzero(rng.random((200, 6)) < 0.3)
    w = rng.integers(1, 9, 200).astype(float)
    merged, mw = siting._merge_rows(rows, cols, w, 6)
    assert merged.shape[0] < len(np.unique(rows)) and mw.sum() == w[np.unique(rows)].sum()
    plain = sparse.csr_array((np.ones(len(rows)), (rows, cols)), shape=(200, 6))
    for k in (1, 2, 3):
        assert siting.solve_mclp(merged, mw, k).objective == _brute_mclp(plain, w, k)


@pytest.fixture(scope="module", params=["line", "network"])
def planned(request, district_city):
    c = district_city
    args = (c["buildings"], c["facilities"], c["facility_types"], c["communities"])
    cv = compute(*args, roads=c["roads"], mode=request.param, only=[TYPE], gaps=False)
    p = siting.Planner.from_coverage(cv, c["buildings"], c["facilities"], c["facility_types"], TYPE)
    return c, p


def _with_sites(c, sites: gpd.GeoDataFrame, mode: str) -> np.ndarray:
    """Covered flags from a fresh coverage run with ``sites`` added as facilities."""
    extra = gpd.GeoDataFrame(
        {
            "id": [f"new{i}" for i in range(len(sites))],
            "name": "候选",
            "type": TYPE,
            "area_m2": sites["area_m2"].to_numpy(),
            "status": "existing",
        },
        geometry=sites.geometry.values,
        crs="EPSG:4326",
    )
    f = pd.concat([c["facilities"], extra], ignore_index=True)
    cv = compute(
        c["buildings"],
        f,
        c["facility_types"],
        c["communities"],
        roads=c["roads"],
        mode=mode,
        only=[TYPE],
        gaps=False,
    )
    return cv.buildings[f"covered_{TYPE}"].to_numpy()


def test_evaluate_matches_a_fresh_coverage_run(planned):
    c, p = planned
    cands = siting.generate(p, 5)
    ev = siting.evaluate(p, cands)
    assert len(ev.ranking) == 5 and ev.ranking["newly_covered"].is_monotonic_decreasing
    for _, r in ev.ranking.iterrows():
        one = cands[cands["id"] == r["id"]]
        after = _with_sites(c, one, p.cv.mode)
        newly = p.weight[after & ~p.covered].sum()
        assert r["newly_covered"] == pytest.approx(newly)
        assert r["newly_covered"] > 0  # generated inside the gaps
        units = ev.by_unit[(ev.by_unit["id"] == r["id"]) & (ev.by_unit["level"] == "community")]
        assert units["newly_covered"].sum() == pytest.approx(newly)
        assert r["access_after"] > r["access_before"]


def test_optimised_sites_cover_what_they_claim(planned):
    c, p = planned
    cands = siting.generate(p, 40)
    sol = siting.optimise(p, cands, 4, "mclp")
    assert sol.status == "optimal" and len(sol.chosen) == 4 and sol.gap <= 1e-9
    after = _with_sites(c, cands[cands["id"].isin(sol.chosen)], p.cv.mode)
    assert sol.objective == pytest.approx(p.weight[after & ~p.covered].sum())
    # no single swap of a chosen site for another candidate does better
    ev = siting.evaluate(p, cands)
    assert sol.objective >= ev.ranking["newly_covered"].max()
    lscp = siting.optimise(p, cands, None, "lscp")
    after = _with_sites(c, cands[cands["id"].isin(lscp.chosen)], p.cv.mode)
    coverable = p.weight[~p.covered].sum() - lscp.uncoverable
    assert p.weight[after & ~p.covered].sum() == pytest.approx(coverable)


def test_pmedian_lowers_the_weighted_distance(planned):
    _, p = planned
    cands = siting.generate(p, 15)
    street = siting.evaluate(p, cands).ranking["community_code"].iloc[0][:9]
    sol = siting.optimise(p, cands, 2, "pmedian", within=street)
    mask = (p.weight > 0) & p.cv.buildings["community_code"].str.startswith(street).to_numpy()
    before = float((p.weight * np.where(np.isfinite(p.dist), p.dist, 0))[mask].sum())
    assert sol.status == "optimal" and sol.objective < before


def test_bad_requests_get_one_clear_error(planned):
    c, p = planned
    cands = siting.generate(p, 3)
    with pytest.raises(ValidationError, match="lies outside the city"):
        siting.evaluate(p, siting.candidates([(116.0, 39.9)]))  # Beijing
    with pytest.raises(ValidationError, match="unknown facility type 'spa'"):
        siting.Planner.from_coverage(
            p.cv, c["buildings"], c["facilities"], c["facility_types"], "spa"
        )
    with pytest.raises(ValidationError, match="k = 5 is more than the 3 candidate sites"):
        siting.optimise(p, cands, 5, "mclp")
    with pytest.raises(ValidationError, match="floor area -20 m² is negative"):
        siting.candidates([(117.7, 34.6)], area=-20)
    with pytest.raises(ValidationError, match="objective 'best'"):
        siting.optimise(p, cands, 1, "best")
