"""Writes that cannot be lost, tried as an operator meets them, on both stores: two
workflows at once, an edit racing a whole-city run, a fault between a change and its audit
row, a writer killed with ``kill -9``, readers during a bulk write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from api.http import create_app
from api.settings import Settings
from gis import access
from gis.store import GeoPackageStore, Store, Tx
from gis.workflows import staff as wstaff
from gis.workflows.base import system
from tests.api.test_cli import run
from tests.conftest import store_spec as _spec


def _audits(store: Store, action: str) -> pd.DataFrame:
    a = store.read("audit") if store.has("audit") else pd.DataFrame(columns=["action", "target"])
    return a[a["action"] == action]


def test_two_coverage_runs_at_once_keep_both(city, map_frames):
    """Two processes computing different types at the same moment: both results stay."""
    cov = map_frames["coverage"]
    city.write({"coverage": cov[cov["type"] == "health_station"]})
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from api.cli import main; main()",
                "coverage",
                "-t",
                t,
                "--store",
                _spec(city),
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for t in ("kindergarten", "elderly_day_care")
    ]
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    got = city.read("coverage")
    assert set(got["type"]) == {"health_station", "kindergarten", "elderly_day_care"}
    for t in ("kindergarten", "elderly_day_care", "health_station"):
        mine = got[got["type"] == t].sort_values(["level", "code"]).reset_index(drop=True)
        want = cov[cov["type"] == t].sort_values(["level", "code"]).reset_index(drop=True)
        assert len(mine) == len(want)
        assert (mine["covered"] - want["covered"]).abs().max() < 1e-6
    assert len(_audits(city, "coverage.run")) == 2


class _Paused:
    """``staff assign`` held inside its transaction (after its reads, before its write)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.computing, self.go = threading.Event(), threading.Event()
        real = wstaff.assign

        def slow(*a, **kw):
            out = real(*a, **kw)
            self.computing.set()
            assert self.go.wait(60)
            return out

        monkeypatch.setattr(wstaff, "assign", slow)
        self.errors: list[BaseException] = []

    def start(self, store: Store) -> threading.Thread:
        def work() -> None:
            try:
                wstaff.assign_workers(store, system("staff assign"))
            except BaseException as exc:  # noqa: BLE001 - asserted by the test
                self.errors.append(exc)

        t = threading.Thread(target=work)
        t.start()
        assert self.computing.wait(120)
        return t


def _grid_and_other_worker(store: Store) -> tuple[str, str]:
    a = store.read("assignments").sort_values("grid_code")
    w = store.read("workers")
    for g, current in zip(a["grid_code"], a["worker_id"], strict=True):
        others = w[(w["community_code"] == g[:12]) & (w["id"] != current)]
        if len(others):
            return g, str(others["id"].iloc[0])
    raise AssertionError("no grid with a second worker")


def test_an_edit_racing_staff_assign_is_kept_or_refused_never_reverted(city, monkeypatch):
    keys = access.create_key(city, "supervisor")[0]
    grid, worker = _grid_and_other_worker(city)
    # 1. the edit may wait one second: refused with a clear 503, nothing of it stored
    paused = _Paused(monkeypatch)
    client = TestClient(create_app(city, settings=Settings(edit_wait=1.0)))
    t = paused.start(city)
    r = client.put(f"/assignments/{grid}", json={"worker_id": worker}, headers={"X-API-Key": keys})
    paused.go.set()
    t.join()
    assert not paused.errors
    assert r.status_code == 503 and r.headers["retry-after"] and "try again" in r.json()["detail"]
    after_run = city.read("assignments", where={"grid_code": grid})["worker_id"].iloc[0]
    assert not ((_audits(city, "assignments.update")["target"] == grid).any())
    # 2. the edit may wait longer than the run: it commits after it, and stays
    paused = _Paused(monkeypatch)
    client = TestClient(create_app(city, settings=Settings(edit_wait=60.0)))
    t = paused.start(city)
    answer: dict = {}
    other = worker if after_run != worker else _grid_and_other_worker(city)[1]
    edit = threading.Thread(target=lambda: answer.update(r=client.put(
        f"/assignments/{grid}", json={"worker_id": other}, headers={"X-API-Key": keys})))  # fmt: skip
    edit.start()
    time.sleep(1.5)
    assert edit.is_alive()  # waiting for the run's lock, not written around it
    paused.go.set()
    t.join()
    edit.join()
    assert not paused.errors and answer["r"].status_code == 200
    assert city.read("assignments", where={"grid_code": grid})["worker_id"].iloc[0] == other
    assert (_audits(city, "assignments.update")["target"] == grid).sum() == 1


