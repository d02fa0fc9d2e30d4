"""OGC API – Features Part 4 on both stores: the conformance walk (create → read → replace
→ update → delete), 412 on a stale ETag, 428 without one, 403 outside the jurisdiction,
bad edits refused with nothing written, concurrent editors holding one tag (one wins),
and the derived results an edit makes stale — listed, then cleared by recomputing them."""

from __future__ import annotations

import json
import threading

import pytest
from fastapi.testclient import TestClient

from api.http.app import create_app
from gis import access
from gis.crs import transformer
from gis.workflows import coverage as wcoverage
from gis.workflows.base import system

IN, OUT = "370405001", "370405100"
LOC = "/collections/{}/items/{}"


@pytest.fixture
def env(city):
    keys = {
        name: access.create_key(city, role, scope, name)[0]
        for name, role, scope in (
            ("viewer", "viewer", None),
            ("supervisor", "supervisor", IN),
            ("admin", "admin", None),
        )
    }
    client = TestClient(create_app(city, anonymous_read=False))
    return city, client, {k: {"X-API-Key": v} for k, v in keys.items()}


def _in(city, street):
    b = city.read("buildings")
    return b[b["community_code"].str.startswith(street)].sort_values("id").iloc[0]


def _facility(city, street, **props):
    b = _in(city, street)
    typ = city.read("facilities")["type"].iloc[0]
    return {
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [b.geometry.x, b.geometry.y]},
        "properties": {"name": "新建幼儿园", "type": typ, "status": "planned", **props},
    }


def _count(city):
    return {n: len(city.read(n)) for n in ("facilities", "buildings", "workers", "audit")}


def test_create_read_replace_update_delete(env):
    city, c, h = env
    audit0 = len(city.read("audit"))
    feat = _facility(city, IN)
    r = c.post("/collections/facilities/items", json=feat, headers=h["supervisor"])
    assert r.status_code == 201, r.text
    loc, tag = r.headers["location"], r.headers["etag"]
    fid = r.json()["id"]
    assert loc.endswith(LOC.format("facilities", fid))
    typ = feat["properties"]["type"]
    assert f"coverage:{typ}" in r.headers["stale-results"]
    # read: the same feature, the same content tag
    g = c.get(loc, headers=h["supervisor"])
    assert g.status_code == 200 and g.json()["properties"]["name"] == "新建幼儿园"
    assert g.headers["etag"].split(".")[0] == tag.split(".")[0]
    assert (
        c.get(loc, headers={**h["supervisor"], "If-None-Match": g.headers["etag"]}).status_code
        == 304
    )
    stored = city.read("facilities").set_index("id").loc[fid]
    assert stored["status"] == "planned" and not stored["synthetic"]
    # replace
    doc = {k: v for k, v in g.json().items() if k != "links"}
    doc["properties"]["name"] = "社区幼儿园"
    r = c.put(loc, json=doc, headers={**h["supervisor"], "If-Match": g.headers["etag"]})
    assert r.status_code == 200, r.text
    assert r.json()["properties"]["name"] == "社区幼儿园"
    tag2 = r.headers["etag"]
    assert tag2.split(".")[0] != tag.split(".")[0]
    # the old tag is stale now: 412, nothing written
    r = c.patch(
        loc, json={"properties": {"area_m2": 800}}, headers={**h["supervisor"], "If-Match": tag}
    )
    assert r.status_code == 412 and r.headers["content-type"] == "application/problem+json"
    assert city.read("facilities").set_index("id").loc[fid, "area_m2"] != 800
    # update (merge patch), with the current tag; a patch as application/merge-patch+json
    r = c.patch(loc, content=json.dumps({"properties": {"area_m2": 800}}),
                headers={**h["supervisor"], "If-Match": tag2,
                         "Content-Type": "application/merge-patch+json"})  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["properties"] == {**doc["properties"], "area_m2": 800.0}
    assert city.read("facilities").set_index("id").loc[fid, "area_m2"] == 800
    # delete: without a tag 428, with a stale one 412, with the current one 204
    assert c.delete(loc, headers=h["supervisor"]).status_code == 428
    assert c.delete(loc, headers={**h["supervisor"], "If-Match": tag2}).status_code == 412
    r = c.delete(loc, headers={**h["supervisor"], "If-Match": r.headers["etag"]})
    assert r.status_code == 204
    assert c.get(loc, headers=h["supervisor"]).status_code == 404
    assert fid not in set(city.read("facilities")["id"])
    # each step audited, with what changed
    audit = city.read("audit").iloc[audit0:]
    steps = audit[audit["target"] == f"facilities/{fid}"]
    assert list(steps["action"]) == [
        f"facilities.{s}" for s in ("create", "replace", "update", "delete")
    ]
    assert json.loads(steps["detail"].iloc[2]) == {"area_m2": [None, 800.0]}
    # the coverage of that type is listed as stale
    st = {e["result"]: e for e in c.get("/stale", headers=h["supervisor"]).json()["stale"]}
    assert st[f"coverage:{typ}"]["edits"] == 4


