"""The command line as a user runs it: demo, import, export, info, and bad input."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from gis.export import write as export
from gis.store import GeoPackageStore
from tests.helpers import assert_layer_equal

INPUTS = ("communities", "buildings", "facilities", "workers", "roads")


def run(*args, cwd=None, env=None):
    return subprocess.run(
        [sys.executable, "-c", "from api.cli import main; main()", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def files(town, tmp_path):
    out = {}
    for name in INPUTS:
        ext = ".csv" if name in ("buildings", "workers") else ".geojson"
        out[name] = tmp_path / f"in_{name}{ext}"
        export(town[name], out[name], layer=name)
    return out


def test_import_export_round_trip(files, town, tmp_path):
    store = tmp_path / "s.gpkg"
    args = [a for name, p in files.items() for a in (f"--{name}", str(p))]
    r = run("import", *args, "--store", str(store), "--json")
    assert r.returncode == 0, r.stderr
    counts = json.loads(r.stdout)["imported"]
    assert counts["buildings"] == len(town["buildings"]) and counts["streets"] == 1
    for name, fmt in [
        ("buildings", ".xlsx"),
        ("communities", ".gpkg"),
        ("facilities", ".geojson"),
        ("workers", ".csv"),
    ]:
        out = tmp_path / f"out_{name}{fmt}"
        r = run("export", name, "--store", str(store), "--out", str(out))
        assert r.returncode == 0, r.stderr
        assert out.exists() and "wrote" in r.stdout
    again = tmp_path / "again.gpkg"
    r = run(
        "import",
        "--communities",
        str(tmp_path / "out_communities.gpkg"),
        "--buildings",
        str(tmp_path / "out_buildings.xlsx"),
        "--workers",
        str(tmp_path / "out_workers.csv"),
        "--facilities",
        str(tmp_path / "out_facilities.geojson"),
        "--store",
        str(again),
    )
    assert r.returncode == 0, r.stderr
    for name in ("communities", "buildings", "workers", "facilities"):
        assert_layer_equal(GeoPackageStore(again).read(name), town[name], tolerance=1e-9)
    r = run("info", "--store", str(again), "--json")
    layers = {row["layer"]: row["rows"] for row in json.loads(r.stdout)["layers"]}
    assert layers["buildings"] == len(town["buildings"])


def test_bad_import_is_one_clear_error_and_changes_nothing(files, tmp_path):
    store = tmp_path / "s.gpkg"
    assert (
        run("import", "--communities", str(files["communities"]), "--store", str(store)).returncode
        == 0
    )
    before = _sha(store)
    bad = tmp_path / "bad.csv"
    text = files["buildings"].read_text(encoding="utf-8-sig").splitlines()
    header = text[0].split(",")
    row = text[1].split(",")
    row[header.index("households")] = "-5"
    bad.write_text("\n".join([text[0], ",".join(row), *text[2:]]), encoding="utf-8")
    r = run(
        "import",
        "--buildings",
        str(bad),
        "--facilities",
        str(files["facilities"]),
        "--store",
        str(store),
    )
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert "line 2" in r.stderr and "households is -5" in r.stderr
    assert _sha(store) == before
    r = run(
        "import", "--buildings", str(files["buildings"]), "--crs", "mars", "--store", str(store)
    )
    assert r.returncode == 2 and "unknown coordinate system 'mars'" in r.stderr
    assert _sha(store) == before
    r = run("export", "grids", "--store", str(store), "--out", str(tmp_path / "g.geojson"))
    assert r.returncode != 0 and "holds no layer 'grids'" in r.stderr


def test_gcj02_flag(files, town, tmp_path):
    from gis import crs

    b = town["buildings"]
    table = b.drop(columns="geometry").assign(lon=b.geometry.x, lat=b.geometry.y)
    table["lon"], table["lat"] = crs.wgs84_to_gcj02(table["lon"], table["lat"])
    path = tmp_path / "amap.csv"
    table.to_csv(path, index=False)
    store = tmp_path / "s.gpkg"
    # the communities file is in WGS84: --crs gcj02 for every file shifts them too, and the
    # buildings then lie hundreds of metres outside the communities they name: refused
    r = run("import", "--communities", str(files["communities"]), "--buildings", str(path),
            "--crs", "gcj02", "--store", str(store))  # fmt: skip
    assert r.returncode == 2 and "outside community" in r.stderr and not store.exists()
    r = run("import", "--communities", str(files["communities"]), "--buildings", str(path),
            "--crs", "buildings=gcj02", "--store", str(store))  # fmt: skip
    assert r.returncode == 0, r.stderr
    got = GeoPackageStore(store).read("buildings")
    assert_layer_equal(got.drop(columns="geometry"), b.drop(columns="geometry"))
    assert (got.to_crs(4548).distance(b.to_crs(4548)) < 0.5).all()


def test_demo_builds_the_whole_city(tmp_path):
    r = run("demo", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    total = out["districts"][-1]
    assert total["区县"] == "合计"
    assert total["街道/乡镇"] == 66 and total["城市社区"] == 258 and total["行政村"] == 2211
    assert abs(total["户数"] - 1_258_194) <= 6291
    store = GeoPackageStore(tmp_path / "out" / "zaozhuang.gpkg")
    assert store.layers()["communities"] == 2469
    r = run("info", cwd=tmp_path)
    assert r.returncode == 0 and "buildings" in r.stdout and "楼栋" in r.stdout


def test_help_explains_units_and_defaults():
    r = run("import", "--help")
    assert r.returncode == 0 and "gcj02" in r.stdout and "lon, lat" in r.stdout
