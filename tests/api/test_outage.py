"""The database goes away under load and comes back: clients get 503 with Retry-After
(never a 500, never a trace), the outage is logged once, and the service recovers by
itself — the first request after the database is back succeeds.

A PostgreSQL cluster of its own is made for this (Debian's ``pg_createcluster``), so that
stopping it disturbs nothing else.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid

import pytest
from fastapi.testclient import TestClient

from api.http import create_app
from gis import access
from gis.store import PostGISStore
from tests.conftest import IN_CI


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def spare_cluster():
    """A throwaway PostgreSQL cluster (version, name, port), dropped afterwards."""
    if (
        not shutil.which("pg_createcluster")
        or os.geteuid() != 0
        or not os.path.isdir("/etc/postgresql")
    ):
        reason = "needs root and Debian's pg_createcluster to make a PostgreSQL cluster to stop"
        if IN_CI:
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)
    version = sorted(os.listdir("/etc/postgresql"), key=lambda v: float(v))[-1]
    name, port = f"gg{uuid.uuid4().hex[:6]}", _free_port()
    subprocess.run(["pg_createcluster", version, name, "-p", str(port), "--start", "--",
                    "--auth-local=trust", "--auth-host=trust"], check=True, capture_output=True)  # fmt: skip
    try:
        yield version, name, port
    finally:
        subprocess.run(["pg_dropcluster", "--stop", version, name], capture_output=True)


def _ctl(version: str, name: str, action: str) -> None:
    subprocess.run(["pg_ctlcluster", version, name, action, *(["-m", "fast"] if action == "stop" else [])],
                   check=True, capture_output=True)  # fmt: skip


def test_database_stopped_mid_load(spare_cluster, map_frames, caplog):
    version, name, port = spare_cluster
    store = PostGISStore(f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres")
    store.write(
        {
            k: map_frames[k]
            for k in ("districts", "streets", "communities", "grids", "facility_types")
        }
    )
    key = access.create_key(store, "viewer")[0]
    app = create_app(store, anonymous_read=False)
    seen: list[tuple[float, int, str | None, str]] = []
    stop = threading.Event()

    def load() -> None:
        with TestClient(app) as c:
            while not stop.is_set():
                r = c.get("/collections/grids/items?limit=5", headers={"X-API-Key": key})
                seen.append((time.monotonic(), r.status_code, r.headers.get("retry-after"), r.text))
                time.sleep(0.02)

    caplog.set_level(logging.WARNING, logger="gridgis.api")
    t = threading.Thread(target=load)
    t.start()
    try:
        time.sleep(1.0)
        _ctl(version, name, "stop")
        down = time.monotonic()
        time.sleep(3.0)
        _ctl(version, name, "start")  # returns once the server accepts connections
        up = time.monotonic()
        with TestClient(app) as c:
            first = c.get("/collections/grids/items?limit=5", headers={"X-API-Key": key})
        time.sleep(1.0)
    finally:
        stop.set()
        t.join()
        store.engine.dispose()
    assert first.status_code == 200 and first.json()["numberReturned"] == 5
    statuses = [s for _, s, _, _ in seen]
    assert set(statuses) <= {200, 503}, set(statuses)
    refused = [(s, ra, text) for when, s, ra, text in seen if s == 503]
    assert len(refused) >= 10 and all(ra for _, ra, _ in refused)
    assert all("try again" in text and "127.0.0.1" not in text and "Traceback" not in text
               for _, _, text in refused)  # fmt: skip
    assert any(s == 200 for when, s, _, _ in seen if when < down)
    assert any(s == 200 for when, s, _, _ in seen if when > up + 0.5)
    messages = [r.getMessage() for r in caplog.records if r.name == "gridgis.api"]
    assert sum("store unreachable" in m for m in messages) == 1, messages
    assert sum("reachable again" in m for m in messages) == 1, messages
    assert not [r for r in caplog.records if r.exc_info]  # no traceback per request


def test_connections_dropped_by_the_database_are_replaced_at_once(spare_cluster, map_frames):
    """The database drops every connection (as a restart or a failover does) between two
    requests a moment apart: the next request still succeeds."""
    version, name, port = spare_cluster
    url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    store = PostGISStore(url)
    try:
        store.write({k: map_frames[k] for k in ("districts", "streets", "communities", "grids")})
        key = access.create_key(store, "viewer")[0]
        with TestClient(create_app(store, anonymous_read=False)) as c:
            h = {"X-API-Key": key}
            assert c.get("/collections/grids/items?limit=5", headers=h).status_code == 200
            killer = PostGISStore(url)
            with killer.engine.begin() as conn:
                n = conn.exec_driver_sql(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE pid <> pg_backend_pid() AND datname = current_database()"
                ).scalar_one()
            killer.engine.dispose()
            assert n >= 1  # the service's pooled connections were there, and are gone
            for _ in range(3):
                assert c.get("/collections/grids/items?limit=5", headers=h).status_code == 200
    finally:
        store.engine.dispose()
