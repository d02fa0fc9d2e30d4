"""``gridgis coverage`` as a user runs it."""

from __future__ import annotations

import json

import pyogrio

from gis.export import write as export
from gis.store import GeoPackageStore
from tests.api.test_cli import run


def test_file_mode_writes_three_layers(town, tmp_path):
    files = {}
    for name in ("buildings", "facilities", "communities", "roads"):
        files[name] = tmp_path / f"{name}.geojson"
        export(town[name], files[name], layer=name)
    out = tmp_path / "cov.gpkg"
    args = [a for name, p in files.items() for a in (f"--{name}", str(p))]
    r = run(
        "coverage",
        *args,
        "--type",
        "community_service_station",
        "--type",
        "culture_room",
        "--out",
        str(out),
        "--json",
    )
    assert r.returncode == 0, r.stderr
    payload = json.loads(r.stdout)
    assert payload["mode"] == "network" and {row["类型"] for row in payload["city"]} == {
        "community_service_station",
        "culture_room",
    }
    assert sorted(pyogrio.list_layers(out)[:, 0].tolist()) == ["buildings", "coverage", "gaps"]
    b = pyogrio.read_dataframe(out, layer="buildings")
    assert b["id"].tolist() == town["buildings"]["id"].tolist()
    assert {"dist_culture_room", "covered_culture_room"} <= set(b.columns)
    assert (b["covered_culture_room"] == (b["dist_culture_room"] <= 500)).all()


def test_store_mode_and_bad_type(town, tmp_path):
    s = GeoPackageStore(tmp_path / "s.gpkg")
    s.write({k: town[k] for k in ("communities", "buildings", "facilities", "facility_types")})
    r = run("coverage", "--store", str(s.path), "--mode", "line", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["mode"] == "line"
    t = s.read("coverage")
    assert set(t["level"]) == {"community", "street", "district", "city"}
    assert len(s.read("gaps")) == json.loads(r.stdout)["gaps"]
    r = run("coverage", "--store", str(s.path), "--type", "spa")
    assert r.returncode == 2 and "unknown facility type 'spa'" in r.stderr


def test_one_type_keeps_the_others(town, tmp_path):
    s = GeoPackageStore(tmp_path / "s.gpkg")
    s.write({k: town[k] for k in ("communities", "buildings", "facilities", "facility_types")})
    assert run("coverage", "--store", str(s.path), "--mode", "line").returncode == 0
    before = s.read("coverage")
    r = run("coverage", "--store", str(s.path), "--mode", "line", "--type", "culture_room")
    assert r.returncode == 0, r.stderr
    after = s.read("coverage")
    assert set(after["type"]) == set(before["type"]) and len(after) == len(before)
    key = ["type", "level", "code"]
    assert (
        after.sort_values(key)
        .reset_index(drop=True)
        .equals(before.sort_values(key).reset_index(drop=True))
    )
