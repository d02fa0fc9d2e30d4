"""What a viewer or an anonymous client receives never holds a household count below a
grid: maps (their data blocks) and JSON answers, checked feature by feature."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

import shapely

from api.http import create_app
from api.settings import Settings
from gis import access
from tests.helpers import map_document

STREET = "370405001"
COUNTS = {"households", "served", "uncovered", "load", "residents", "elderly", "children"}
MAPS = [
    "/maps/coverage",
    f"/maps/coverage?type=kindergarten&street={STREET}",
    f"/maps/coverage?type=elderly_day_care&community={STREET}001",
    "/maps/staffing",
    f"/maps/staffing?street={STREET}",
]


@pytest.fixture(scope="module")
def clients(map_store):
    keys = {r: access.create_key(map_store, r)[0] for r in ("viewer", "supervisor")}
    app = create_app(map_store, anonymous_read=True)
    out = {}
    for who in ("anonymous", "viewer", "supervisor"):
        c = TestClient(app)
        if who != "anonymous":
            c.headers["X-API-Key"] = keys[who]
        out[who] = c
    return out


def _below_a_grid(doc: dict) -> list[tuple[str, dict]]:
    """Features carrying a count without the code of a grid or larger unit."""
    out = []
    for layer in doc["layers"]:
        for f in layer["data"]["features"]:
            p = f["properties"]
            counts = {
                k
                for k in p
                if (k in COUNTS or k[:1] == "n" and k[1:].isdigit()) and p[k] not in (None, 0)
            }
            code = str(p.get("code") or "")
            if counts and not (code.isdigit() and len(code) in (6, 9, 12, 15)):
                out.append((layer["name"], p))
    return out


@pytest.mark.parametrize("who", ["anonymous", "viewer"])
def test_no_viewer_map_carries_counts_below_a_grid(clients, who):
    for url in MAPS:
        r = clients[who].get(url)
        assert r.status_code == 200, (url, r.text[:200])
        assert _below_a_grid(map_document(r.text)) == [], url


def test_the_check_sees_what_supervisors_get(clients):
    """A supervisor's street map has building-level cells: the check above would catch them."""
    doc = map_document(clients["supervisor"].get(MAPS[1]).text)
    assert _below_a_grid(doc), "the supervisor's map should hold 100 m cells"


@pytest.mark.parametrize("who", ["anonymous", "viewer"])
def test_no_viewer_json_carries_counts_below_a_grid(clients, map_frames, who):
    c = clients[who]
    for cid in [x["id"] for x in c.get("/collections").json()["collections"]]:
        feats = c.get(f"/collections/{cid}/items?limit=10000").json()["features"]
        for f in feats:
            p = f["properties"]
            counts = {k for k in p if k in COUNTS and p[k] not in (None, 0)}
            assert not counts or cid in ("grids", "communities", "streets", "districts"), (cid, p)
    assert c.get("/collections/buildings/items").status_code == 403
    pts = [[g.x, g.y] for g in map_frames["buildings"].geometry.iloc[:50]]
    for a in c.post("/locate", json={"points": pts}).json()["results"]:
        assert not (COUNTS & set(a)) and "phone" not in (a.get("worker") or {})
    for level in ("grid", "community", "street"):
        rows = c.get(f"/analysis/coverage?level={level}").json()["rows"]
        assert rows and all(len(r["code"]) >= 9 for r in rows)


def test_viewer_cells_hold_at_least_k_buildings(map_store, map_frames):
    """With privacy_min_buildings = k, a viewer's map shows 100 m cells, each of k or more."""
    k = 3
    c = TestClient(
        create_app(map_store, settings=Settings(anonymous_read=True, privacy_min_buildings=k))
    )
    doc = map_document(c.get(MAPS[1]).text)
    cells = [
        f
        for layer in doc["layers"]
        if layer["name"].startswith("未覆盖户数密度")
        for f in layer["data"]["features"]
    ]
    assert cells
    b = map_frames["buildings"]
    tree = shapely.STRtree(b.geometry.values)
    for f in cells:
        box = shapely.geometry.shape(f["geometry"]).buffer(-1e-7)
        assert len(tree.query(box, predicate="intersects")) >= k
    assert not [p for layer in doc["layers"] if layer["name"].startswith("覆盖缺口")
                for p in (x["properties"] for x in layer["data"]["features"]) if "served" in p]  # fmt: skip