def test_an_edit_changes_the_etags_of_its_collection(env):
    city, c, h = env
    items = c.get("/collections/buildings/items?limit=5", headers=h["admin"])
    b = _in(city, IN)
    g = c.get(LOC.format("buildings", b["id"]), headers=h["admin"])
    r = c.patch(LOC.format("buildings", b["id"]), json={"properties": {"households": int(b["households"]) + 7}},
                headers={**h["admin"], "If-Match": g.headers["etag"]})  # fmt: skip
    assert r.status_code == 200, r.text
    again = c.get("/collections/buildings/items?limit=5",
                  headers={**h["admin"], "If-None-Match": items.headers["etag"]})  # fmt: skip
    assert again.status_code == 200 and again.headers["etag"] != items.headers["etag"]
    assert (
        int(city.read("buildings", where={"id": b["id"]})["households"].iloc[0])
        == b["households"] + 7
    )


def test_outside_the_jurisdiction_or_the_role(env):
    city, c, h = env
    before = _count(city)
    # a facility in another street: 403; one of the supervisor's own moved out: 403
    r = c.post("/collections/facilities/items", json=_facility(city, OUT), headers=h["supervisor"])
    assert r.status_code == 403, r.text
    r = c.post("/collections/facilities/items", json=_facility(city, IN), headers=h["supervisor"])
    fid, tag = r.json()["id"], r.headers["etag"]
    out = _facility(city, OUT)["geometry"]
    r = c.patch(LOC.format("facilities", fid), json={"geometry": out},
                headers={**h["supervisor"], "If-Match": tag})  # fmt: skip
    assert r.status_code == 403
    # a building of another street is not even there for this supervisor (as GET says)
    bo = _in(city, OUT)
    assert c.get(LOC.format("buildings", bo["id"]), headers=h["supervisor"]).status_code == 404
    r = c.patch(LOC.format("buildings", bo["id"]), json={"properties": {"households": 1}},
                headers={**h["supervisor"], "If-Match": "*"})  # fmt: skip
    assert r.status_code == 404
    new = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [bo.geometry.x, bo.geometry.y]},
           "properties": {"community_code": bo["community_code"], "households": 10, "residents": 25}}  # fmt: skip
    assert (
        c.post("/collections/buildings/items", json=new, headers=h["supervisor"]).status_code == 403
    )
    # a viewer edits nothing
    r = c.post("/collections/facilities/items", json=_facility(city, IN), headers=h["viewer"])
    assert r.status_code == 403
    after = _count(city)
    assert after["facilities"] == before["facilities"] + 1  # the one created inside
    assert after["buildings"] == before["buildings"]
    assert (
        int(city.read("buildings", where={"id": bo["id"]})["households"].iloc[0])
        == bo["households"]
    )


