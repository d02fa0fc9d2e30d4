"""Benchmark the work-order loop on PostGIS: 32 clients creating located and dispatched
orders over HTTP, then moving them; and the deadline sweep over many open orders.

Database: ``$GRIDGIS_BENCH_POSTGIS`` (default ``postgresql+psycopg://postgres@127.0.0.1:5432/
gridgis_bench``; a schema of its own, dropped after). City: one district of the demo
(台儿庄区). Sweep size: ``$GRIDGIS_BENCH_OPEN_ORDERS`` (default 1,000,000).

The load comes from wrk (C; Lua scripts give each request its own external id or order),
so the load generator does not eat the server's two cores. Each server layout runs
twice: 32 clients as fast as they can (saturation: the most it takes; latency there is
queueing, 32 / rate), and 32 clients offering 300 creates a second (a think time between
requests, corrected once so the rate lands near 300): the p99 a hotline sees at that load.
Every request's answer must be 2xx (errors are counted). Prints; asserts nothing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
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
CLIENTS, SECONDS, OFFERED = 32, 10.0, 300.0
#: server layouts: (processes, threads per process); on 2 cores a few threads per process
#: beat many (they hold the GIL between their round trips to the database)
LAYOUTS = ((1, 4), (3, 1))


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


def _serve(url: str, port: int, processes: int, threads: int) -> subprocess.Popen:
    env = {**os.environ, "GRIDGIS_ANONYMOUS_READ": "0", "GRIDGIS_RATE_LIMIT": "0",
           "GRIDGIS_THREADS": str(threads)}  # fmt: skip
    p = subprocess.Popen([sys.executable, "-c", "from api.cli import main; main()", "serve", "--store", url,
                          "--port", str(port), "--workers", str(processes)],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    for _ in range(600):
        try:
            httpx.get(f"http://127.0.0.1:{port}/conformance", timeout=1)
            return p
        except httpx.HTTPError:
            time.sleep(0.1)
    p.kill()
    raise RuntimeError("gridgis serve did not start")


def _wrk(port: int, script: str, seconds: float) -> tuple[float, dict[str, float], int, int]:
    """Requests/s, latency percentiles (ms), non-2xx answers and requests, from wrk."""
    out = subprocess.run(
        ["wrk", "-t2", f"-c{CLIENTS}", f"-d{seconds:.0f}s", "--latency", "-s", script,
         f"http://127.0.0.1:{port}"], capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    os.unlink(script)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    unit = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    pct = {m.group(1): float(m.group(2)) * unit[m.group(3)]
           for m in re.finditer(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)}  # fmt: skip
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errs = re.search(r"Socket errors:.*timeout (\d+)", out)
    n = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    return rps, pct, (int(bad.group(1)) if bad else 0) + (int(errs.group(1)) if errs else 0), n


def _script(key: str, body: str, think_ms: float = 0.0) -> str:
    """A wrk script: each connection numbers its requests; ``body`` is Lua building one."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(f'wrk.headers["X-API-Key"] = "{key}"\nwrk.headers["Content-Type"] = "application/json"\n'
                "local counter = 0\nfunction setup(thread) thread:set('tid', counter); counter = counter + 1 end\n"
                f"local n = 0\nfunction delay() return {think_ms:.1f} end\n" + body)  # fmt: skip
        return f.name


def _line(name: str, rps: float, pct: dict[str, float], errors: int) -> None:
    print(f"  {name:<44} {rps:>6,.0f} /s   p50 {pct.get('50', np.nan):>6.1f} ms   "
          f"p99 {pct.get('99', np.nan):>6.1f} ms   errors {errors}", flush=True)  # fmt: skip


def main() -> None:
    f = _city()
    s, url = _schema()
    try:
        store = PostGISStore(url)
        store.write(f)
        key = access.create_key(store, "admin", None, "bench")[0]
        b = f["buildings"]
        pts = [(float(g.x), float(g.y)) for g in b.geometry.values[:: max(1, len(b) // 2000)]]
        points = "local pts = {" + ",".join(f"{{{x:.7f},{y:.7f}}}" for x, y in pts) + "}\n"
        run = uuid.uuid4().hex[:6]
        print(f"== work orders on PostGIS over HTTP, {CLIENTS} clients (wrk) ==")
        for k, (procs, threads) in enumerate(LAYOUTS):
            port = 8765 + k
            p = _serve(url, port, procs, threads)
            try:
                print(f"gridgis serve --workers {procs} (GRIDGIS_THREADS={threads}):")

                def creates(tag: str, think: float = 0.0) -> str:
                    return _script(key, points + f"""
request = function()
  n = n + 1
  local p = pts[((tid * 7919 + n) % #pts) + 1]
  local body = string.format('{{"source":"hotline","external_id":"{run}-{tag}-%d-%d","type":"repair","description":"bench","lon":%.7f,"lat":%.7f}}', tid, n, p[1], p[2])
  return wrk.format("POST", "/orders", nil, body)
end
""", think)  # fmt: skip

                _wrk(
                    port, creates(f"w{k}"), 2
                )  # warm-up: the locator, the pools, prepared statements
                _line("create, saturated", *_wrk(port, creates(f"s{k}"), SECONDS)[:3])
                aim = OFFERED * 1.05  # a little above, so the rate lands at 300 or more
                think = 1000 * CLIENTS / aim
                rps, pct, err, _ = _wrk(port, creates(f"o{k}", think), SECONDS)
                think = max(0.0, think - (1000 * CLIENTS / max(rps, 1) - 1000 * CLIENTS / aim))
                rps, pct, err, _ = _wrk(port, creates(f"p{k}", think), SECONDS)
                _line(f"create, {OFFERED:.0f}/s offered (think {think:.0f} ms)", rps, pct, err)
                with store.snapshot() as tx:
                    ids = [
                        r["id"] for r in tx.rows("orders", {"state": "dispatched"}, columns=["id"])
                    ]
                lua = (
                    "local ids = {"
                    + ",".join(f'"{i}"' for i in ids)
                    + "}\n"
                    + """
request = function()
  local k = tid + 2 * n
  n = n + 1
  return wrk.format("POST", "/orders/" .. ids[(k % #ids) + 1] .. "/transitions", nil, '{"action":"accept","version":1}')
end
"""
                )  # each request a different order (the two wrk threads take turns), each accepted once
                rps, pct, err, n = _wrk(port, _script(key, lua), min(SECONDS, 5.0))
                _line(f"transitions (accept), saturated; {n:,} of {len(ids):,}", rps, pct, err)
            finally:
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
