"""Reading user files: formats, encodings, coordinate systems and every bad-input case."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import geopandas as gpd
import pyogrio
import shapely
from pyproj import Geod

from gis import crs, io
from gis.errors import InputFileError, ValidationError
from gis.export import to_table
from gis.export import write as export
from tests.helpers import assert_layer_equal

GEOD = Geod(ellps="WGS84")
INPUTS = ("communities", "buildings", "facilities", "workers", "roads")


def _input_files(town, tmp_path, fmt):
    """Write the town's input layers as files of one format (tables for workers)."""
    files = {}
    for name in INPUTS:
        df = town[name]
        suffix = fmt if isinstance(df, gpd.GeoDataFrame) else ".csv"
        if fmt in (".csv", ".xlsx") and name in ("communities", "roads"):
            suffix = ".gpkg"  # polygons and lines come as vector files
        files[name] = tmp_path / f"{name}{suffix}"
        export(df, files[name], layer=name)
    return files


@pytest.mark.parametrize("fmt", [".geojson", ".gpkg", ".shp", ".csv", ".xlsx"])
def test_files_round_trip(town, tmp_path, fmt):
    files = _input_files(town, tmp_path, fmt)
    got = io.load(files, facility_types=set(town["facility_types"]["code"]))
    tol = 1e-9 if fmt != ".gpkg" else 0
    for name in INPUTS:
        assert_layer_equal(got[name], town[name], tolerance=tol)
    assert_layer_equal(
        got["streets"][["code", "kind", "district_code"]],
        town["streets"][["code", "kind", "district_code"]],
    )


def test_missing_parent_columns_are_derived(town, tmp_path):
    comms = town["communities"][["code", "name", "geometry"]]
    path = tmp_path / "c.geojson"
    comms.to_file(path, engine="pyogrio")
    b = town["buildings"].drop(columns=["community_code"])
    bpath = tmp_path / "b.csv"
    to_table(b).to_csv(bpath, index=False)
    got = io.load({"communities": path, "buildings": bpath})
    assert got["communities"]["kind"].tolist() == town["communities"]["kind"].tolist()
    assert (got["communities"]["street_code"] == "370405001").all()
    assert (
        got["buildings"]["community_code"].tolist() == town["buildings"]["community_code"].tolist()
    )
    assert got["districts"]["code"].tolist() == ["370405"]


def test_gcj02_import_lands_within_half_a_metre(town, tmp_path):
    b = town["buildings"]
    table = to_table(b)
    table["lon"], table["lat"] = crs.wgs84_to_gcj02(table["lon"], table["lat"])
    path = tmp_path / "amap.csv"
    table.to_csv(path, index=False)
    got = io.load({"buildings": path}, crs="gcj02", communities=town["communities"])["buildings"]
    _, _, dist = GEOD.inv(got.geometry.x, got.geometry.y, b.geometry.x, b.geometry.y)
    assert np.max(dist) < 0.5
    # read as WGS84 the same file would land hundreds of metres off
    _, _, off = GEOD.inv(table["lon"], table["lat"], b.geometry.x, b.geometry.y)
    assert np.min(off) > 300


def test_bd09_workers_homes_converted(town, tmp_path):
    w = town["workers"].head(5).copy()
    lon, lat = crs.wgs84_to_bd09(w["home_lon"], w["home_lat"])
    path = tmp_path / "w.xlsx"
    w.assign(home_lon=lon, home_lat=lat).to_excel(path, index=False)
    got = io.load({"workers": path}, crs="bd09", communities=town["communities"])["workers"]
    _, _, dist = GEOD.inv(got["home_lon"], got["home_lat"], w["home_lon"], w["home_lat"])
    assert np.max(dist) < 0.5


@pytest.mark.parametrize("cpg", [True, False])
def test_gbk_shapefile(town, tmp_path, cpg):
    comms = town["communities"][["code", "name", "geometry"]]
    path = tmp_path / "gbk.shp"
    pyogrio.write_dataframe(comms, path, encoding="GBK")
    if not cpg:
        path.with_suffix(".cpg").unlink()
    # the raw DBF really is GBK
    assert comms["name"].iloc[0].encode("gbk") in path.with_suffix(".dbf").read_bytes()
    got = io.read_communities(path)
    assert got["name"].tolist() == comms["name"].tolist()


def test_every_bad_building_is_reported_with_its_row(town, tmp_path):
    b = to_table(town["buildings"].head(8)).drop(columns=["community_code"]).astype(object)
    b.loc[0, "households"] = "-3"
    b.loc[1, "households"] = "many"
    b.loc[2, "lon"] = "2.35"  # Paris
    b.loc[2, "lat"] = "48.85"
    b.loc[3, "id"] = b.loc[4, "id"]
    b.loc[5, "lon"] = "117.9"  # in China, outside every community
    b.loc[5, "lat"] = "34.3"
    b.loc[6, "residents"] = "2.5"
    path = tmp_path / "bad.csv"
    b.to_csv(path, index=False)
    with pytest.raises(ValidationError) as exc:
        io.load({"buildings": path}, communities=town["communities"])
    msg = str(exc.value)
    assert "line 2 " in msg and "households is -3 (must be ≥ 0)" in msg
    assert "line 3 " in msg and "households 'many' is not a whole number" in msg
    assert "line 4 " in msg and "lie outside China" in msg
    assert f"duplicate id '{b.loc[4, 'id']}'" in msg
    assert "line 7 " in msg and "outside every community" in msg
    assert "line 8 " in msg and "residents '2.5' is not a whole number" in msg
    assert len(exc.value.problems) == 6, "\n".join(exc.value.problems)


