"""``gridgis staff`` as a user runs it."""

from __future__ import annotations

import json

import openpyxl

from gis.export import write as export
from gis.partition import divide
from gis.store import GeoPackageStore
from tests.api.test_cli import _sha, run


def test_quota_file_mode_json(district_city, tmp_path):
    c, b = tmp_path / "c.gpkg", tmp_path / "b.gpkg"
    export(district_city["communities"], c, layer="communities")
    export(district_city["buildings"], b, layer="buildings")
    r = run(
        "staff", "quota", "--communities", str(c), "--buildings", str(b), "--cap", "120", "--json"
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["cap"] == 120 and out["total"] == 120
    first = out["communities"][0]
    assert set(first) == {"code", "kind", "households", "rule_quota", "quota"}
    urban = [x for x in out["communities"] if x["kind"] == "urban"]
    assert min(x["quota"] for x in urban) >= 5 and len(out["communities"]) == 217


def test_assign_and_payroll_in_store(district_city, tmp_path):
    s = GeoPackageStore(tmp_path / "s.gpkg")
    c = district_city
    grids = divide(c["communities"], c["buildings"], c["roads"]).grids
    s.write({k: c[k] for k in ("communities", "buildings", "workers")} | {"grids": grids})
    xlsx = tmp_path / "assign.xlsx"
    r = run("staff", "assign", "--store", str(s.path), "--json", "--out", str(xlsx))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["grids"] == len(grids) and out["share_in_band_where_possible"] >= 0.95
    assert all(x["note"] for x in out["not_in_band"])
    a = s.read("assignments")
    assert a["grid_code"].is_unique and len(a) == len(grids)
    assert set(s.read("workers")["role"]) == {"window", "grid"}
    assert openpyxl.load_workbook(xlsx).sheetnames == ["网格责任人", "工作量"]
    r = run("staff", "assign", "--store", str(s.path), "--json")
    assert json.loads(r.stdout)["moved"] == 0
    r = run("staff", "payroll", "--store", str(s.path), "--on", "2026-01-01", "--json")
    assert r.returncode == 0, r.stderr
    pay = json.loads(r.stdout)
    assert pay["roster"] == len(c["workers"]) and pay["roster_monthly_yuan"] > 0
    assert s.read("workers")["grade"].notna().all()


def test_bad_roster_is_one_error_and_nothing_written(town, tmp_path):
    s = GeoPackageStore(tmp_path / "s.gpkg")
    s.write({"communities": town["communities"]})
    before = _sha(s.path)
    w = town["workers"].head(5).copy()
    w.loc[0, "community_code"] = "370405999001"
    w.loc[1, "post"] = "书记"
    w.loc[2, "hired"] = "2099-01-01"
    w.loc[3, "id"] = w.loc[4, "id"]
    path = tmp_path / "roster.xlsx"
    w.to_excel(path, index=False)
    r = run("import", "--workers", str(path), "--store", str(s.path))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    for needle in (
        "row 2",
        "not a known community",
        "row 3",
        "'书记' is not one of",
        "row 4",
        "in the future",
        "duplicate id",
    ):
        assert needle in r.stderr, needle
    assert _sha(s.path) == before


def test_assign_without_a_roster_names_a_vacant_post_for_every_grid(district_city, tmp_path):
    from gis.locate import LAYERS, Locator

    s = GeoPackageStore(tmp_path / "s.gpkg")
    c = district_city
    grids = divide(c["communities"], c["buildings"], c["roads"]).grids
    s.write(
        {k: c[k] for k in ("districts", "streets", "communities", "buildings")} | {"grids": grids}
    )
    r = run("staff", "assign", "--store", str(s.path), "--json")
    assert r.returncode == 0, r.stderr
    a = s.read("assignments")
    assert len(a) == len(grids) and a["worker_id"].str.fullmatch(r"\d{12}-V\d{2}").all()
    assert "workers" not in s.names()  # no invented people in the roster
    # a village grid answers with its named vacant post
    village = grids[grids["community_code"].str[9:12].astype(int) >= 200].iloc[0]
    pt = village.geometry.representative_point()
    held = s.names()
    got = Locator({n: s.read(n) for n in LAYERS if n in held}).locate([pt.x], [pt.y])[0]
    assert got["worker"]["vacant"] is True
    assert got["worker"]["name"].endswith("网格员岗位（空缺）")
    assert got["worker"]["name"].startswith(got["community"]["name"])
