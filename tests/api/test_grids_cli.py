"""``gridgis grids`` as a user runs it."""

from __future__ import annotations

import json

import numpy as np
import openpyxl

from gis.export import write as export
from gis.store import GeoPackageStore
from tests.api.test_cli import _sha, run


def _store(town, tmp_path):
    s = GeoPackageStore(tmp_path / "s.gpkg")
    s.write({k: v for k, v in town.items() if k != "buildings"} | {"buildings": town["buildings"]})
    return s


def test_build_report_update(district_city, tmp_path):
    s = GeoPackageStore(tmp_path / "s.gpkg")
    s.write(
        {k: district_city[k] for k in ("districts", "streets", "communities", "buildings", "roads")}
    )
    r = run("grids", "build", "--store", str(s.path), "--json")
    assert r.returncode == 0, r.stderr
    fig = json.loads(r.stdout)
    assert fig["households"] == int(district_city["buildings"]["households"].sum())
    # whole blocks are indivisible: adjacency rules some grids out (94.9 % measured)
    assert fig["share_in_band_where_reachable"] >= 0.94 and fig["median_polsby_popper"] >= 0.45
    assert fig["empty_grids"] == 0
    grids = s.read("grids")
    assert len(grids) == fig["grids"] and grids["code"].str.fullmatch(r"\d{15}").all()

    xlsx = tmp_path / "report.xlsx"
    r = run("grids", "report", "--store", str(s.path), "--out", str(xlsx))
    assert r.returncode == 0, r.stderr
    assert "达标网格占比" in r.stdout and "网格边界沿道路" in r.stdout
    wb = openpyxl.load_workbook(xlsx)
    assert wb.sheetnames == ["汇总", "社区", "边界沿路", "网格"]
    along = {row[0].value: row[3].value for row in wb["边界沿路"].iter_rows(min_row=2)}
    assert float(along["all"]) >= 0.9  # inner borders within 10 m of a road
    assert wb["网格"].max_row == len(grids) + 1
    assert [c.value for c in wb["社区"][1]][:4] == ["社区代码", "社区/村", "类型", "户数"]

    b = s.read("buildings")
    rng = np.random.default_rng(1)
    b["households"] = np.round(b["households"] * rng.uniform(0.95, 1.05, len(b))).astype(np.int64)
    s.write({"buildings": b})
    r = run("grids", "update", "--store", str(s.path), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["stable_share"] >= 0.9 and out["retired"] == len(s.read("grid_history"))
    assert s.read("grids")["households"].sum() == b["households"].sum()


def test_rebuilding_a_community_numbers_on(town, tmp_path):
    s = _store(town, tmp_path)
    code = town["communities"]["code"].iloc[0]
    assert run("grids", "build", "--community", code, "--store", str(s.path)).returncode == 0
    first = set(s.read("grids")["code"])
    r = run("grids", "build", "--community", code, "--target", "320", "--store", str(s.path))
    assert r.returncode == 0, r.stderr
    second = set(s.read("grids")["code"])
    assert not first & second  # old codes retired, not reused
    assert set(s.read("grid_history")["code"]) == first


def test_file_mode(town, tmp_path):
    c, b = tmp_path / "c.geojson", tmp_path / "b.csv"
    export(town["communities"], c, layer="communities")
    export(town["buildings"], b, layer="buildings")
    out = tmp_path / "grids.geojson"
    r = run(
        "grids",
        "build",
        "--communities",
        str(c),
        "--buildings",
        str(b),
        "--out",
        str(out),
        "--json",
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["households"] == int(town["buildings"]["households"].sum())
    assert out.exists()


def test_bad_requests_are_one_line_errors(town, tmp_path):
    s = _store(town, tmp_path)
    before = _sha(s.path)
    r = run("grids", "build", "--community", "370405999999", "--store", str(s.path))
    assert (
        r.returncode == 2
        and "unknown community code 370405999999" in r.stderr
        and "Traceback" not in r.stderr
    )
    r = run("grids", "build", "--min", "500", "--max", "400", "--store", str(s.path))
    assert r.returncode == 2 and "min ≤ target ≤ max" in r.stderr
    r = run("grids", "update", "--store", str(s.path))
    assert r.returncode == 2 and "no grids yet" in r.stderr
    r = run("grids", "build", "--rural", "abc", "--store", str(s.path))
    assert r.returncode == 2 and "MIN-TARGET-MAX" in r.stderr
    assert _sha(s.path) == before
