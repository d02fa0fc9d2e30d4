"""Access control: every role × every route × inside and outside the jurisdiction."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.app import create_app

IN, OUT = "370405001", "370405100"  # the supervisors' street, and another one
ROLES = ("anonymous", "bad key", "viewer", "supervisor", "supervisor_other", "planner", "admin")


@pytest.fixture(scope="module")
def env(served, map_frames):
    store, keys = served
    b = map_frames["buildings"]
    a = map_frames["assignments"]
    w = map_frames["workers"].set_index("id")
    grid_in = a[a["grid_code"].str.startswith(IN)].iloc[0]
    grid_out = a[a["grid_code"].str.startswith(OUT)].iloc[0]
    same = map_frames["workers"]
    other_worker = same[
        (same["community_code"] == grid_in["grid_code"][:12]) & (same["id"] != grid_in["worker_id"])
    ]
    pick = lambda street: b[b["community_code"].str.startswith(street)].iloc[0]  # noqa: E731
    bi, bo = pick(IN), pick(OUT)
    return {
        "store": store,
        "keys": keys,
        "client": TestClient(create_app(store, anonymous_read=False)),
        "anon": TestClient(create_app(store, anonymous_read=True)),
        "building": {"in": bi["id"], "out": bo["id"]},
        "point": {"in": (bi.geometry.x, bi.geometry.y), "out": (bo.geometry.x, bo.geometry.y)},
        "grid": {"in": grid_in["grid_code"], "out": grid_out["grid_code"]},
        "worker": {
            "in": other_worker["id"].iloc[0] if len(other_worker) else grid_in["worker_id"],
            "out": grid_out["worker_id"],
        },
        "phone_known": bool(w["phone"].notna().any()),
    }


def _call(env, role, method, url, **kw):
    headers = {}
    if role == "bad key":
        headers["X-API-Key"] = "gg_not_a_key"
    elif role != "anonymous":
        headers["X-API-Key"] = env["keys"][role]
    return env["client"].request(method, url, headers=headers, **kw)


# expected status per role: anonymous, bad key, viewer, supervisor, supervisor_other,
# planner (scope = IN), admin
MATRIX = [
    ("GET", "/collections/grids/items", None, (401, 401, 200, 200, 200, 200, 200)),
    ("GET", "/collections/workers/items", None, (401, 401, 403, 200, 200, 200, 200)),
    ("GET", "/collections/buildings/items/{building}", "in", (401, 401, 403, 200, 404, 200, 200)),
    ("GET", "/collections/buildings/items/{building}", "out", (401, 401, 403, 404, 200, 404, 200)),
    ("GET", "/locate?lon={lon}&lat={lat}", "in", (401, 401, 200, 200, 403, 200, 200)),
    ("GET", "/locate?lon={lon}&lat={lat}", "out", (401, 401, 200, 403, 200, 403, 200)),
    ("PUT", "/assignments/{grid}", "in", (401, 401, 403, 200, 404, 200, 200)),
    ("PUT", "/assignments/{grid}", "out", (401, 401, 403, 404, 200, 404, 200)),
    ("GET", "/maps/scenario/示例", None, (401, 401, 403, 403, 403, 200, 200)),
    ("GET", "/maps/staffing?street=" + IN, None, (401, 401, 200, 200, 200, 200, 200)),
]


@pytest.mark.parametrize("method, url, where, expected", MATRIX)
@pytest.mark.parametrize("role", ROLES)
def test_matrix(env, role, method, url, where, expected):
    side = where or "in"
    lon, lat = env["point"][side]
    url = url.format(building=env["building"][side], grid=env["grid"][side], lon=lon, lat=lat)
    body = {"json": {"worker_id": env["worker"][side]}} if method == "PUT" else {}
    r = _call(env, role, method, url, **body)
    assert r.status_code == expected[ROLES.index(role)], (role, url, r.text)
    if r.status_code >= 400:
        assert r.headers["content-type"] == "application/problem+json"


def test_scoped_lists_hold_only_the_jurisdiction(env):
    r = _call(env, "supervisor", "GET", "/collections/workers/items?limit=10000")
    codes = {f["properties"]["community_code"] for f in r.json()["features"]}
    assert codes and all(c.startswith(IN) for c in codes)
    assert all("home_lon" not in f["properties"] for f in r.json()["features"])
    r = _call(
        env, "supervisor", "GET", f"/collections/buildings/items?community_code={OUT}001&limit=5"
    )
    assert r.status_code == 200 and r.json()["numberMatched"] == 0


def test_what_a_viewer_never_sees(env):
    lon, lat = env["point"]["in"]
    v = _call(env, "viewer", "GET", f"/locate?lon={lon}&lat={lat}").json()
    s = _call(env, "supervisor", "GET", f"/locate?lon={lon}&lat={lat}").json()
    assert v["grid"]["code"] == s["grid"]["code"] and v["grid"]["code"].startswith(IN)
    if s["worker"] is not None:
        assert "phone" not in v["worker"] and v["worker"]["id"] == s["worker"]["id"]
        assert "phone" in s["worker"]
    gv = _call(env, "viewer", "GET", "/collections/gaps/items?limit=3").json()["features"]
    gs = _call(env, "supervisor", "GET", "/collections/gaps/items?limit=3").json()["features"]
    assert all("served" not in f["properties"] for f in gv)
    assert all("served" in f["properties"] for f in gs)
    ids = [c["id"] for c in _call(env, "viewer", "GET", "/collections").json()["collections"]]
    assert "buildings" not in ids and "workers" not in ids


def test_anonymous_read_is_a_setting(env):
    r = env["anon"].get("/collections/grids/items?limit=1")
    assert r.status_code == 200
    assert env["anon"].get("/collections/workers/items").status_code == 403
    assert env["client"].get("/collections/grids/items").status_code == 401


def test_writes_are_audited_and_keys_stored_hashed(env):
    store, keys = env["store"], env["keys"]
    grid, worker = env["grid"]["in"], env["worker"]["in"]
    r = _call(env, "supervisor", "PUT", f"/assignments/{grid}", json={"worker_id": worker})
    assert r.status_code == 200
    log = store.read("audit")
    assert ((log["action"] == "assignments.update") & (log["target"] == grid)).any()
    assert log[log["target"] == grid]["who"].iloc[-1] == "supervisor"
    stored = store.read("api_keys")
    assert not set(keys.values()) & set(stored["hash"]) and all(
        len(h) == 64 for h in stored["hash"]
    )
    r = _call(env, "supervisor", "PUT", f"/assignments/{grid}", json={"worker_id": "nobody"})
    assert r.status_code == 400 and "no worker 'nobody'" in r.json()["detail"]