def test_a_fault_between_the_change_and_its_audit_row_leaves_neither(city, monkeypatch):
    grid, worker = _grid_and_other_worker(city)
    before = city.read("assignments")
    audits = len(city.read("audit")) if city.has("audit") else 0

    def broken(self, *a, **kw):
        raise OSError("the disk is full (injected)")

    monkeypatch.setattr(Tx, "audit", broken)
    with pytest.raises(OSError, match="injected"):
        wstaff.edit_assignment(city, system("test"), grid, worker)
    with pytest.raises(OSError, match="injected"):  # a whole-layer write, too
        wstaff.set_quotas(city, system("test"), cap=50)
    monkeypatch.undo()
    pd.testing.assert_frame_equal(city.read("assignments"), before)
    assert (len(city.read("audit")) if city.has("audit") else 0) == audits
    assert int(city.read("quotas")["quota"].sum()) != 50


_KILLED = """
import sys, time
import pandas as pd
from gis.store import open_store
s = open_store(sys.argv[1])
b = s.read("buildings")
big = pd.concat([b.assign(id=b["id"] + f"-{i}") for i in range(4)], ignore_index=True)
with s.transaction(lock=("buildings", "communities")) as tx:
    tx.write({"buildings": big, "communities": s.read("communities").head(1)})
    print("inside", flush=True)
    time.sleep(120)
"""


def test_a_writer_killed_mid_write_leaves_the_store_as_it_was(city, tmp_path):
    before = city.layers()
    with subprocess.Popen([sys.executable, "-c", textwrap.dedent(_KILLED), _spec(city)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as p:  # fmt: skip
        assert p.stdout is not None and p.stdout.readline().strip() == "inside"
        os.kill(p.pid, signal.SIGKILL)
        p.communicate(timeout=30)
    assert city.layers() == before
    if isinstance(city, GeoPackageStore):  # only SQLite's own journal, which it recovers
        names = {x.name for x in city.path.parent.iterdir()}
        assert names <= {city.path.name, city.path.name + "-wal", city.path.name + "-shm"}, names
    # the next writer is not blocked and finds a sound store
    city.write({"communities": city.read("communities")})
    assert city.layers() == before
    if isinstance(city, GeoPackageStore):
        import sqlite3

        with sqlite3.connect(city.path) as con:
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_readers_keep_answering_during_a_bulk_write(city, monkeypatch):
    """While the rows of a big layer go into the database, readers of that layer keep
    getting answers (the old layer, whole) instead of waiting for the load to end."""
    from gis.store import gpkg

    b = city.read("buildings")
    big = pd.concat([b.assign(id=b["id"] + f"-{i}") for i in range(6)], ignore_index=True)
    loading: list[float] = []  # start and end of the load inside the database
    if isinstance(city, GeoPackageStore):
        real = gpkg._replace

        def timed(con, spec, df):
            loading.append(time.monotonic())
            real(con, spec, df)
            loading.append(time.monotonic())

        monkeypatch.setattr(gpkg, "_replace", timed)
    else:
        real_copy = type(city)._copy

        def timed_copy(self, conn, spec, df, *a):
            loading.append(time.monotonic())
            real_copy(self, conn, spec, df, *a)
            loading.append(time.monotonic())

        monkeypatch.setattr(type(city), "_copy", timed_copy)
    first = city.page("buildings", limit=5).rows
    done = threading.Event()
    answered: list = []  # (time answered, page)
    writer = threading.Thread(target=lambda: (city.write({"buildings": big}), done.set()))
    writer.start()
    while not done.is_set():
        page = city.page("buildings", limit=5)
        answered.append((time.monotonic(), page))
    writer.join()
    start, end = loading[0], loading[1]
    during = [p for t, p in answered if start <= t <= end]
    # answers kept coming while the load ran, each the whole old layer (never a mixture
    # or an empty table); afterwards the new one
    assert end - start > 0.2 and len(during) >= 3, (end - start, len(during))
    assert all(p.matched == len(b) and p.rows == first for p in during)
    assert all(p.matched in (len(b), len(big)) for _, p in answered)
    assert city.page("buildings", limit=1).matched == len(big)


def test_old_temporary_copies_are_swept(tmp_path, town):
    """A writer of the old copy-and-swap kind killed mid-way left .x.<hex>.tmp.gpkg for good;
    the next writer removes them."""
    s = GeoPackageStore(tmp_path / "x.gpkg")
    s.write({"communities": town["communities"]})
    stale = tmp_path / ".x.1a2b3c4d.tmp.gpkg"
    stale.write_bytes(b"\0" * 1000)
    s.write({"communities": town["communities"]})
    assert not stale.exists()


def test_failed_first_write_leaves_no_file(tmp_path, town):
    s = GeoPackageStore(tmp_path / "new.gpkg")
    r = run("import", "--buildings", str(tmp_path / "missing.csv"), "--store", str(s.path))
    assert r.returncode == 2 and not s.path.exists()
