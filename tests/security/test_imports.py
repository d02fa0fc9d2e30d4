"""Imports that must be refused are refused: one error, exit 2, the rows named, the store
byte for byte as it was."""

from __future__ import annotations

import json

import pytest

import shapely

from gis.export import write as export
from gis.store import GeoPackageStore
from tests.api.test_cli import _sha, run


@pytest.fixture
def city(town, tmp_path):
    """A store holding the town, and its files."""
    files = {}
    for name in ("communities", "buildings", "workers"):
        files[name] = tmp_path / f"{name}{'.csv' if name != 'communities' else '.geojson'}"
        export(town[name], files[name], layer=name)
    store = tmp_path / "s.gpkg"
    r = run(
        "import", *[a for n, p in files.items() for a in (f"--{n}", str(p))], "--store", str(store)
    )
    assert r.returncode == 0, r.stderr
    return store, files


def _refused(store, *args, says: list[str]) -> None:
    before = _sha(store)
    r = run("import", *args, "--store", str(store))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    for text in says:
        assert text in r.stderr, (text, r.stderr[-800:])
    assert _sha(store) == before


def _csv_lines(path) -> list[str]:
    return path.read_text(encoding="utf-8-sig").splitlines()


def test_a_building_far_from_the_community_it_names(city, tmp_path):
    store, files = city
    lines = _csv_lines(files["buildings"])
    head = lines[0].split(",")
    row = lines[3].split(",")
    row[head.index("lon")], row[head.index("lat")] = "116.397", "39.909"  # Beijing
    bad = tmp_path / "b.csv"
    bad.write_text("\n".join([lines[0], *lines[1:3], ",".join(row), *lines[4:]]), encoding="utf-8")
    _refused(
        store,
        "--buildings",
        str(bad),
        says=["line 4 ", "km outside community", row[head.index("community_code")]],
    )


def test_a_number_cut_off_at_the_end_of_the_file(city, tmp_path):
    store, files = city
    text = files["buildings"].read_text(encoding="utf-8-sig").rstrip("\n")
    cut = text[: text.rindex(",") + 1] + text[text.rindex(",") + 1 :].split(".")[0] + "."
    bad = tmp_path / "cut.csv"
    bad.write_text(cut, encoding="utf-8")
    n = len(cut.splitlines())
    _refused(store, "--buildings", str(bad), says=[f"line {n} ", "not numbers (a cut-off line?)"])


def test_a_file_with_no_rows_is_not_an_empty_layer_unless_asked(city, tmp_path):
    store, files = city
    empty = tmp_path / "empty.csv"
    empty.write_text(_csv_lines(files["workers"])[0] + "\n", encoding="utf-8")
    _refused(store, "--workers", str(empty), says=["has no rows", "--replace-with-empty"])
    r = run(
        "import", "--workers", str(empty), "--replace-with-empty", "--store", str(store), "--json"
    )
    assert r.returncode == 0, r.stderr
    assert (
        json.loads(r.stdout)["imported"]["workers"] == 0
        and len(GeoPackageStore(store).read("workers")) == 0
    )


def test_communities_that_would_orphan_buildings(city, town, tmp_path):
    store, _ = city
    fewer = tmp_path / "fewer.geojson"
    comms = town["communities"]
    export(comms.iloc[1:], fewer, layer="communities")
    lost = int((town["buildings"]["community_code"] == comms["code"].iloc[0]).sum())
    _refused(store, "--communities", str(fewer),
             says=[f"{lost:,} buildings name 1 communities this import removes", comms["code"].iloc[0]])  # fmt: skip


def test_a_self_intersecting_community_is_reported_not_silently_repaired(city, town, tmp_path):
    store, _ = city
    c = town["communities"].copy()
    x0, y0, x1, y1 = c.geometry.iloc[2].bounds
    c.loc[2, "geometry"] = shapely.Polygon([(x0, y0), (x1, y1), (x1, y0), (x0, y1)])  # a bow-tie
    bad = tmp_path / "bowtie.geojson"
    export(c, bad, layer="communities")
    _refused(store, "--communities", str(bad), "--buildings", str(tmp_path / "buildings.csv"),
             says=["feature 3 (code", "Self-intersection", "2 polygons", "--repair"])  # fmt: skip
    r = run("import", "--communities", str(bad), "--buildings", str(tmp_path / "buildings.csv"), "--repair",
            "--tolerance", "100000", "--store", str(store), "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    repairs = json.loads(r.stdout)["repairs"]
    assert len(repairs) == 1 and "feature 3" in repairs[0] and "2 polygons" in repairs[0]
