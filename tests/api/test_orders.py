"""Work orders over HTTP, on both stores: the loop, idempotency, stale versions, roles,
the change feed, deadlines and bad input."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from api.http.app import create_app
from gis import access
from gis.access import Principal
from gis.store.base import TIMEZONE
from gis.workflows import orders as wo


@pytest.fixture
def served_orders(city):
    keys = {
        name: access.create_key(city, role, scope, name)[0]
        for name, role, scope in (
            ("hotline", "dispatcher", None),
            ("other_system", "dispatcher", None),
            ("supervisor", "supervisor", "370405001"),
            ("supervisor_other", "supervisor", "370405100"),
            ("viewer", "viewer", None),
        )
    }
    return city, TestClient(create_app(city)), keys


#: a key made outside the server is honoured once its cache looks again (every 0.5 s)
KEYS_SEEN = 0.6


def _h(keys, name):
    return {"X-API-Key": keys[name]}


def _building(store, street="370405001"):
    b = store.read("buildings")
    b = b[b["community_code"].str.startswith(street)].sort_values("id")
    return b.iloc[len(b) // 2]


def _new(store, ext="12345-0001", **kw):
    b = _building(store)
    return {"source": "hotline", "external_id": ext, "type": "repair", "description": "楼道灯坏了",
            "lon": b.geometry.x, "lat": b.geometry.y, "reporter": "王女士 13800000000", **kw}  # fmt: skip


def test_the_loop_from_the_hotline_to_the_worker_and_back(served_orders):
    store, c, keys = served_orders
    r = c.post("/orders", json=_new(store), headers=_h(keys, "hotline"))
    assert r.status_code == 201, r.text
    o = r.json()["properties"]
    assert o["state"] == "dispatched" and o["grid_code"].startswith(o["community_code"])
    assert "reporter" not in o  # the calling system does not get the contact back
    worker_key = access.create_key(store, "worker", worker=o["worker_id"])[0]
    wk = {"X-API-Key": worker_key}
    time.sleep(KEYS_SEEN)
    got = c.get(f"/orders/{o['id']}", headers=wk)
    assert got.status_code == 200, got.text
    assert got.json()["properties"]["reporter"].startswith("王")
    steps = [(wk, "accept", {}), (wk, "handle", {"note": "已更换灯泡"}),
             (_h(keys, "supervisor"), "verify", {}), (_h(keys, "hotline"), "close", {"satisfaction": 5})]  # fmt: skip
    v = 1
    for head, action, extra in steps:
        r = c.post(
            f"/orders/{o['id']}/transitions",
            json={"action": action, "version": v, **extra},
            headers=head,
        )
        assert r.status_code == 200, (action, r.text)
        v = r.json()["version"]
    full = c.get(f"/orders/{o['id']}", headers=_h(keys, "supervisor")).json()["properties"]
    assert full["state"] == "closed" and full["satisfaction"] == 5
    assert [e["action"] for e in full["history"]] == [
        "report",
        "dispatch",
        "accept",
        "handle",
        "verify",
        "close",
    ]
    # every step has its audit row
    audit = store.read("audit")
    assert (audit["target"] == o["id"]).sum() == 5


def test_a_stale_version_is_409_and_changes_nothing(served_orders):
    store, c, keys = served_orders
    o = c.post("/orders", json=_new(store), headers=_h(keys, "hotline")).json()["properties"]
    sup = _h(keys, "supervisor")
    assert (
        c.post(
            f"/orders/{o['id']}/transitions", json={"action": "accept", "version": 1}, headers=sup
        ).status_code
        == 200
    )
    r = c.post(
        f"/orders/{o['id']}/transitions", json={"action": "escalate", "version": 1}, headers=sup
    )
    assert r.status_code == 409 and r.headers["content-type"].startswith("application/problem+json")
    after = c.get(f"/orders/{o['id']}", headers=sup).json()["properties"]
    assert after["state"] == "accepted" and after["version"] == 2 and len(after["history"]) == 3


def test_roles_and_jurisdictions(served_orders):
    store, c, keys = served_orders
    o = c.post("/orders", json=_new(store), headers=_h(keys, "hotline")).json()["properties"]
    url = f"/orders/{o['id']}"
    # another calling system, a supervisor elsewhere, a viewer: the order is not theirs
    assert c.get(url, headers=_h(keys, "other_system")).status_code == 404
    assert c.get(url, headers=_h(keys, "supervisor_other")).status_code == 404
    assert c.get("/orders", headers=_h(keys, "viewer")).status_code == 403
    assert c.post("/orders", json=_new(store, "x2"), headers=_h(keys, "viewer")).status_code == 403
    # the dispatcher may not accept; a transition from the wrong state is 409
    t = f"{url}/transitions"
    assert (
        c.post(t, json={"action": "accept", "version": 1}, headers=_h(keys, "hotline")).status_code
        == 403
    )
    assert (
        c.post(
            t, json={"action": "verify", "version": 1}, headers=_h(keys, "supervisor")
        ).status_code
        == 409
    )
    # another worker of the same community sees nothing of it
    others = store.read("workers", where={"community_code": o["community_code"]})
    other = next(w for w in others["id"] if w != o["worker_id"])
    ok = {"X-API-Key": access.create_key(store, "worker", worker=other)[0]}
    time.sleep(KEYS_SEEN)
    assert c.get(url, headers=ok).status_code == 404
    assert c.get("/orders", headers=ok).json()["numberMatched"] == 0
    listing = c.get("/orders", headers=_h(keys, "hotline")).json()
    assert listing["numberMatched"] == 1 and "reporter" not in listing["features"][0]["properties"]


def test_the_same_external_id_from_eight_clients_at_once_is_one_order(served_orders):
    store, c, keys = served_orders
    body = _new(store, "12345-RETRY")
    barrier = threading.Barrier(8)

    def post(_):
        barrier.wait()
        return c.post("/orders", json=body, headers=_h(keys, "hotline"))

    with ThreadPoolExecutor(8) as ex:
        answers = list(ex.map(post, range(8)))
    assert sorted(r.status_code for r in answers) == [200] * 7 + [201]
    assert len({r.json()["id"] for r in answers}) == 1
    assert len(store.read("orders", where={"external_id": "12345-RETRY"})) == 1


def test_bad_input_is_one_clear_problem_and_nothing_is_written(served_orders):
    store, c, keys = served_orders
    h = _h(keys, "hotline")
    cases = [
        (_new(store, type="weather"), 400, "unknown category"),
        (_new(store, lon=10.0, lat=10.0), 400, "outside the city"),
        ({**_new(store), "lon": None, "lat": None, "building_id": "NOPE"}, 400, "no building"),
        (_new(store, attachments=["javascript:alert(1)"]), 400, "attachments"),
        (_new(store, crs="EPSG:9999"), 400, "not offered"),
    ]
    for body, status, text in cases:
        r = c.post("/orders", json=body, headers=h)
        assert r.status_code == status and text in r.text, (body, r.text)
    assert not store.has("orders") or len(store.read("orders")) == 0


def test_an_order_by_building_id_or_in_gcj02_lands_in_the_same_grid(served_orders):
    from gis import crs as gcrs

    store, c, keys = served_orders
    b = _building(store)
    by_id = c.post("/orders", json={**_new(store, "b1"), "lon": None, "lat": None, "building_id": b["id"]},
                   headers=_h(keys, "hotline")).json()["properties"]  # fmt: skip
    x, y = gcrs.transformer(gcrs.GCJ02, axis_order=False)(b.geometry.x, b.geometry.y)
    gcj = c.post("/orders", json=_new(store, "b2", lon=float(x), lat=float(y), crs="gcj02"),
                 headers=_h(keys, "hotline")).json()["properties"]  # fmt: skip
    assert by_id["grid_code"] == gcj["grid_code"] and by_id["building_id"] == b["id"]


#: orders created (and half of them moved) while a consumer polls the feed: 1,000 in the
#: suite; GRIDGIS_FEED_ORDERS=10000 for the issue's full figure (about 6 min on GPKG and
#: 13 on PostGIS on a 2-core machine)
FEED_ORDERS = int(os.environ.get("GRIDGIS_FEED_ORDERS", "1000"))


def test_a_consumer_polling_the_feed_sees_every_change_once_in_order(city):
    from gis.locate import LAYERS, Locator

    who = Principal("hotline", "dispatcher")
    sup = Principal("sup", "supervisor")
    f = city.read_many(LAYERS)
    loc = Locator(f)
    b = city.read("buildings").sort_values("id")
    pts = [(g.x, g.y) for g in b.geometry.values[:: max(1, len(b) // 500)]]
    seen: list[int] = []
    done = threading.Event()
    failed: list[BaseException] = []

    def consume():
        cursor = 0
        try:
            while True:
                finished = done.is_set()
                ev, cursor = wo.changes(city, sup, cursor, limit=500)
                seen.extend(e["seq"] for e in ev)
                if finished and not ev:
                    return
                if not ev:
                    time.sleep(0.02)  # a consumer polls; it does not spin
        except BaseException as exc:  # noqa: BLE001 - reported below
            failed.append(exc)

    t = threading.Thread(target=consume)
    t.start()
    ids = []
    for i in range(FEED_ORDERS):
        x, y = pts[i % len(pts)]
        o, _ = wo.create(city, who, {"source": "hotline", "external_id": f"F{i}", "type": "sanitation",
                                     "description": "垃圾", "lon": x, "lat": y}, locator=loc)  # fmt: skip
        ids.append(o["id"])
        if i % 2:
            wo.move(city, sup, ids[i // 2], "accept", version=1)
    done.set()
    t.join(120)
    assert not failed, failed
    total = 2 * len(ids) + len(ids) // 2
    assert seen == list(range(1, total + 1))  # each once, in order, none missed


def test_the_sweep_escalates_late_orders_once_with_a_controllable_clock(city):
    t0 = datetime(2026, 11, 2, 9, 0, tzinfo=TIMEZONE)
    who = Principal("hotline", "dispatcher")
    b = _building(city)
    o, _ = wo.create(city, who, {"source": "hotline", "external_id": "S1", "type": "repair", "description": "漏水",
                                 "lon": b.geometry.x, "lat": b.geometry.y}, clock=lambda: t0)  # fmt: skip
    assert wo.sweep(city, clock=lambda: t0 + timedelta(hours=1)) == []  # 2 h to accept
    assert wo.sweep(city, clock=lambda: t0 + timedelta(hours=3)) == [o["id"]]
    assert wo.sweep(city, clock=lambda: t0 + timedelta(hours=4)) == []  # once per stage
    after = wo.get(city, Principal("sup", "supervisor"), o["id"])
    assert after["level"] == "street" and after["version"] == 2
    assert after["history"][-1]["action"] == "auto_escalate"
    rows, _ = wo.listing(
        city, Principal("sup", "supervisor"), clock=lambda: t0 + timedelta(hours=5)
    )
    assert rows[0]["colour"] == "red"


def test_an_open_order_follows_its_grid_when_grids_are_redrawn(city):
    who = Principal("hotline", "dispatcher")
    b = _building(city)
    o, _ = wo.create(city, who, {"source": "hotline", "external_id": "R1", "type": "repair", "description": "漏水",
                                 "lon": b.geometry.x, "lat": b.geometry.y})  # fmt: skip
    grids = city.read("grids")
    old = o["grid_code"]
    new_code = old[:12] + "999"
    redrawn = grids.assign(code=grids["code"].where(grids["code"] != old, new_code))
    with city.transaction(lock=("grids", *wo.LOCK)) as tx:
        assert wo.reroute(tx, redrawn, "grids update") == 1
    after = wo.get(city, Principal("sup", "supervisor"), o["id"])
    assert after["grid_code"] == new_code and after["version"] == 2
    assert after["history"][-1]["action"] == "reroute" and old in after["history"][-1]["detail"]
    with city.transaction(lock=("grids", *wo.LOCK)) as tx:  # nothing left to move
        assert wo.reroute(tx, redrawn, "grids update") == 0


def test_the_first_orders_of_a_store_sent_at_once_are_all_kept(city):
    # the orders layer does not exist yet: eight writers may each want to make it
    who = Principal("hotline", "dispatcher")
    b = city.read("buildings").sort_values("id").head(8)
    barrier = threading.Barrier(8)

    def post(i):
        g = b.geometry.iloc[i]
        barrier.wait()
        return wo.create(city, who, {"source": "hotline", "external_id": f"N{i}", "type": "care",
                                     "description": "探访", "lon": g.x, "lat": g.y})[0]["id"]  # fmt: skip

    with ThreadPoolExecutor(8) as ex:
        ids = list(ex.map(post, range(8)))
    assert sorted(city.read("orders")["id"]) == sorted(ids)
    assert sorted(city.read("order_events")["seq"]) == list(range(1, 17))


def test_orders_are_filtered_with_cql2_and_a_bad_filter_is_400(served_orders):
    store, c, keys = served_orders
    head = _h(keys, "hotline")
    made = []
    for i, t in enumerate(("repair", "repair", "sanitation")):
        r = c.post("/orders", json=_new(store, f"CQL-{i}", type=t), headers=head)
        assert r.status_code == 201, r.text
        made.append(r.json()["properties"])
    grid = made[0]["grid_code"]

    def ids(flt):
        r = c.get("/orders", params={"filter": flt, "limit": 100}, headers=head)
        assert r.status_code == 200, r.text
        return sorted(f["id"] for f in r.json()["features"])

    assert ids("type = 'repair'") == sorted(o["id"] for o in made[:2])
    assert ids(f"type = 'sanitation' AND grid_code = '{grid}'") == [made[2]["id"]]
    assert ids("state IN ('closed', 'verified')") == []
    assert len(ids("state = 'dispatched' OR type = 'care'")) == 3
    # the reporter's contact is no search key; unknown properties and bad text are 400
    for bad in ("reporter LIKE '王%'", "colour = 'red'", "type = = 'x'", "version = 'one'"):
        r = c.get("/orders", params={"filter": bad}, headers=head)
        assert r.status_code == 400, (bad, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
