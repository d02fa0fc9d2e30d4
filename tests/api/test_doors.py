"""The two front doors call the same workflows: an operation through the command line and
through HTTP leaves equal layers and an audit row each; the rules set on one door are the
ones the other shows; a job never tells a client more than a deliberate error message."""

from __future__ import annotations

import json
import logging
import re
import shutil
import time

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from api.http import create_app
from gis import access
from gis.staffing import StaffRules
from gis.store import GeoPackageStore
from gis.workflows import sites as wsites
from gis.workflows.staff import quota_table
from tests.api.test_cli import run
from tests.helpers import map_document

IN = "370405001"


@pytest.fixture(scope="module")
def twins(map_frames, tmp_path_factory):
    """Two copies of one store whose households changed by up to ±5 % since the grids."""
    base = tmp_path_factory.mktemp("doors")
    f = dict(map_frames)
    b = f["buildings"].copy()
    rng = np.random.default_rng(5)
    b["households"] = np.maximum(
        0, np.round(b["households"] * rng.uniform(0.95, 1.05, len(b)))
    ).astype(int)
    f["buildings"] = b
    a = GeoPackageStore(base / "cli.gpkg")
    a.write(f)
    shutil.copy(a.path, base / "http.gpkg")
    h = GeoPackageStore(base / "http.gpkg")
    key = access.create_key(h, "admin", name="admin")[0]
    client = TestClient(create_app(h))
    client.headers["X-API-Key"] = key
    return a, h, client


def _wait(client, href):
    for _ in range(600):
        job = client.get(href).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.1)
    raise AssertionError("job did not finish")


def _audited(store, action, target=None) -> bool:
    log = store.read("audit")
    hit = log["action"] == action
    if target is not None:
        hit &= log["target"] == target
    return bool(hit.any())


def test_grid_update_through_either_door(twins):
    cli, http, client = twins
    r = run("grids", "update", "--store", str(cli.path), "--json")
    assert r.returncode == 0, r.stderr
    job = _wait(client, client.post("/jobs/regrid").json()["href"])
    assert job["status"] == "done", job
    out = json.loads(r.stdout)
    assert (
        job["result"]["retired"] == out["retired"] > 0
        and job["result"]["created"] == out["created"]
    )
    for name in ("grids", "grid_history"):
        pd.testing.assert_frame_equal(cli.read(name), http.read(name))
    assert _audited(cli, "grids.update") and _audited(http, "grids.update")


def test_assignment_edit_through_either_door(twins):
    cli, http, client = twins
    a, w = cli.read("assignments"), cli.read("workers")
    grid, worker = next(
        (g, o) for g, cur in zip(a["grid_code"], a["worker_id"], strict=True)
        for o in w.loc[w["community_code"] == g[:12], "id"] if o != cur
    )  # fmt: skip
    r = run("staff", "set", grid, worker, "--store", str(cli.path))
    assert r.returncode == 0, r.stderr
    assert client.put(f"/assignments/{grid}", json={"worker_id": worker}).status_code == 200
    pd.testing.assert_frame_equal(cli.read("assignments"), http.read("assignments"))
    assert cli.read("assignments", where={"grid_code": grid})["worker_id"].iloc[0] == worker
    assert _audited(cli, "assignments.update", grid) and _audited(http, "assignments.update", grid)


def test_scenario_save_through_either_door(twins):
    cli, http, client = twins
    b = cli.read("buildings", where={"community_code": cli.read("communities")["code"].iloc[0]})
    pts = [(round(g.x, 6), round(g.y, 6)) for g in b.geometry.iloc[[0, 5]]]
    args = [a for x, y in pts for a in ("--at", f"{x},{y}")]
    r = run(
        "sites", "test", "-t", "elderly_day_care", *args, "--save", "两处", "--store", str(cli.path)
    )
    assert r.returncode == 0, r.stderr
    body = {
        "name": "两处",
        "type": "elderly_day_care",
        "sites": [{"lon": x, "lat": y} for x, y in pts],
    }
    assert client.post("/scenarios", json=body).status_code == 201
    keep = ["id", "name", "sites", "results"]  # not who and when
    pd.testing.assert_frame_equal(cli.read("scenarios")[keep], http.read("scenarios")[keep])
    assert _audited(cli, "scenarios.create", "两处") and _audited(http, "scenarios.create", "两处")


def test_a_cap_set_on_the_command_line_is_what_the_api_and_the_map_show(map_frames, tmp_path):
    s = GeoPackageStore(tmp_path / "cap.gpkg")
    s.write(map_frames)
    q = quota_table(map_frames["communities"], map_frames["buildings"], StaffRules())
    urban = q[q["kind"] == "urban"]
    cap = int(urban["rule_quota"].sum()) - 12  # binds: the apportionment changes quotas
    assert cap >= 5 * len(urban)
    r = run("staff", "quota", "--cap", str(cap), "--store", str(s.path), "--json")
    assert r.returncode == 0, r.stderr
    capped = {c["code"]: c["quota"] for c in json.loads(r.stdout)["communities"]}
    assert sum(capped[c] for c in urban["code"]) == cap
    changed = [
        c for c in urban["code"] if capped[c] != int(urban.set_index("code").loc[c, "rule_quota"])
    ]
    assert changed
    client = TestClient(create_app(s, anonymous_read=True))
    rows = client.get("/analysis/staffing").json()["rows"]
    assert {x["code"]: x["quota"] for x in rows} == capped
    comms = map_frames["communities"].set_index("code")
    street = comms.loc[changed[0], "street_code"]
    page = client.get(f"/maps/staffing?street={street}").text
    doc = map_document(page)
    drawn = [f["properties"] for layer in doc["layers"] for f in layer["data"]["features"]]
    on_map = {p["name"]: p["quota"] for p in drawn if "quota" in p}
    here = [c for c in changed if comms.loc[c, "street_code"] == street]
    assert here and all(on_map[comms.loc[c, "name"]] == capped[c] for c in here)


def test_a_job_that_hits_a_bug_tells_the_client_only_an_id(map_store, monkeypatch, caplog):
    client = TestClient(create_app(map_store))
    client.headers["X-API-Key"] = access.create_key(map_store, "admin")[0]

    def broken(*a, **kw):
        raise RuntimeError("boom in /srv/gridgis/secret.py, password=hunter2")

    monkeypatch.setattr(wsites, "optimise_sites", broken)
    caplog.set_level(logging.ERROR, logger="gridgis.jobs")
    r = client.post("/jobs/optimise", json={"type": "elderly_day_care", "k": 1, "generate": 5})
    job = _wait(client, r.json()["href"])
    assert job["status"] == "failed"
    assert re.fullmatch(r"internal error; it has been logged as [0-9a-f]{10}", job["error"])
    text = json.dumps(job)
    assert "boom" not in text and "hunter2" not in text and "secret" not in text
    ref = job["error"].rsplit(" ", 1)[1]
    assert any(ref in rec.getMessage() and rec.exc_info for rec in caplog.records)
    # an error raised on purpose keeps its message
    r = client.post("/jobs/optimise", json={"type": "spa", "k": 1})
    job = _wait(client, r.json()["href"])
    assert job["status"] == "failed" and "unknown facility type 'spa'" in job["error"]
