"""Scenarios keep who made them and who changed them last; only they (or an admin) change
them, and a key sees only those sited inside its jurisdiction."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.http import create_app
from gis import access
from gis.store import GeoPackageStore

IN, OUT = "370405001", "370405100"


def test_owner_and_last_editor(map_frames, tmp_path):
    s = GeoPackageStore(tmp_path / "s.gpkg")
    s.write(map_frames)
    keys = {n: access.create_key(s, r, sc, n)[0] for n, r, sc in
            (("甲", "planner", IN), ("乙", "planner", IN), ("丙", "planner", OUT), ("admin", "admin", None))}  # fmt: skip
    c = TestClient(create_app(s))
    b = map_frames["buildings"]
    here = b[b["community_code"].str.startswith(IN)].geometry.iloc[0]
    there = b[b["community_code"].str.startswith(OUT)].geometry.iloc[0]
    body = {"name": "新站", "type": "elderly_day_care", "sites": [{"lon": here.x, "lat": here.y}]}
    assert c.post("/scenarios", json=body, headers={"X-API-Key": keys["甲"]}).status_code == 201
    # another planner of the same street sees it but may not change it
    assert c.get("/scenarios/新站", headers={"X-API-Key": keys["乙"]}).status_code == 200
    r = c.put("/scenarios/新站", json=body, headers={"X-API-Key": keys["乙"]})
    assert r.status_code == 403 and "甲" in r.json()["detail"]
    assert c.delete("/scenarios/新站", headers={"X-API-Key": keys["乙"]}).status_code == 403
    # a planner of another street does not see it at all
    assert c.get("/scenarios/新站", headers={"X-API-Key": keys["丙"]}).status_code == 404
    assert "新站" not in [
        x["id"] for x in c.get("/scenarios", headers={"X-API-Key": keys["丙"]}).json()["scenarios"]
    ]
    # an admin's change keeps the author and records the editor
    moved = {**body, "sites": [{"lon": here.x + 0.0005, "lat": here.y}]}
    assert (
        c.put("/scenarios/新站", json=moved, headers={"X-API-Key": keys["admin"]}).status_code
        == 200
    )
    got = c.get("/scenarios/新站", headers={"X-API-Key": keys["甲"]}).json()
    assert got["author"] == "甲" and got["editor"] == "admin" and got["edited"] >= got["created"]
    # a site outside the caller's jurisdiction is refused, nothing is saved
    out = {**body, "name": "越界", "sites": [{"lon": there.x, "lat": there.y}]}
    assert c.post("/scenarios", json=out, headers={"X-API-Key": keys["甲"]}).status_code == 403
    assert "越界" not in set(s.read("scenarios")["id"])
    log = s.read("audit")
    assert {"scenarios.create", "scenarios.update"} <= set(log[log["target"] == "新站"]["action"])
