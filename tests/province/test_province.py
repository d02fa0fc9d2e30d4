"""A province county by county: the synthetic counties, and a dask cluster that gives
the same results as one process (real LocalCluster of processes, real PostGIS).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import shapely

from gis import network as gnet
from gis import schema
from gis.crs import metric_crs_of
from gis.reference import facility_types
from gis.store import GeoPackageStore
from gis.synth import province as sp
from gis.workflows import province as wp
from tests.conftest import _postgis_schema, store_spec

#: three counties of different kinds, small enough for a test: 垦利区 (a district of
#: towns and villages, its outline real), and the two development zones carved out of it
#: (东营经济技术开发区, all residents' committees; 东营港经济开发区, two villages): coverage
#: crosses their edges with 垦利区
COUNTIES = ["370505", "370571", "370572"]
RESULTS = ("grids", "quotas", "assignments", "workers", "coverage", "gaps")


def test_the_province_matches_the_census_and_a_county_rebuilds_alone():
    hh = sp.county_households()
    assert sum(hh.values()) == 35_184_241 and len(hh) == 151
    p = sp.load_province()
    res = p.cities.set_index("code")["residents_2020"]
    for city, total in sp.city_households().items():
        assert abs(total - 35_184_241 * res[city] / res.sum()) <= 1
    a, b = sp.build_county("370671"), sp.build_county("370671")
    for name in ("communities", "buildings", "facilities", "workers"):
        pd.testing.assert_frame_equal(a[name], b[name])
    comms, bld = a["communities"], a["buildings"]
    assert bld["households"].sum() == hh["370671"]
    assert abs(bld["residents"].sum() / bld["households"].sum() - 2.70) < 0.005
    real = p.villages[p.villages["district_code"] == "370671"]
    assert sorted(comms["code"]) == sorted(real["code12"])  # the real codes and names
    outline = p.county("370671").geometry
    assert shapely.contains(outline.buffer(1e-6), bld.geometry.values).all()


def test_unknown_codes_and_settings_get_one_clear_error(tmp_path):
    with pytest.raises(ValueError, match="unknown province"):
        sp.load_province("99")
    with pytest.raises(ValueError, match="unknown county code '379999'"):
        sp.load_province().county("379999")
    with pytest.raises(ValueError, match="unknown city code"):
        sp.load_province().counties_of(["3799"])
    bad = tmp_path / "rules.toml"
    bad.write_text("[cities.3799]\ncap = 10\n", encoding="utf-8")
    with pytest.raises(Exception, match="no city 3799"):
        wp.load_rules(bad)
    bad.write_text("[cities.3704]\nratoi = 300\n", encoding="utf-8")
    with pytest.raises(Exception, match="unknown setting"):
        wp.load_rules(bad)
    with pytest.raises(Exception, match="cannot reach the dask scheduler"):
        wp.connect("tcp://127.0.0.1:1")


def _tables(store) -> dict[str, pd.DataFrame]:
    out = {}
    for name in (*wp.STAGES["base"], *RESULTS):
        df = store.read(name)
        df = df.sort_values(list(schema.layer(name).key)).reset_index(drop=True)
        plain = pd.DataFrame(df.drop(columns="geometry", errors="ignore"))
        if "geometry" in df:
            plain["geometry"] = shapely.to_wkb(df.geometry.values)  # exactly the same
        out[name] = plain
    return out


@pytest.mark.postgis
def test_a_cluster_of_two_processes_gives_the_single_process_results():
    # a cap for 东营 whose share in 370571 binds (its rule quota is above it)
    share = wp.ProvinceRules(cities={"3705": {"cap": 100_000}}).for_county("370571").staff.cap
    cap = int(100_000 * 60 / share)
    rules = wp.ProvinceRules(cities={"3705": {"cap": cap, "ratio": 200, "urban_min": 3}})
    assert 58 <= rules.for_county("370571").staff.cap <= 62
    with _postgis_schema() as one, _postgis_schema() as two:
        alone = wp.build(store_spec(one), COUNTIES, rules=rules)
        assert not alone.failed
        client = wp.connect(None, workers=2, memory="3GB")
        try:
            ran = wp.build(store_spec(two), COUNTIES, rules=rules, client=client)
            hosts = {w["host"] for w in client.scheduler_info()["workers"].values()}
            assert len(client.scheduler_info()["workers"]) == 2 and hosts
        finally:
            client.close()
            client.cluster.close()
        assert not ran.failed and len(ran.done) == 2 * len(COUNTIES)
        a, b = _tables(one), _tables(two)
        for name in a:
            assert len(a[name]), name
            pd.testing.assert_frame_equal(a[name], b[name], obj=name)
        # the city's cap, shared among its counties, holds
        q = a["quotas"]
        urban = q[(q["kind"] == "urban") & q["code"].str.startswith("370571")]
        assert urban["quota"].sum() == rules.for_county("370571").staff.cap
        assert urban["rule_quota"].sum() > urban["quota"].sum()
        assert set(a["coverage"]["code"].str[:6]) == set(COUNTIES)
        # coverage near the edge sees the neighbour's facilities and walks its roads: the
        # two road networks meet at the border crossings, so 东营港's buildings reach
        # 垦利区's facilities on the network (and without the crossing roads they do not)
        f = wp.county_inputs(one, "370572", float(facility_types()["radius_m"].max()))
        theirs = f["facilities"][f["facilities"]["id"].str.startswith("F370505")]
        assert len(theirs)
        m = metric_crs_of(f["communities"])
        fxy = shapely.get_coordinates(theirs.to_crs(m).geometry.values)
        bxy = shapely.get_coordinates(f["buildings"].to_crs(m).geometry.values)
        cross = f["roads"]["id"].str.contains("X")
        for roads, reached in ((f["roads"], True), (f["roads"][~cross], False)):
            d = gnet.nearest(gnet.build(roads.to_crs(m).geometry), fxy, bxy)
            assert np.isfinite(d).any() == reached
        # run again: every task skipped, nothing duplicated
        again = wp.build(store_spec(two), COUNTIES, rules=rules)
        assert all(d["skipped"] for d in again.done)
        for name, df in _tables(two).items():
            assert len(df) == len(b[name]), name


@pytest.mark.postgis
def test_a_worker_killed_mid_county_has_the_county_rerun_and_nothing_duplicated():
    import os
    import random
    import signal
    import threading
    import time

    with _postgis_schema() as s:
        url = store_spec(s)
        client = wp.connect(None, workers=2, memory="3GB")
        out: dict = {}
        try:
            runner = threading.Thread(
                target=lambda: out.update(run=wp.build(url, COUNTIES, client=client))
            )
            runner.start()
            killed = None
            deadline = time.monotonic() + 120
            while killed is None and time.monotonic() < deadline and runner.is_alive():
                busy = {w: ks for w, ks in client.processing().items() if "results-370505" in ks}
                if busy:
                    time.sleep(random.uniform(0.3, 1.5))  # into the county's work (~10 s)
                    (addr,) = busy
                    killed = client.run(os.getpid, workers=[addr])[addr]
                    os.kill(killed, signal.SIGKILL)
                time.sleep(0.05)
            runner.join(600)
        finally:
            client.close()
            client.cluster.close()
        assert killed is not None, "the county's task was never seen running"
        run = out["run"]
        assert not run.failed, run.failed
        last = [d for d in run.done if d["county"] == "370505" and d["stage"] == "results"]
        # rerun by another process (or, killed between its commit and its answer, found done)
        assert len(last) == 1 and last[0].get("pid") != killed
        # the store is complete, each county's rows exactly once
        for c in COUNTIES:
            want = sp.build_county(c)
            for name in ("buildings", "communities", "facilities"):
                col, prefix = wp.PARTS[name]
                got = s.read(name)
                mine = got[got[col].str.startswith(prefix.format(c=c))]
                assert len(mine) == len(want[name]) and mine[col].is_unique, (c, name)
        runs = s.read("province_runs")
        assert sorted(runs["id"]) == sorted(
            f"{c}:{st}" for c in COUNTIES for st in ("base", "results")
        )
        g = s.read("grids")
        assert g["code"].is_unique and set(g["code"].str[:6]) == set(COUNTIES)


def test_the_province_map_and_report_on_the_geopackage(tmp_path):
    from typer.testing import CliRunner

    from api.cli import app

    path = tmp_path / "p.gpkg"
    run = wp.build(str(path), ["370572"])
    assert not run.failed and {d["stage"] for d in run.done} == {"base", "results"}
    rep = wp.report(GeoPackageStore(path))
    row = rep.counties.set_index("code").loc["370572"]
    assert row["households"] == row["census_households"] == sp.county_households()["370572"]
    assert row["grids"] >= 1 and rep.cities["city_code"].tolist() == ["3705"]
    out = tmp_path / "province.html"
    res = CliRunner().invoke(app, ["province", "map", "--store", str(path), "--out", str(out),
                                   "--base", "http://gw.example"])  # fmt: skip
    assert res.exit_code == 0, res.output
    html = out.read_text(encoding="utf-8")
    assert out.stat().st_size < 10e6 and "山东省 · 各市县社区服务覆盖" in html
    assert "http://gw.example/maps/city?district=370572" in html
    assert html.count("<script") == html.count("</script>")  # nothing injected from the data
    res = CliRunner().invoke(app, ["province", "build", "--store", str(path), "--county", "379999",
                                   "--workers", "0"])  # fmt: skip
    assert res.exit_code != 0 and "unknown county code '379999'" in str(res.exception or res.output)


def test_a_county_outline_missing_from_the_data_is_one_clear_error(tmp_path, monkeypatch):
    import json
    import shutil

    src = sp.DATA_DIR / "shandong"
    dst = tmp_path / "shandong"
    shutil.copytree(src, dst)
    doc = json.loads((dst / "counties_wgs84.geojson").read_text(encoding="utf-8"))
    doc["features"] = [f for f in doc["features"] if f["properties"]["code"] != "370402"]
    (dst / "counties_wgs84.geojson").write_text(
        json.dumps(doc, ensure_ascii=False), encoding="utf-8"
    )
    monkeypatch.setattr(sp, "DATA_DIR", tmp_path)
    sp.load_province.cache_clear()
    try:
        with pytest.raises(ValueError, match="no outline for county 370402"):
            sp.load_province("37")
    finally:
        sp.load_province.cache_clear()
