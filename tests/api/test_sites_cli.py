"""``gridgis sites`` and ``gridgis scenarios`` as a planner runs them."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from gis.export import write as export
from gis.store import GeoPackageStore
from tests.api.test_cli import _sha, run

TYPE = "elderly_day_care"


@pytest.fixture
def store(town, tmp_path):
    s = GeoPackageStore(tmp_path / "s.gpkg")
    s.write(
        {k: town[k] for k in ("communities", "buildings", "facilities", "facility_types", "roads")}
    )
    return s


def _site(town, i=0):
    g = town["buildings"].geometry.iloc[i]
    return f"{g.x:.7f},{g.y:.7f}"


def test_test_optimise_and_scenarios(town, store):
    s = str(store.path)
    r = run(
        "sites",
        "test",
        "--store",
        s,
        "-t",
        TYPE,
        "--at",
        _site(town),
        "--at",
        _site(town, 50),
        "--area",
        "300",
        "--save",
        "two sites",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    ranking = json.loads(r.stdout)["ranking"]
    assert [x["rank"] for x in ranking] == [1, 2]
    assert ranking[0]["newly_covered"] >= ranking[1]["newly_covered"]
    r = run("sites", "optimise", "--store", s, "-t", TYPE, "--k", "2", "--save", "best 2", "--json")
    assert r.returncode == 0, r.stderr
    sol = json.loads(r.stdout)
    assert len(sol["chosen"]) == 2 and sol["gap"] <= 0.01
    assert {"chosen", "objective", "bound", "gap"} <= set(sol)
    assert sol["objective"] == pytest.approx(sol["newly_covered"]) and sol["objective"] > 0
    saved = store.read("scenarios").set_index("id")
    assert list(saved.index) == ["two sites", "best 2"]
    assert json.loads(saved.loc["best 2", "results"])["chosen"] == sol["chosen"]
    assert saved.loc["best 2", "author"] and saved.loc["best 2", "created"][:2] == "20"
    r = run("scenarios", "list", "--store", s, "--json")
    assert [x["方案"] for x in json.loads(r.stdout)] == ["two sites", "best 2"]
    r = run("scenarios", "compare", "two sites", "best 2", "--store", s)
    assert r.returncode == 0 and "方案对比" in r.stdout
    # a name in use is refused and nothing changes
    before = _sha(store.path)
    r = run("sites", "optimise", "--store", s, "-t", TYPE, "--k", "1", "--save", "best 2")
    assert r.returncode == 2 and "exists" in r.stderr and _sha(store.path) == before
    r = run("scenarios", "delete", "two sites", "--store", s)
    assert r.returncode == 0
    assert store.read("scenarios")["id"].tolist() == ["best 2"]
    log = store.read("audit")
    assert log["action"].tolist() == ["scenarios.create", "scenarios.create", "scenarios.delete"]
    r = run("scenarios", "show", "two sites", "--store", s)
    assert r.returncode == 2 and "no scenario named 'two sites'" in r.stderr


def test_bad_requests_exit_2_and_change_nothing(town, store, tmp_path):
    s = str(store.path)
    cands = tmp_path / "c.csv"
    pd.DataFrame(
        {
            "id": ["a", "b"],
            "lon": [town["buildings"].geometry.x.iloc[i] for i in (0, 9)],
            "lat": [town["buildings"].geometry.y.iloc[i] for i in (0, 9)],
        }
    ).to_csv(cands, index=False)
    before = _sha(store.path)
    cases = [
        (["sites", "test", "-t", TYPE, "--at", "116.4,39.9"], "lies outside the city"),
        (["sites", "test", "-t", "spa", "--at", _site(town)], "unknown facility type 'spa'"),
        (
            ["sites", "optimise", "-t", TYPE, "--k", "3", "--candidates", str(cands)],
            "k = 3 is more than the 2 candidate sites",
        ),
        (["sites", "test", "-t", TYPE, "--at", _site(town), "--area", "-5"], "is negative"),
        (["sites", "test", "-t", TYPE, "--at", "117.5;34.8"], "expected LON,LAT"),
    ]
    for args, message in cases:
        r = run(*args, "--store", s, "--save", "x")
        assert r.returncode == 2, (args, r.stderr)
        assert message in r.stderr and r.stderr.count("\n") <= 3, r.stderr
    assert _sha(store.path) == before


def test_file_mode(town, tmp_path):
    files = {}
    for name in ("buildings", "facilities", "communities"):
        files[name] = tmp_path / f"{name}.geojson"
        export(town[name], files[name], layer=name)
    args = [a for name, p in files.items() for a in (f"--{name}", str(p))]
    r = run("sites", "optimise", *args, "-t", TYPE, "--k", "1", "--objective", "lscp", "--json")
    assert r.returncode == 0, r.stderr
    sol = json.loads(r.stdout)
    assert sol["objective"] == len(sol["chosen"]) >= 1 and sol["gap"] == 0