def test_bad_communities_are_all_reported(town, tmp_path):
    c = town["communities"][["code", "name", "geometry"]].copy()
    c.loc[0, "code"] = "37040500101"  # 11 digits
    c.loc[1, "code"] = c.loc[2, "code"]
    bowtie = shapely.Polygon([(117, 35), (117.01, 35.01), (117.01, 35), (117, 35.01)])
    c.loc[3, "geometry"] = bowtie  # invalid but fixable
    c.loc[4, "geometry"] = shapely.LineString([(117, 35), (117.1, 35.1)])
    path = tmp_path / "c.gpkg"
    c.to_file(path, engine="pyogrio")
    with pytest.raises(ValidationError) as exc:
        io.load({"communities": path})
    msg = str(exc.value)
    assert "code '37040500101' is not a 12-digit code" in msg
    assert f"duplicate code '{c.loc[2, 'code']}'" in msg
    assert "geometry is a LineString, expected MultiPolygon" in msg
    # the bow-tie could be repaired, into two triangles: said, and refused unless accepted
    assert "feature 4 (code" in msg and "Self-intersection" in msg and "2 polygons" in msg
    assert "give --repair" in msg
    assert len(exc.value.problems) == 4
    c = c.drop(index=[0, 1, 4])
    c.to_file(path, engine="pyogrio")
    repairs: list[str] = []
    out = io.load({"communities": path}, repair=True, repairs=repairs)
    assert len(repairs) == 1 and "feature 2" in repairs[0] and "2 polygons" in repairs[0]
    assert len(shapely.get_parts(out["communities"].geometry.iloc[1])) == 2


def test_unrepairable_geometry(tmp_path):
    c = gpd.GeoDataFrame(
        {"code": ["370405001001"], "name": ["x"]},
        geometry=[shapely.Polygon([(117, 35), (117.01, 35), (117.02, 35)])],  # zero area
        crs="EPSG:4326",
    )
    path = tmp_path / "c.geojson"
    c.to_file(path, engine="pyogrio")
    with pytest.raises(ValidationError, match="invalid and cannot be made valid"):
        io.load({"communities": path})


def test_missing_columns_and_bad_workers(town, tmp_path):
    w = town["workers"].head(3).drop(columns=["education"]).copy()
    w.loc[0, "post"] = "主任"
    w.loc[1, "hired"] = "yesterday"
    w.loc[2, "community_code"] = "370405999001"
    path = tmp_path / "w.csv"
    w.to_csv(path, index=False)
    with pytest.raises(ValidationError) as exc:
        io.load({"workers": path}, communities=town["communities"])
    msg = str(exc.value)
    assert "missing column: education" in msg
    assert "post '主任' is not one of 正职, 副职, 其他" in msg
    assert "hired 'yesterday' is not a date" in msg
    assert "community_code 370405999001 is not a known community" in msg


def test_unknown_facility_type(town, tmp_path):
    f = town["facilities"].head(2).copy()
    f.loc[0, "type"] = "karaoke"
    path = tmp_path / "f.geojson"
    f.to_file(path, engine="pyogrio")
    with pytest.raises(ValidationError, match="type 'karaoke' is not in the facility catalogue"):
        io.load({"facilities": path}, facility_types=set(town["facility_types"]["code"]))


def test_unreadable_files(tmp_path):
    with pytest.raises(ValidationError, match="no such file"):
        io.load({"communities": tmp_path / "none.geojson"})
    bad = tmp_path / "bad.geojson"
    bad.write_text("{not json")
    with pytest.raises(ValidationError, match="cannot read it"):
        io.load({"communities": bad})
    txt = tmp_path / "x.txt"
    txt.write_text("")
    with pytest.raises(InputFileError, match="unsupported format .txt"):
        io.read_file(txt)
    with pytest.raises(ValidationError, match="unknown input layer 'grids'"):
        io.load({"grids": bad})


def test_gb18030_csv(town, tmp_path):
    w = town["workers"].head(3)
    path = tmp_path / "w.csv"
    w.to_csv(path, index=False, encoding="gb18030")
    got = io.load({"workers": path}, communities=town["communities"])["workers"]
    assert got["name"].tolist() == w["name"].tolist()


def test_roads_multilines_are_split(tmp_path):
    r = gpd.GeoDataFrame(
        {"highway": ["primary"]},
        geometry=[shapely.MultiLineString([[(117, 35), (117.1, 35)], [(117.2, 35), (117.3, 35)]])],
        crs="EPSG:4326",
    )
    path = tmp_path / "r.geojson"
    r.to_file(path, engine="pyogrio")
    got = io.load({"roads": path})["roads"]
    assert got["id"].tolist() == ["r1-1", "r1-2"] and (got["kind"] == "primary").all()


def test_projected_input_is_reprojected(town, tmp_path):
    c = town["communities"]
    path = tmp_path / "c4548.gpkg"
    c.to_crs(4548).to_file(path, engine="pyogrio")
    got = io.load({"communities": path})["communities"]
    assert np.allclose(got.to_crs(4548).area, c.to_crs(4548).area, rtol=1e-9)
    assert isinstance(pd.DataFrame(got), pd.DataFrame)
