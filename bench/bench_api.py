"""Benchmark the HTTP API on loopback, side by side with TiPg serving the same PostGIS tables.

1. ``gridgis demo`` into a PostGIS database (``$GRIDGIS_BENCH_POSTGIS``, default
   ``postgresql+psycopg://postgres@127.0.0.1:5432/gridgis_bench``; created if missing).
2. ``gridgis serve`` and TiPg (``uvicorn tipg.main:app``), one process each, on that database.
3. 32 concurrent connections (wrk) for 15 s each: ``grids/items`` with a random 1 km bbox and
   ``limit=100`` (the same boxes for both servers), plain and with ``Accept-Encoding: gzip``,
   in alternating rounds (``$GRIDGIS_BENCH_ROUNDS``, default 2), gridgis with one process and
   with ``--workers 2``; then ``/locate`` at random points.

Prints requests per second and latency percentiles; asserts nothing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time

import httpx
import numpy as np
import sqlalchemy as sa

URL = os.environ.get(
    "GRIDGIS_BENCH_POSTGIS", "postgresql+psycopg://postgres@127.0.0.1:5432/gridgis_bench"
)
CLIENTS = 32
SECONDS = 15.0
ROUNDS = int(os.environ.get("GRIDGIS_BENCH_ROUNDS", "2"))


def _database(url: str = URL) -> None:
    """Create the database of ``url`` if missing, with PostGIS."""
    admin = sa.create_engine(url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    name = url.rsplit("/", 1)[1].split("?")[0]
    with admin.connect() as conn:
        if not conn.execute(
            sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
        ).first():
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS postgis"))
    engine.dispose()


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from api.cli import main; main()", *args],
        capture_output=True, text=True, check=True, env=env,
    )  # fmt: skip


def _start(cmd: list[str], env: dict, port: int, key: str | None = None) -> subprocess.Popen:
    """Start a server; with ``key``, wait until gridgis's ``/ready`` says its warm-up at
    start is over (measuring while it builds its look-ups would measure that).
    """
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t = time.perf_counter()
    for _ in range(1200):
        try:
            if key is None:
                if httpx.get(f"http://127.0.0.1:{port}/conformance", timeout=1).status_code < 500:
                    return proc
            elif httpx.get(f"http://127.0.0.1:{port}/ready", headers={"X-API-Key": key},
                           timeout=1).status_code == 200:  # fmt: skip
                print(
                    f"  server on :{port} ready after {time.perf_counter() - t:.1f} s", flush=True
                )
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError(
        f"{cmd[0]} did not start: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}"
    )


def _load(
    urls: list[str], headers: dict[str, str], seconds: float = SECONDS
) -> tuple[float, dict[str, float], int]:
    """wrk (C, two threads) with CLIENTS connections cycling through ``urls``."""
    host = urls[0].split("/", 3)[:3]
    paths = ["/" + u.split("/", 3)[3] for u in urls]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write("local paths = {" + ",".join(f'"{p}"' for p in paths) + "}\n")
        for k, v in headers.items():
            f.write(f'wrk.headers["{k}"] = "{v}"\n')
        f.write(
            "local i = 0\nrequest = function()\n  i = i + 1\n"
            "  return wrk.format('GET', paths[(i % #paths) + 1])\nend\n"
        )
        script = f.name
    out = subprocess.run(
        ["wrk", "-t2", f"-c{CLIENTS}", f"-d{seconds:.0f}s", "--latency", "-s", script, "/".join(host)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    os.unlink(script)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    pct = {
        m.group(1): _ms(m.group(2), m.group(3))
        for m in re.finditer(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    }
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rps, pct, int(bad.group(1)) if bad else 0


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _report(name: str, rps: float, pct: dict[str, float], errors: int) -> None:
    p50, p99 = pct.get("50", float("nan")), pct.get("99", float("nan"))
    print(f"{name:<34} {rps:>8.0f} req/s   p50 {p50:>6.1f} ms   p99 {p99:>6.1f} ms   "
          f"non-200 {errors}", flush=True)  # fmt: skip


def main() -> None:
    try:
        _database()
    except sa.exc.OperationalError as exc:
        print(f"no PostgreSQL at {URL} ({exc.orig}); the API benchmark needs one: skipped")
        return
    if subprocess.run(["which", "wrk"], capture_output=True).returncode:
        print("no wrk (make bench installs it): the API benchmark is skipped")
        return
    env = {**os.environ, "GRIDGIS_RATE_LIMIT": "0"}  # the load is the point here
    print(f"== API on loopback: {CLIENTS} concurrent clients, {SECONDS:.0f} s per run ==")
    if "--reuse" not in sys.argv:  # --reuse: the database already holds the demo city
        t = time.perf_counter()
        _cli("demo", "--json", "--store", URL)
        print(f"gridgis demo into PostGIS: {time.perf_counter() - t:.0f} s")
    key = _cli(
        "keys", "create", "--role", "admin", "--name", "bench", "--store", URL
    ).stdout.split()[-1]
    ours = _start(
        [sys.executable, "-c", "from api.cli import main; main()", "serve", "--store", URL,
         "--port", "8701"], env, 8701, key,
    )  # fmt: skip
    pg = URL.replace("+psycopg", "")
    tipg_env = {**env, "DATABASE_URL": pg, "TIPG_DB_SCHEMAS": '["public"]',
                "TIPG_MAX_FEATURES_PER_QUERY": "10000"}  # fmt: skip
    two = _start(
        [sys.executable, "-c", "from api.cli import main; main()", "serve", "--store", URL,
         "--port", "8703", "--workers", "2"], env, 8703, key,
    )  # fmt: skip
    theirs = _start(
        [sys.executable, "-m", "uvicorn", "tipg.main:app", "--port", "8702", "--log-level", "warning"],
        tipg_env, 8702,
    )  # fmt: skip
    try:
        b = httpx.get("http://127.0.0.1:8701/collections/districts", headers={"X-API-Key": key})
        x0, y0, x1, y1 = b.json()["extent"]["spatial"]["bbox"][0]
        rng = np.random.default_rng(0)
        boxes = [
            (x, y, x + 0.011, y + 0.009)
            for x, y in zip(
                rng.uniform(x0, x1 - 0.011, 500), rng.uniform(y0, y1 - 0.009, 500), strict=True
            )
        ]  # about 1 km
        q = lambda bb: ",".join(f"{v:.5f}" for v in bb)  # noqa: E731
        ours_urls = [
            f"http://127.0.0.1:8701/collections/grids/items?bbox={q(bb)}&limit=100" for bb in boxes
        ]
        tipg_urls = [
            f"http://127.0.0.1:8702/collections/public.grids/items?bbox={q(bb)}&limit=100"
            for bb in boxes
        ]
        # same answers? (feature count per box)
        same = 0
        for u, v in list(zip(ours_urls, tipg_urls, strict=True))[:20]:
            a = httpx.get(u, headers={"X-API-Key": key}).json()["numberMatched"]
            t_ = httpx.get(v).json().get("numberMatched")
            same += a == t_
            if a != t_:
                print(f"  note: numberMatched differs for {u}: gridgis {a}, TiPg {t_}")
        print(f"same numberMatched from both servers for {same} of 20 boxes")
        two_urls = [u.replace(":8701/", ":8703/") for u in ours_urls]
        size = {}
        for label, enc in (("plain", {}), ("gzip", {"Accept-Encoding": "gzip"})):
            size[label] = (
                httpx.get(tipg_urls[0], headers=enc).num_bytes_downloaded,
                httpx.get(ours_urls[0], headers={"X-API-Key": key, **enc}).num_bytes_downloaded,
            )
        print(
            f"bytes of one answer (TiPg, gridgis): plain {size['plain']}, gzip {size['gzip']} (on the wire)"
        )
        for label, enc in (("", {}), (" gzip", {"Accept-Encoding": "gzip"})):
            for r in range(ROUNDS):  # alternating rounds: neither server always runs warm
                for name, urls, headers in (
                    ("TiPg  grids/items 1 km" + label, tipg_urls, {}),
                    ("gridgis grids/items 1 km" + label, ours_urls, {"X-API-Key": key}),
                    ("gridgis --workers 2" + label, two_urls, {"X-API-Key": key}),
                ):
                    _load(urls[:32], {**headers, **enc}, 3)  # warm
                    _report(f"{name} #{r + 1}", *_load(urls, {**headers, **enc}))
        # vector tiles, zoom 12–16, over the city (the same tiles from both servers)
        import morecantile

        tms = morecantile.tms.get("WebMercatorQuad")
        pick = rng.choice(len(boxes), 400)
        zs = rng.integers(12, 17, 400)
        ts = [tms.tile((boxes[i][0] + boxes[i][2]) / 2, (boxes[i][1] + boxes[i][3]) / 2, int(z))
              for i, z in zip(pick, zs, strict=True)]  # fmt: skip
        ours_t = [
            f"http://127.0.0.1:8701/collections/grids/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}"
            for t in ts
        ]
        tipg_t = [
            f"http://127.0.0.1:8702/collections/public.grids/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}"
            for t in ts
        ]
        for r in range(ROUNDS):
            for name, urls, headers in (("TiPg  grids tiles z12-16", tipg_t, {}),
                                        ("gridgis grids tiles z12-16", ours_t, {"X-API-Key": key})):  # fmt: skip
                _load(urls[:32], headers, 3)
                _report(f"{name} #{r + 1}", *_load(urls, headers))
        # dispatch look-ups at buildings (points inside the city, as hotline calls are)
        sample = httpx.get(
            "http://127.0.0.1:8701/collections/buildings/items?limit=1000&offset=5000",
            headers={"X-API-Key": key},
        ).json()["features"]
        loc = [
            "http://127.0.0.1:8701/locate?lon={:.6f}&lat={:.6f}".format(
                *f["geometry"]["coordinates"]
            )
            for f in sample
        ]
        _load(loc[:32], {"X-API-Key": key}, 3)
        _report("gridgis /locate", *_load(loc, {"X-API-Key": key}))
    finally:
        for p in (ours, two, theirs):
            p.terminate()
            p.wait(10)


if __name__ == "__main__":
    main()
