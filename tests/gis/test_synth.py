"""The Zaozhuang demo city: real codes, calibrated totals, tiling, determinism."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest

import shapely

from gis import schema
from gis.io import locate
from gis.reference import DATA_DIR
from gis.synth import CITY_HOUSEHOLDS, build_city, largest_remainder
from tests.helpers import assert_layer_equal


def _metric_area(gdf):
    return gdf.to_crs(4548).area


@pytest.fixture(scope="module")
def city():
    return build_city()


def test_full_city_counts_and_totals(city):
    assert len(city["districts"]) == 6
    assert len(city["streets"]) == 66
    c = city["communities"]
    assert len(c) == 2469 and (c["kind"] == "urban").sum() == 258
    with open(DATA_DIR / "zaozhuang_village_level_nbs2023.csv", encoding="utf-8") as fh:
        real = {r["code12"]: r["name"] for r in csv.DictReader(fh)}
    assert dict(zip(c["code"], c["name"], strict=True)) == real
    b = city["buildings"]
    assert abs(b["households"].sum() - CITY_HOUSEHOLDS) <= 0.005 * CITY_HOUSEHOLDS
    assert b["residents"].sum() / b["households"].sum() == pytest.approx(2.89, abs=0.005)
    assert b["elderly"].sum() / b["residents"].sum() == pytest.approx(0.185, abs=0.005)
    hh = b.groupby("community_code")["households"].sum()
    urban = hh[c.loc[c["kind"] == "urban", "code"]]
    assert urban.mean() == pytest.approx(2000, rel=0.05)
    quota = np.maximum(5, np.ceil(urban / 350)).sum()
    assert 1400 <= quota <= 1700  # near the approved 1,540
    # urban buildings are blocks of tens to hundreds of households, rural courtyards small
    kind = b["community_code"].map(c.set_index("code")["kind"])
    assert b.loc[kind == "urban", "households"].median() >= 20
    assert b.loc[kind == "rural", "households"].max() <= 3
    # district populations follow the census (滕州市 1,574,600; 台儿庄区 305,102)
    res = b.groupby(b["community_code"].str[:6])["residents"].sum()
    assert res["370481"] / res.sum() == pytest.approx(1_574_600 / 3_855_601, rel=0.01)
    for name, df in city.items():
        schema.check(name, df)  # every layer conforms
        if "synthetic" in df.columns and name != "districts":
            assert df["synthetic"].all(), name


def test_tiling_and_containment(city):
    d, s, c = city["districts"], city["streets"], city["communities"]
    assert _metric_area(s).sum() == pytest.approx(_metric_area(d).sum(), rel=1e-6)
    assert _metric_area(c).sum() == pytest.approx(_metric_area(d).sum(), rel=1e-6)
    # no overlaps: the union is as large as the sum of the parts
    union = shapely.union_all(c.to_crs(4548).geometry.values)
    assert union.area == pytest.approx(_metric_area(c).sum(), rel=1e-6)
    # each community lies in its street, each street in its district
    sg = s.set_index("code").to_crs(4548).geometry
    cg = c.to_crs(4548)
    inside = shapely.area(shapely.intersection(cg.geometry.values, sg.loc[c["street_code"]].values))
    assert np.allclose(inside, cg.area, rtol=1e-6)
    b = city["buildings"]
    assert (locate(b.geometry, c).to_numpy() == b["community_code"].to_numpy()).all()


def test_facilities_and_roster_are_plausible(city):
    f = city["facilities"]
    assert set(f["type"]) == set(city["facility_types"]["code"])
    c = city["communities"]
    urban = set(c.loc[c["kind"] == "urban", "code"])
    w = city["workers"]
    assert set(w["community_code"]) == set(c["code"])  # villages have their 村两委 members
    per = w.groupby("community_code").size()
    assert per[sorted(urban)].min() >= 4 and per.min() >= 1
    assert (w.groupby("community_code")["post"].apply(lambda p: (p == "正职").sum()) == 1).all()
    r = city["roads"]
    assert set(r["kind"]) == {"primary", "secondary", "residential", "path", "lane"}
    assert (r.groupby("kind").size() > 100).all()
    # every committee's own station or centre stands in its community, every building has
    # an address naming its compound or village
    own = f[f["type"].isin(["community_service_station", "rural_service_center"])]
    where = locate(own.geometry, c)
    kind = where.map(c.set_index("code")["kind"])
    assert where.notna().all() and where.is_unique and len(own) == len(c)
    assert ((own["type"] == "community_service_station") == (kind == "urban")).all()
    b = city["buildings"]
    assert b["address"].str.len().gt(2).all()
    urban_b = b[b["community_code"].isin(urban)]
    assert (
        urban_b["address"]
        .str.contains(r"(?:花园|家园|小区|新村|苑|华府|公寓)(?:\d+期)?\d+号楼$")
        .mean()
        > 0.6
    )
    assert not b["address"].str.contains("委员会|委会").any()
    assert b.loc[~b["community_code"].isin(urban), "address"].str.contains(r"\d+号$").all()


def test_same_seed_same_city_and_subset_matches():
    a = build_city(districts=["370405"])
    b = build_city(districts=["370405"])
    for name in a:
        assert_layer_equal(a[name], b[name], tolerance=0)
    other = build_city(districts=["370405"], seed=7)
    assert not other["buildings"]["households"].equals(a["buildings"]["households"])


def test_unknown_district():
    with pytest.raises(ValueError, match="unknown district code.*999999"):
        build_city(districts=["999999"])


def test_largest_remainder_is_exact():
    got = largest_remainder([3.0, 2.0, 1.0, 0.5], 1000)
    assert got.sum() == 1000
    assert got.tolist() == [461, 308, 154, 77]  # quotas 461.5, 307.7, 153.8, 76.9
    assert isinstance(pd.Series(got).sum(), np.integer)
