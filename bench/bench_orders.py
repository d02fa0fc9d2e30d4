"""Benchmark the work-order loop on PostGIS: 32 clients creating located and dispatched
orders over HTTP, then moving them; and the deadline sweep over many open orders.

Database: ``$GRIDGIS_BENCH_POSTGIS`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/
gridgis_bench``; a schema of its own, dropped after). City: one district of the demo
(台儿庄区). Sweep size: ``$GRIDGIS_BENCH_OPEN_ORDERS`` (default 1,000,000).

Prints rates, latency percentiles and errors; asserts nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta

import httpx
import numpy as np
import pandas as pd
import sqlalchemy as sa

import geopandas as gpd
import shapely

from gis import access, schema
from gis import orders as om
from gis.assign import assign
from gis.partition import divide
from gis.staffing import StaffRules
from gis.store import PostGISStore
from gis.store.base import TIMEZONE
from gis.synth import build_city
from gis.workflows import orders as wo
from gis.workflows.staff import quota_table

URL = os.environ.get(
    "GRIDGIS_BENCH_POSTGIS", "postgresql+psycopg://postgres@127.0.0.1:5432/gridgis_bench"
)
OPEN = int(os.environ.get("GRIDGIS_BENCH_OPEN_ORDERS", "1000000"))
CLIENTS, SECONDS = 32, 10.0


def _city() -> dict[str, pd.DataFrame]:
    f = build_city(districts=["370405"])
    f["grids"] = divide(f["communities"], f["buildings"], f["roads"]).grids
    f["quotas"] = quota_table(f["communities"], f["buildings"], StaffRules())
    s = assign(f["grids"], f["quotas"], f["workers"])
    f["workers"], f["assignments"] = s.workers[schema.layer("workers").columns], s.assignments
    return f


def _schema() -> tuple[str, str]:
    """A schema of its own in the bench database (made as bench_api makes it)."""
    from bench_api import _database  # the same $GRIDGIS_BENCH_POSTGIS

    _database()
    s = f"b_{uuid.uuid4().hex[:8]}"
    e = sa.create_engine(URL)
    with e.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{s}"'))
    e.dispose()
    return s, f"{URL}?options=-csearch_path%3D{s},public"


def _drop(s: str) -> None:
    e = sa.create_engine(URL)
    with e.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{s}" CASCADE'))
    e.dispose()


def _load(base: str, key: str, make, seconds: float) -> tuple[int, list[float], int]:  # noqa: ANN001
    lat: list[float] = []
    errors = [0]
    stop = time.perf_counter() + seconds
    lock = threading.Lock()

    def client(i: int) -> None:
        with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=30) as c:
            n = 0
            while time.perf_counter() < stop:
                n += 1
                method, url, body = make(i, n)
                t = time.perf_counter()
                r = c.request(method, url, json=body)
                dt = time.perf_counter() - t
                with lock:
                    lat.append(dt)
                    if r.status_code >= 400:
                        errors[0] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(lat), lat, errors[0]


def _print(name: str, n: int, lat: list[float], errors: int, seconds: float) -> None:
    p = np.percentile(np.array(lat) * 1000, [50, 99]) if lat else [np.nan, np.nan]
    print(f"{name}: {n / seconds:,.0f} per second ({n:,} in {seconds:.0f} s, {CLIENTS} clients); "
          f"p50 {p[0]:.0f} ms, p99 {p[1]:.0f} ms; errors {errors}")  # fmt: skip


def main() -> None:
    f = _city()
    s, url = _schema()
    try:
        store = PostGISStore(url)
        store.write(f)
        key = access.create_key(store, "admin", None, "bench")[0]
        port = 8765
        env = {**os.environ, "GRIDGIS_ANONYMOUS_READ": "0", "GRIDGIS_RATE_LIMIT": "0"}
        p = subprocess.Popen([sys.executable, "-c", "from api.cli import main; main()", "serve", "--store", url,
                              "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                httpx.get(f"{base}/conformance", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        b = f["buildings"]
        pts = [(float(g.x), float(g.y)) for g in b.geometry.values[:: max(1, len(b) // 2000)]]
        ids: list[str] = []

        def create(i: int, n: int):  # noqa: ANN202
            x, y = pts[(i * 7919 + n) % len(pts)]
            return "POST", "/orders", {"source": "hotline", "external_id": f"B{i}-{n}", "type": "repair",
                                       "description": "bench", "lon": x, "lat": y}  # fmt: skip

        print("== work orders on PostGIS, served by `gridgis serve` (one process) ==")
        n, lat, err = _load(base, key, create, SECONDS)
        _print("create (located, dispatched)", n, lat, err, SECONDS)
        ids = list(store.read("orders", columns=["id"])["id"])

        def accept(i: int, n: int):  # noqa: ANN202
            k = i + CLIENTS * (n - 1)
            return (
                "POST",
                f"/orders/{ids[k % len(ids)]}/transitions",
                {"action": "accept", "version": 1},
            )

        n, lat, err = _load(base, key, accept, min(SECONDS, 5.0))
        ok = n - err
        print(f"transitions (accept; each order once, so repeats answer 409 and count as errors): "
              f"{ok / min(SECONDS, 5.0):,.0f} accepted per second, {n:,} requests, p99 "
              f"{np.percentile(np.array(lat) * 1000, 99):.0f} ms")  # fmt: skip
        p.terminate()
        p.wait(30)
        # the sweep over many open orders, 1 % of them late
        rng = np.random.default_rng(0)
        now = datetime.now(TIMEZONE)
        starts = [now - timedelta(hours=3 if r < 0.01 else 0.5) for r in rng.random(OPEN)]
        tmpl = store.read("orders").iloc[0].to_dict()
        pick = rng.integers(0, len(pts), OPEN)
        big = pd.DataFrame({k: [tmpl[k]] * OPEN for k in schema.layer("orders").columns})
        big["id"] = [f"S{i:08d}" for i in range(OPEN)]
        big["external_id"] = None
        big["state"], big["version"] = "dispatched", 1
        big["stage_start"] = [om.stamp(t) for t in starts]
        big["deadline"] = [om.stamp(t + timedelta(hours=2)) for t in starts]
        big["escalated_at"] = None
        geo = gpd.GeoDataFrame(
            big, geometry=shapely.points(np.array(pts)[pick]), crs=schema.STORAGE_CRS
        )
        t = time.perf_counter()
        store.write({"orders": geo})
        print(
            f"\n== the deadline sweep over {OPEN:,} open orders ({time.perf_counter() - t:.1f} s to write them) =="
        )
        t = time.perf_counter()
        late = wo.sweep(store)
        print(f"sweep: {len(late):,} escalated in {time.perf_counter() - t:.1f} s")
    finally:
        _drop(s)


if __name__ == "__main__":
    main()