def test_bad_edits_are_one_clear_4xx_and_write_nothing(env):
    city, c, h = env
    admin = h["admin"]
    b = _in(city, IN)
    # a facility a saved scenario names (a planned site taken from 示例)
    site = json.loads(city.read("scenarios").set_index("id").loc["示例", "sites"])[0]
    named = _facility(city, IN, id=site["id"])
    r = c.post("/collections/facilities/items", json=named, headers=admin)
    assert r.status_code == 201, r.text
    named_tag = r.headers["etag"]
    before = _count(city)
    point = {"type": "Point", "coordinates": [b.geometry.x, b.geometry.y]}
    building = {"type": "Feature", "geometry": point,
                "properties": {"community_code": b["community_code"], "households": 10, "residents": 25}}  # fmt: skip
    bad = [
        ("POST", "/collections/buildings/items",
         {**building, "properties": {**building["properties"], "community_code": "3704050010XX"}}, {}, 400),
        ("POST", "/collections/buildings/items",
         {**building, "properties": {**building["properties"], "households": -5}}, {}, 400),
        ("POST", "/collections/buildings/items",
         {**building, "geometry": {"type": "Point", "coordinates": [100.0, 30.0]}}, {}, 400),
        ("POST", "/collections/facilities/items",
         {**_facility(city, IN), "geometry": {"type": "Point", "coordinates": [117.0, 36.5]}}, {}, 400),
        ("POST", "/collections/facilities/items", _facility(city, IN, type="casino"), {}, 400),
        ("POST", "/collections/facilities/items", _facility(city, IN, colour="red"), {}, 400),
        ("POST", "/collections/facilities/items", _facility(city, IN, synthetic=True), {}, 400),
        ("POST", "/collections/facilities/items", {"type": "FeatureCollection"}, {}, 400),
        ("POST", "/collections/facilities/items", _facility(city, IN, id=site["id"]), {}, 409),
        ("POST", "/collections/grids/items", _facility(city, IN), {}, 405),
        ("POST", "/collections/nowhere/items", _facility(city, IN), {}, 404),
        ("PATCH", LOC.format("buildings", b["id"]), {"properties": {"households": 3}}, {}, 428),
        ("PATCH", LOC.format("buildings", b["id"]), {"properties": {"households": 3}},
         {"If-Match": '"0000.1111"'}, 412),
        ("PATCH", LOC.format("buildings", b["id"]), {"properties": {"households": -1}}, {"If-Match": "*"}, 400),
        ("PATCH", LOC.format("buildings", b["id"]), {"properties": {}}, {"If-Match": "*"}, 400),
        ("PUT", LOC.format("buildings", "no-such"), building, {"If-Match": "*"}, 404),
        ("DELETE", LOC.format("facilities", site["id"]), None, {"If-Match": named_tag}, 409),
    ]  # fmt: skip
    for method, url, body, extra, status in bad:
        r = c.request(method, url, json=body, headers={**admin, **extra})
        assert r.status_code == status, (method, url, body, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert len(r.json()["detail"]) > 10
    r = c.post("/collections/facilities/items", content=b"{not json", headers=admin)
    assert r.status_code == 400
    r = c.post("/collections/facilities/items", content=b"<x/>",
               headers={**admin, "Content-Type": "application/xml"})  # fmt: skip
    assert r.status_code == 415
    assert _count(city) == before  # nothing written, not even an audit row


def test_content_crs(env):
    city, c, h = env
    feat = _facility(city, IN)
    lon, lat = feat["geometry"]["coordinates"]
    x, y = transformer("http://www.opengis.net/def/crs/EPSG/0/4490")(lon, lat)  # lat first
    feat["geometry"]["coordinates"] = [float(x), float(y)]
    r = c.post("/collections/facilities/items", json=feat,
               headers={**h["admin"], "Content-Crs": "<http://www.opengis.net/def/crs/EPSG/0/4490>"})  # fmt: skip
    assert r.status_code == 201, r.text
    got = r.json()["geometry"]["coordinates"]
    assert abs(got[0] - lon) < 1e-7 and abs(got[1] - lat) < 1e-7


def test_two_editors_with_one_tag_one_wins(env):
    city, c, h = env
    b = _in(city, IN)
    url = LOC.format("buildings", b["id"])
    tag = c.get(url, headers=h["admin"]).headers["etag"]
    results: list[int] = []
    lock = threading.Lock()

    def editor(n: int) -> None:
        with TestClient(c.app) as mine:
            r = mine.patch(url, json={"properties": {"households": 100 + n}},
                           headers={**h["admin"], "If-Match": tag})  # fmt: skip
        with lock:
            results.append(r.status_code)

    threads = [threading.Thread(target=editor, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [200] + [412] * 5, results
    stored = int(city.read("buildings", where={"id": b["id"]})["households"].iloc[0])
    audit = city.read("audit")
    steps = audit[audit["target"] == f"buildings/{b['id']}"]
    assert len(steps) == 1  # the winner's, and its value is the one stored
    assert json.loads(steps["detail"].iloc[0])["households"][1] == stored


def test_stale_results_are_listed_until_computed_again(env):
    city, c, h = env
    b = _in(city, IN)
    url = LOC.format("buildings", b["id"])
    tag = c.get(url, headers=h["admin"]).headers["etag"]
    r = c.patch(url, json={"properties": {"households": int(b["households"]) + 30}},
                headers={**h["admin"], "If-Match": tag})  # fmt: skip
    types = set(city.read("coverage")["type"])
    marked = set(r.headers["stale-results"].split(", "))
    assert marked == {f"coverage:{t}" for t in types} | {"grids", "quotas"}
    # a worker's name is no input of any result: nothing stale
    w = city.read("workers").sort_values("id").iloc[0]
    wt = c.get(LOC.format("workers", w["id"]), headers=h["admin"])
    assert wt.status_code == 200 and wt.json()["geometry"] is None
    assert "home_lon" not in wt.json()["properties"]
    r = c.patch(LOC.format("workers", w["id"]), json={"properties": {"name": "王五"}},
                headers={**h["admin"], "If-Match": wt.headers["etag"]})  # fmt: skip
    assert r.status_code == 200 and "stale-results" not in r.headers
    assert city.read("workers", where={"id": w["id"]})["home_lon"].iloc[0] == w["home_lon"] or (
        w["home_lon"] != w["home_lon"]
    )  # hidden, and kept
    one = sorted(types)[0]
    wcoverage.run(city, system("test"), types=[one])
    listed = {e["result"] for e in c.get("/stale", headers=h["supervisor"]).json()["stale"]}
    assert f"coverage:{one}" not in listed and marked - {f"coverage:{one}"} <= listed
    assert c.get("/stale", headers=h["viewer"]).status_code == 403
