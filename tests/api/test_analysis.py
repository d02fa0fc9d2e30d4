"""Analysis routes: tables, site tests, scenarios CRUD, jobs with progress."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from api.http import create_app
from gis import access
from gis.store import GeoPackageStore

IN = "370405001"


@pytest.fixture(scope="module")
def env(map_frames, tmp_path_factory):
    store = GeoPackageStore(tmp_path_factory.mktemp("analysis") / "city.gpkg")
    store.write(map_frames)
    keys = {r: access.create_key(store, r, s)[0] for r, s in
            (("viewer", None), ("planner", IN), ("admin", None))}  # fmt: skip
    b = map_frames["buildings"]
    b = b[b["community_code"].str.startswith(IN)]
    return TestClient(create_app(store)), keys, store, b


def _h(keys, role):
    return {"X-API-Key": keys[role]}


def _wait(client, href, headers):
    for _ in range(300):
        job = client.get(href, headers=headers).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError("job did not finish")


def test_tables(env):
    client, keys, store, _ = env
    r = client.get("/analysis/coverage?level=street&type=kindergarten", headers=_h(keys, "viewer"))
    rows = r.json()["rows"]
    t = store.read("coverage")
    want = t[(t["level"] == "street") & (t["type"] == "kindergarten")]
    assert len(rows) == len(want) and {x["code"] for x in rows} == set(want["code"])
    r = client.get("/analysis/coverage?level=grid", headers=_h(keys, "planner"))
    assert r.json()["rows"] and all(x["code"].startswith(IN) for x in r.json()["rows"])
    r = client.get("/analysis/staffing", headers=_h(keys, "viewer")).json()["rows"]
    assert {"code", "quota", "roster"} <= set(r[0])
    assert (
        client.get("/analysis/coverage?level=house", headers=_h(keys, "viewer")).status_code == 400
    )


def test_site_test_and_scenarios(env):
    client, keys, store, b = env
    sites = [{"lon": g.x, "lat": g.y, "area_m2": 300} for g in b.geometry.iloc[[0, 40]]]
    body = {"type": "elderly_day_care", "sites": sites}
    assert client.post("/sites/test", json=body, headers=_h(keys, "viewer")).status_code == 403
    r = client.post("/sites/test", json=body, headers=_h(keys, "planner"))
    assert r.status_code == 200 and len(r.json()["ranking"]) == 2
    bad = {"type": "elderly_day_care", "sites": [{"lon": 116.4, "lat": 39.9}]}
    r = client.post("/sites/test", json=bad, headers=_h(keys, "planner"))
    assert r.status_code == 400 and "outside the city" in r.json()["detail"]
    r = client.post(
        "/sites/test", json={"type": "spa", "sites": sites}, headers=_h(keys, "planner")
    )
    assert r.status_code == 400
    r = client.post("/scenarios", json={"name": "两处", **body}, headers=_h(keys, "planner"))
    assert r.status_code == 201
    assert (
        client.post(
            "/scenarios", json={"name": "两处", **body}, headers=_h(keys, "planner")
        ).status_code
        == 409
    )
    got = client.get("/scenarios/两处", headers=_h(keys, "planner")).json()
    assert (
        got["author"] == "planner@370405001"
        and len(got["sites"]) == 2
        and got["results"]["ranking"]
    )
    assert "两处" in [
        x["id"] for x in client.get("/scenarios", headers=_h(keys, "planner")).json()["scenarios"]
    ]
    assert client.delete("/scenarios/两处", headers=_h(keys, "planner")).status_code == 200
    assert client.get("/scenarios/两处", headers=_h(keys, "planner")).status_code == 404
    log = store.read("audit")
    assert {"scenarios.create", "scenarios.delete"} <= set(log["action"])


def test_jobs(env):
    client, keys, store, _ = env
    body = {"type": "elderly_day_care", "k": 2, "generate": 30}
    assert client.post("/jobs/optimise", json=body, headers=_h(keys, "viewer")).status_code == 403
    r = client.post("/jobs/optimise", json=body, headers=_h(keys, "planner"))
    assert r.status_code == 202
    job = _wait(client, r.json()["href"], _h(keys, "planner"))
    assert job["status"] == "done" and len(job["result"]["chosen"]) == 2, job
    assert [p["step"] for p in job["progress"]][0].startswith("coverage")
    assert job["result"]["gap"] <= 0.01
    # someone else's job does not exist for them
    assert client.get(r.json()["href"], headers=_h(keys, "viewer")).status_code == 404
    assert client.post("/jobs/regrid", headers=_h(keys, "planner")).status_code == 403
    r = client.post("/jobs/regrid", headers=_h(keys, "admin"))
    job = _wait(client, r.json()["href"], _h(keys, "admin"))
    assert job["status"] == "done" and job["result"]["kept"] > 0, job


def test_a_job_started_through_one_server_process_is_polled_through_another(env):
    """Job state lives in the store: with `serve --workers N` a poll may reach any
    process. A job whose process is gone is reported failed, not running for ever.
    """
    client, keys, store, _ = env
    other = TestClient(create_app(store))  # a second server process over the same store
    body = {"type": "elderly_day_care", "k": 1, "generate": 20}
    r = client.post("/jobs/optimise", json=body, headers=_h(keys, "planner"))
    assert r.status_code == 202
    job = _wait(other, r.json()["href"], _h(keys, "planner"))
    assert job["status"] == "done" and len(job["result"]["chosen"]) == 1, job
    assert other.get(r.json()["href"], headers=_h(keys, "viewer")).status_code == 404
    assert any(a == "jobs.optimise" for a in store.read("audit")["action"])
    # a job left "running" by a process that died (a pid that no longer runs here)
    import socket
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    with store.transaction() as tx:
        tx.update(
            "jobs",
            r.json()["job"],
            {"status": "running", "runner": f"{socket.gethostname()}:{dead}"},
        )
    job = other.get(r.json()["href"], headers=_h(keys, "planner")).json()
    assert job["status"] == "failed" and "stopped" in job["error"], job
