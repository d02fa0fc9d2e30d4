"""``gridgis orders``: the loop from the command line, the feed, the assessment report."""

from __future__ import annotations

import json

import openpyxl

from gis.store import GeoPackageStore
from tests.api.test_cli import run


def test_the_loop_from_the_command_line(map_frames, tmp_path):
    path = tmp_path / "city.gpkg"
    store = GeoPackageStore(path)
    store.write(map_frames)
    b = map_frames["buildings"].sort_values("id").iloc[10]
    r = run("orders", "create", "--type", "sanitation", "--description", "楼下垃圾没人清",
            "--building", b["id"], "--source", "hotline", "--external-id", "C1", "--store", str(path), "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    o = json.loads(r.stdout)
    assert o["building_id"] == b["id"] and o["state"] == "dispatched"
    again = json.loads(run("orders", "create", "--type", "sanitation", "--description", "楼下垃圾没人清",
                           "--building", b["id"], "--source", "hotline", "--external-id", "C1",
                           "--store", str(path), "--json").stdout)  # fmt: skip
    assert again["id"] == o["id"]
    steps = [("accept", 1, ["--as-worker", o["worker_id"]]), ("handle", 2, ["--as-worker", o["worker_id"]]),
             ("verify", 3, []), ("close", 4, ["--satisfaction", "4"])]  # fmt: skip
    for action, version, extra in steps:
        r = run(
            "orders",
            "move",
            o["id"],
            action,
            "--version",
            str(version),
            *extra,
            "--store",
            str(path),
        )
        assert r.returncode == 0, (action, r.stderr)
    stale = run("orders", "move", o["id"], "reopen", "--version", "1", "--store", str(path))
    assert stale.returncode != 0 and "version 5, not 1" in stale.stderr
    feed = run("orders", "changes", "--after", "2", "--store", str(path))
    actions = [json.loads(line)["action"] for line in feed.stdout.splitlines()]
    assert actions == ["accept", "handle", "verify", "close"] and "next cursor: 6" in feed.stderr
    out = tmp_path / "report.xlsx"
    r = run(
        "orders", "report", "--level", "grid", "--out", str(out), "--store", str(path), "--json"
    )
    rows = json.loads(r.stdout)
    assert [x["code"] for x in rows] == [o["grid_code"]] and rows[0]["satisfaction"] == 4
    assert rows[0]["on_time_accept"] == 1.0
    sheet = openpyxl.load_workbook(out).active
    assert sheet.cell(1, 1).value == "代码" and sheet.cell(2, 1).value == o["grid_code"]
    bad = run("orders", "create", "--type", "weather", "--description", "x", "--building", b["id"],
              "--store", str(path))  # fmt: skip
    assert bad.returncode != 0 and "unknown category 'weather'" in bad.stderr
