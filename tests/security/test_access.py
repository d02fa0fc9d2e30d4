"""Access control: every role × every route × inside and outside the jurisdiction."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from api.http import create_app
from tests.helpers import api_routes

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
    client = TestClient(create_app(store, anonymous_read=False))
    client.app.state.ctx.ready.set()  # as the warm-up at start leaves it (GET /ready)
    job = client.post(
        "/jobs/optimise",
        json={"type": "elderly_day_care", "k": 1, "generate": 5},
        headers={"X-API-Key": keys["admin"]},
    ).json()["job"]
    return {
        "store": store,
        "keys": keys,
        "job": job,
        "client": client,
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


def _call(env, role, method, url, headers=None, **kw):
    headers = dict(headers or {})
    if role == "bad key":
        headers["X-API-Key"] = "gg_not_a_key"
    elif role != "anonymous":
        headers["X-API-Key"] = env["keys"][role]
    return env["client"].request(method, url, headers=headers, **kw)


# expected status per role: anonymous, bad key, viewer, supervisor, supervisor_other,
# planner (scope = IN), admin. Every route of the app is here (test_every_route_is_in_the_matrix).
ALL = (401, 401, 200, 200, 200, 200, 200)
SUPERVISOR = (401, 401, 403, 200, 200, 200, 200)
MATRIX = [
    ("GET", "/", None, ALL),
    ("GET", "/conformance", None, ALL),
    ("GET", "/ready", None, ALL),
    ("GET", "/collections", None, ALL),
    ("GET", "/collections/grids", None, ALL),
    ("GET", "/collections/workers", None, SUPERVISOR),
    ("GET", "/collections/grids/queryables", None, ALL),
    ("GET", "/collections/buildings/queryables", None, SUPERVISOR),
    ("GET", "/collections/grids/items", None, ALL),
    ("GET", "/collections/workers/items", None, SUPERVISOR),
    ("GET", "/collections/grids/items/{grid}", "in", ALL),
    ("GET", "/collections/buildings/items/{building}", "in", (401, 401, 403, 200, 404, 200, 200)),
    ("GET", "/collections/buildings/items/{building}", "out", (401, 401, 403, 404, 200, 404, 200)),
    ("GET", "/locate?lon={lon}&lat={lat}", "in", (401, 401, 200, 200, 403, 200, 200)),
    ("GET", "/locate?lon={lon}&lat={lat}", "out", (401, 401, 200, 403, 200, 403, 200)),
    ("POST", "/locate", "in", (401, 401, 200, 200, 403, 200, 200)),
    ("POST", "/locate", "out", (401, 401, 200, 403, 200, 403, 200)),
    ("PUT", "/assignments/{grid}", "in", (401, 401, 403, 200, 404, 200, 200)),
    ("PUT", "/assignments/{grid}", "out", (401, 401, 403, 404, 200, 404, 200)),
    ("GET", "/analysis/coverage?level=grid", None, ALL),
    ("GET", "/analysis/staffing", None, ALL),
    ("POST", "/sites/test", "in", (401, 401, 403, 403, 403, 200, 200)),
    ("POST", "/sites/test", "out", (401, 401, 403, 403, 403, 403, 200)),
    ("POST", "/jobs/optimise", "in", (401, 401, 403, 403, 403, 202, 202)),
    ("POST", "/jobs/optimise", "out", (401, 401, 403, 403, 403, 403, 202)),
    ("GET", "/jobs/{job}", None, (401, 401, 404, 404, 404, 404, 200)),
    ("POST", "/jobs/regrid", None, (401, 401, 403, 403, 403, 403, 202)),
    ("GET", "/scenarios", None, (401, 401, 403, 403, 403, 200, 200)),
    ("GET", "/scenarios/示例", None, (401, 401, 403, 403, 403, 200, 200)),
    ("POST", "/scenarios", "in", (401, 401, 403, 403, 403, 201, 201)),
    ("POST", "/scenarios", "out", (401, 401, 403, 403, 403, 403, 201)),
    # a scenario of the caller's own ({scenario}), of another planner ({theirs}), and one
    # sited outside the planner's jurisdiction ({outside}, by an admin)
    ("PUT", "/scenarios/{scenario}", "in", (401, 401, 403, 403, 403, 200, 200)),
    ("DELETE", "/scenarios/{scenario}", None, (401, 401, 403, 403, 403, 200, 200)),
    ("PUT", "/scenarios/{theirs}", "in", (401, 401, 403, 403, 403, 403, 200)),
    ("DELETE", "/scenarios/{theirs}", None, (401, 401, 403, 403, 403, 403, 200)),
    ("GET", "/scenarios/{theirs}", None, (401, 401, 403, 403, 403, 200, 200)),
    ("GET", "/scenarios/{outside}", None, (401, 401, 403, 403, 403, 404, 200)),
    ("PUT", "/scenarios/{outside}", "in", (401, 401, 403, 403, 403, 404, 200)),
    ("DELETE", "/scenarios/{outside}", None, (401, 401, 403, 403, 403, 404, 200)),
    ("GET", "/maps/scenario/{outside}", None, (401, 401, 403, 403, 403, 404, 200)),
    ("GET", "/maps/coverage", None, ALL),
    (
        "GET",
        "/maps/coverage?type=kindergarten&street=" + IN,
        None,
        (401, 401, 200, 200, 403, 200, 200),
    ),
    (
        "GET",
        "/maps/coverage?type=kindergarten&street=" + OUT,
        None,
        (401, 401, 200, 403, 200, 403, 200),
    ),
    ("GET", "/maps/staffing", None, ALL),
    ("GET", "/maps/staffing?street=" + IN, None, (401, 401, 200, 200, 403, 200, 200)),
    ("GET", "/maps/staffing?street=" + OUT, None, (401, 401, 200, 403, 200, 403, 200)),
    ("GET", "/maps/scenario/示例", None, (401, 401, 403, 403, 403, 200, 200)),
    ("GET", "/maps/orders", None, SUPERVISOR),
    ("GET", "/maps/city", None, SUPERVISOR),
    ("GET", "/maps/city?street=" + IN, None, (401, 401, 403, 200, 403, 200, 200)),
    # a county (a province's drill-down): not for a street's supervisors
    ("GET", "/maps/city?district=370405", None, (401, 401, 403, 403, 403, 403, 200)),
    ("GET", "/maps/orders?street=" + IN, None, (401, 401, 403, 200, 403, 200, 200)),
    ("POST", "/orders", "in", (401, 401, 403, 201, 403, 201, 201)),
    ("POST", "/orders", "out", (401, 401, 403, 403, 201, 403, 201)),
    ("GET", "/orders", None, SUPERVISOR),
    ("GET", "/orders/changes", None, SUPERVISOR),
    ("GET", "/orders/{order}", None, (401, 401, 403, 200, 404, 200, 200)),
    ("POST", "/orders/{order}/transitions", None, (401, 401, 403, 200, 404, 200, 200)),
    ("GET", "/tileMatrixSets", None, ALL),
    ("GET", "/tileMatrixSets/WebMercatorQuad", None, ALL),
    ("GET", "/collections/grids/tiles", None, ALL),
    ("GET", "/collections/buildings/tiles", None, SUPERVISOR),
    ("GET", "/collections/grids/tiles/WebMercatorQuad", None, ALL),
    # the tile of the building inside the jurisdiction: grids are for all (as their
    # features); buildings: another street's supervisor gets an empty tile (its filter
    # leaves nothing), a viewer none at all
    ("GET", "/collections/grids/tiles/WebMercatorQuad/{tz}/{tx}/{ty}", "in", ALL),
    (
        "GET",
        "/collections/buildings/tiles/WebMercatorQuad/{tz}/{tx}/{ty}",
        "in",
        (401, 401, 403, 200, 204, 200, 200),
    ),
    # edits (OGC API – Features Part 4): a facility's jurisdiction is where it lies; a
    # building of another street is not there for its supervisor ({facility}: a fresh one)
    ("POST", "/collections/facilities/items", "in", (401, 401, 403, 201, 403, 201, 201)),
    ("POST", "/collections/facilities/items", "out", (401, 401, 403, 403, 201, 403, 201)),
    (
        "PATCH",
        "/collections/facilities/items/{facility}",
        "in",
        (401, 401, 403, 200, 403, 200, 200),
    ),
    (
        "DELETE",
        "/collections/facilities/items/{facility}",
        "in",
        (401, 401, 403, 204, 403, 204, 204),
    ),
    ("PUT", "/collections/buildings/items/{building}", "in", (401, 401, 403, 200, 404, 200, 200)),
    ("PUT", "/collections/buildings/items/{building}", "out", (401, 401, 403, 404, 200, 404, 200)),
    ("GET", "/stale", None, SUPERVISOR),
]


def _tile(lon, lat, z=17):
    import morecantile

    t = morecantile.tms.get("WebMercatorQuad").tile(lon, lat, z)
    return {"tz": t.z, "tx": t.x, "ty": t.y}


def _body(env, role, method, url, side):
    lon, lat = env["point"][side]
    site = {"lon": lon, "lat": lat}
    if url.startswith("/assignments"):
        return {"worker_id": env["worker"][side]}
    if url == "/locate":
        return {"points": [[lon, lat]]}
    if url == "/sites/test":
        return {"type": "elderly_day_care", "sites": [site]}
    if url == "/jobs/optimise":
        return {
            "type": "elderly_day_care",
            "k": 1,
            "generate": 5,
            "within": IN if side == "in" else OUT,
        }
    if url.startswith("/scenarios") and method in ("POST", "PUT"):
        return _scenario(env, f"m-{role}-{side}", side)
    if url == "/orders":
        return {"source": "hotline", "type": "repair", "description": "测试", **site}
    if url.endswith("/transitions"):
        return {"action": "escalate", "version": 1}
    if url == "/collections/facilities/items":
        return _new_facility(env, side)
    if "/collections/facilities/items/" in url and method == "PATCH":
        return {"properties": {"name": "改名"}}
    if "/collections/buildings/items/" in url and method == "PUT":
        r = _call(env, "admin", "GET", url)  # the building as it is: a replace that keeps it
        return {k: v for k, v in r.json().items() if k != "links"}
    return None


def _new_facility(env, side):
    lon, lat = env["point"][side]
    return {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "properties": {"name": "测试设施", "type": "kindergarten", "status": "planned"}}  # fmt: skip


def _scenario(env, name, side):
    lon, lat = env["point"][side]
    return {"name": name, "type": "elderly_day_care", "sites": [{"lon": lon, "lat": lat}]}


@pytest.mark.parametrize("method, url, where, expected", MATRIX)
@pytest.mark.parametrize("role", ROLES)
def test_matrix(env, role, method, url, where, expected):
    side = where or "in"
    lon, lat = env["point"][side]
    tag = f"{role}-{method}-{abs(hash(url)) % 10**6}"
    if "{scenario}" in url:  # a scenario of the role's own (an admin's, for roles that cannot)
        maker = role if role in ("planner", "admin") else "admin"
        _call(env, maker, "POST", "/scenarios", json=_scenario(env, f"own-{tag}", "in"))
    if "{theirs}" in url:  # another planner's, inside the planner's jurisdiction
        _call(env, "planner2", "POST", "/scenarios", json=_scenario(env, f"theirs-{tag}", "in"))
    if "{outside}" in url:  # sited outside the planner's jurisdiction
        r = _call(env, "admin", "POST", "/scenarios", json=_scenario(env, f"out-{tag}", "out"))
        assert r.status_code == 201, r.text
    order = None
    if "{order}" in url:  # a fresh order inside the jurisdiction
        r = _call(
            env, "admin", "POST", "/orders", json=_body(env, "admin", "POST", "/orders", "in")
        )
        assert r.status_code == 201, r.text
        order = r.json()["id"]
    facility = None
    if "{facility}" in url:  # a fresh facility inside the jurisdiction
        r = _call(
            env, "admin", "POST", "/collections/facilities/items", json=_new_facility(env, "in")
        )
        assert r.status_code == 201, r.text
        facility = r.json()["id"]
    url = url.format(
        building=env["building"][side], grid=env["grid"][side], lon=lon, lat=lat,
        job=env["job"], scenario=f"own-{tag}", theirs=f"theirs-{tag}", outside=f"out-{tag}",
        order=order, facility=facility, **_tile(lon, lat),
    )  # fmt: skip
    body = _body(env, role, method, url, side)
    extra = (
        {"headers": {"If-Match": "*"}}
        if method in ("PUT", "PATCH", "DELETE") and "/items/" in url
        else {}
    )
    r = _call(env, role, method, url, **({"json": body} if body is not None else {}), **extra)
    assert r.status_code == expected[ROLES.index(role)], (role, method, url, r.text)
    if r.status_code >= 400:
        assert r.headers["content-type"] == "application/problem+json"
    if r.status_code == 401:
        assert "X-API-Key" in r.headers["www-authenticate"]


def test_every_route_is_in_the_matrix(env):
    routes = api_routes(env["client"].app)
    assert len(routes) >= 20  # the walk sees the app's routes (an empty walk would pass)
    covered = set()
    for method, url, _, _ in MATRIX:
        path = url.split("?")[0]
        for m, p in routes:
            pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", p) + "$"
            if m == method and re.match(pattern, path.replace("{", "x").replace("}", "x")):
                covered.add((m, p))
    assert routes - covered == set()


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
    seen = set(store.read("audit")["id"]) if store.has("audit") else set()
    r = _call(env, "supervisor", "PUT", f"/assignments/{grid}", json={"worker_id": worker})
    assert r.status_code == 200
    log = store.read("audit")
    new = log[~log["id"].isin(seen)]  # the rows this edit wrote (a table has no row order)
    assert list(zip(new["action"], new["target"], new["who"], strict=True)) == [
        ("assignments.update", grid, "supervisor")
    ]
    stored = store.read("api_keys")
    assert not set(keys.values()) & set(stored["hash"]) and all(
        len(h) == 64 for h in stored["hash"]
    )
    r = _call(env, "supervisor", "PUT", f"/assignments/{grid}", json={"worker_id": "nobody"})
    assert r.status_code == 400 and "no worker 'nobody'" in r.json()["detail"]
