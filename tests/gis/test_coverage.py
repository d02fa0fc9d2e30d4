"""Coverage: distances against brute force, sums that reconcile, the awkward cases."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest

import geopandas as gpd
import shapely

from gis import network as gnet
from gis.coverage import compute
from gis.errors import ValidationError
from gis.reference import facility_types

TYPES = facility_types()


def _city(seed: int, n_b: int = 300, n_f: int = 6):
    rng = np.random.default_rng(seed)
    comm = gpd.GeoDataFrame(
        {"code": ["370405001001", "370405001201"], "name": ["a", "b"], "kind": ["urban", "rural"]},
        geometry=[
            shapely.box(117.30, 34.80, 117.32, 34.82),
            shapely.box(117.32, 34.80, 117.34, 34.82),
        ],
        crs="EPSG:4326",
    )
    x = rng.uniform(117.3005, 117.3395, n_b)
    y = rng.uniform(34.8005, 34.8195, n_b)
    hh = rng.integers(1, 60, n_b)
    b = gpd.GeoDataFrame(
        {
            "id": [f"b{i}" for i in range(n_b)],
            "community_code": np.where(x < 117.32, "370405001001", "370405001201"),
            "households": hh,
            "residents": hh * 3,
            "elderly": rng.integers(0, 20, n_b),
            "children": rng.integers(0, 20, n_b),
            "disabled": pd.array([None] * n_b, dtype="Int64"),
        },
        geometry=gpd.points_from_xy(x, y),
        crs="EPSG:4326",
    )
    types = rng.choice(["community_service_station", "elderly_day_care", "culture_room"], n_f)
    f = gpd.GeoDataFrame(
        {
            "id": [f"f{i}" for i in range(n_f)],
            "name": "x",
            "type": types,
            "area_m2": rng.uniform(50, 500, n_f),
            "status": "existing",
        },
        geometry=gpd.points_from_xy(
            rng.uniform(117.301, 117.339, n_f), rng.uniform(34.801, 34.819, n_f)
        ),
        crs="EPSG:4326",
    )
    # a street lattice every ~300 m
    lines = [
        shapely.LineString([(117.30, yy), (117.34, yy)]) for yy in np.linspace(34.801, 34.819, 7)
    ]
    lines += [
        shapely.LineString([(xx, 34.80), (xx, 34.82)]) for xx in np.linspace(117.301, 117.339, 13)
    ]
    roads = gpd.GeoDataFrame(
        {"id": [f"r{i}" for i in range(len(lines))], "kind": "road"},
        geometry=lines,
        crs="EPSG:4326",
    )
    return comm, b, f, roads


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_straight_line_equals_all_pairs(seed):
    comm, b, f, _ = _city(seed)
    cv = compute(b, f, TYPES, comm, mode="line")
    bm = b.to_crs(4548)
    fm = f.to_crs(4548)
    for t in TYPES.itertuples():
        mine = fm[fm["type"] == t.code]
        if len(mine):
            d = np.array([[p.distance(q) for q in mine.geometry] for p in bm.geometry]).min(axis=1)
            assert np.allclose(cv.buildings[f"dist_{t.code}"], d, atol=1e-6)
            assert (cv.buildings[f"covered_{t.code}"] == (d <= t.radius_m)).all()
        else:
            assert cv.buildings[f"dist_{t.code}"].isna().all()
            assert not cv.buildings[f"covered_{t.code}"].any()


@pytest.mark.parametrize("seed", [4, 5])
def test_network_equals_reference_shortest_paths(seed):
    comm, b, f, roads = _city(seed)
    cv = compute(b, f, TYPES, comm, roads=roads, mode="network")
    net = gnet.build(roads.to_crs(4548).geometry)
    g = nx.Graph()
    coo = net.graph.tocoo()
    for u, v, w in zip(coo.row, coo.col, coo.data, strict=True):
        g.add_edge(int(u), int(v), weight=float(w))
    bxy = shapely.get_coordinates(b.to_crs(4548).geometry.values)
    fxy = shapely.get_coordinates(f.to_crs(4548).geometry.values)
    bv, ba = gnet.snap(net, bxy)
    fv, fa = gnet.snap(net, fxy)
    for code in f["type"].unique():
        idx = np.flatnonzero(f["type"].to_numpy() == code)
        best = np.full(len(b), np.inf)
        for j in idx:
            lengths = nx.single_source_dijkstra_path_length(g, int(fv[j]), weight="weight")
            d = np.array([lengths.get(int(v), np.inf) for v in bv]) + ba + fa[j]
            best = np.minimum(best, d)
        assert np.allclose(cv.buildings[f"dist_{code}"], best, atol=1e-6)


def test_sums_reconcile(district_city):
    c = district_city
    cv = compute(
        c["buildings"],
        c["facilities"],
        c["facility_types"],
        c["communities"],
        mode="line",
        gaps=False,
    )
    t = cv.table
    assert np.allclose(t["covered"] + t["uncovered"], t["served"])
    for parent, child, width in (
        ("city", "district", None),
        ("district", "street", 6),
        ("street", "community", 9),
    ):
        p = t[t["level"] == parent].set_index(["type", "code"])["served"]
        ch = t[t["level"] == child].copy()
        ch["parent"] = "city" if width is None else ch["code"].str[:width]
        sums = ch.groupby(["type", "parent"])[["served", "covered"]].sum()
        sums.index.names = ["type", "code"]
        assert np.allclose(sums["served"].reindex(p.index), p)
    # the station serves urban communities only (catalogue: applies = urban)
    urban = set(c["communities"].loc[c["communities"]["kind"] == "urban", "code"])
    b = c["buildings"]
    hh = b.loc[b["community_code"].isin(urban), "households"].sum()
    assert 0 < hh < b["households"].sum()
    city = t[(t["level"] == "city") & (t["type"] == "community_service_station")]
    assert city["served"].iloc[0] == hh
    villages = t[(t["level"] == "community") & (t["type"] == "community_service_station")
                 & ~t["code"].isin(urban)]  # fmt: skip
    assert len(villages) and (villages["served"] == 0).all()


def test_awkward_cases_are_reported(tmp_path):
    comm, b, f, roads = _city(7)
    f = f[f["type"] != "culture_room"].copy()
    f.loc[f.index[0], "geometry"] = shapely.Point(117.5, 34.9)  # outside every community
    # an isolated building: its own little road island far from the lattice
    iso = b.iloc[[0]].assign(id="iso", geometry=[shapely.Point(117.3395, 34.8195)])
    b = pd.concat([b, iso], ignore_index=True)
    roads = pd.concat(
        [
            roads[roads.geometry.bounds["maxx"] < 117.339],
            gpd.GeoDataFrame(
                {"id": ["island"], "kind": "path"},
                geometry=[shapely.LineString([(117.3394, 34.8194), (117.33945, 34.8194)])],
                crs="EPSG:4326",
            ),
        ],
        ignore_index=True,
    )
    cv = compute(b, f, TYPES, comm, roads=roads, mode="network")
    text = "\n".join(cv.notes)
    assert "no existing facility of type culture_room" in text
    assert f"facility {f['id'].iloc[0]} lies outside every community" in text
    assert "cannot reach any facility on the road network" in text
    row = cv.buildings[cv.buildings["id"] == "iso"].iloc[0]
    assert (
        np.isnan(row["dist_community_service_station"])
        and not row["covered_community_service_station"]
    )
    t = cv.table[
        (cv.table["level"] == "city") & (cv.table["type"] == "community_service_station")
    ].iloc[0]
    assert t["unreachable"] >= b.loc[b["id"] == "iso", "households"].iloc[0]
    with pytest.raises(ValidationError, match="unknown facility type 'spa'"):
        compute(b, f, TYPES, comm, only=["spa"])
    with pytest.raises(ValidationError, match="network mode needs a roads layer"):
        compute(b, f, TYPES, comm, mode="network")


def test_gaps_and_capacity(district_city):
    c = district_city
    cv = compute(
        c["buildings"],
        c["facilities"],
        c["facility_types"],
        c["communities"],
        mode="line",
        only=["community_service_station", "elderly_day_care"],
    )
    g = cv.gaps
    assert len(g) and g.is_valid.all()
    assert set(g["type"]) == {"community_service_station", "elderly_day_care"}
    # gap areas hold exactly the uncovered demand of their community
    per = g.groupby(["type", "community_code"])["served"].sum()
    t = cv.table[cv.table["level"] == "community"].set_index(["type", "code"])["uncovered"]
    assert np.allclose(per.to_numpy(), t.reindex(per.index).to_numpy())
    # gaps lie inside their community
    comm = c["communities"].set_index("code").geometry
    inside = shapely.area(
        shapely.intersection(g.geometry.values, comm.loc[g["community_code"]].values)
    )
    assert np.allclose(inside, shapely.area(g.geometry.values), rtol=1e-6)
    cap = cv.capacity
    assert set(cap["type"]) == {"community_service_station"}
    assert (cap["under_standard"] == (cap["area_per_100_households"] < 30)).all()
    assert cap["under_standard"].any() and not cap["under_standard"].all()
    access = cv.buildings["access_community_service_station"]
    assert (access >= 0).all() and (
        access[cv.buildings["covered_community_service_station"]] > 0
    ).all()
