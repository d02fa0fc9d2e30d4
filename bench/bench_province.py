"""Benchmark a whole province (synthetic Shandong, 151 counties, 35,184,241 households) on
a dask ``LocalCluster`` writing to one PostGIS (``make bench-province``; not in ``make test``).

1. The speed-up: the same 10 counties with 1 worker process and with 2, each into a fresh
   schema.
2. The province with 2 workers into ``$GRIDGIS_BENCH_PROVINCE`` (default
   ``postgresql+psycopg://postgres@127.0.0.1:5432/gridgis_province``; created if missing).
   Resumable: counties done before with the same settings are skipped (``--fresh`` starts
   over). Prints the time per stage (summed over the tasks), the wall time, households per
   second, the peak memory of each worker process, and the households per city and for
   the province against the census-derived totals.
3. The service over the province store, once ``/ready`` says its look-ups are built:
   ``/locate`` at building points and ``grids/items`` with a 1 km bbox (32 clients, wrk,
   two rounds each), beside the same ``grids/items`` on the Zaozhuang store of
   ``bench_api.py`` (``$GRIDGIS_BENCH_POSTGIS``; the demo city is built into it first when
   it does not hold it).

``--no-speed-up`` skips part 1, ``--service-only`` parts 1 and 2 (on a store built before).
Prints; asserts nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import sqlalchemy as sa

sys.path.insert(0, os.path.dirname(__file__))
from bench_api import _database, _load, _report, _start  # noqa: E402

from gis.synth import province as sp  # noqa: E402
from gis.workflows import province as wp  # noqa: E402

URL = os.environ.get(
    "GRIDGIS_BENCH_PROVINCE", "postgresql+psycopg://postgres@127.0.0.1:5432/gridgis_province"
)
CITY = os.environ.get(
    "GRIDGIS_BENCH_POSTGIS", "postgresql+psycopg://postgres@127.0.0.1:5432/gridgis_bench"
)


def _speed_up() -> None:
    hh = sp.county_households()
    mid = sorted(hh, key=hh.get)[70:80]  # ten middling counties
    print(f"== speed-up on the same 10 counties ({sum(hh[c] for c in mid):,} households) ==")
    engine = sa.create_engine(URL)
    seconds = {}
    for n in (1, 2):
        schema = f"speedup_{uuid.uuid4().hex[:8]}"
        with engine.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        client = wp.connect(None, n, "8GB" if n == 1 else "6GB")
        try:
            t = time.perf_counter()
            run = wp.build(f"{URL}?options=-csearch_path%3D{schema},public", mid, client=client)
            seconds[n] = time.perf_counter() - t
        finally:
            client.close()
            client.cluster.close()
            with engine.begin() as conn:
                conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        print(f"{n} worker(s): {seconds[n]:.1f} s, failed {len(run.failed)}", flush=True)
    engine.dispose()
    print(f"speed-up of 2 workers over 1: {seconds[1] / seconds[2]:.2f}×")


def _province() -> None:
    print("== the whole province, 2 worker processes, one PostGIS ==", flush=True)
    if "--fresh" in sys.argv:
        engine = sa.create_engine(URL)
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS province_runs"))
        engine.dispose()
    client = wp.connect(None, 2, "8GB")
    done = [0]

    def tick(d: dict) -> None:
        done[0] += 1
        if done[0] % 20 == 0 or "error" in d:
            what = d.get("error") or ("skipped" if d.get("skipped") else f"{d['seconds']:.1f} s")
            print(f"  {done[0]}/302 tasks ({d['county']} {d['stage']}: {what})", flush=True)

    try:
        run = wp.build(URL, client=client, tick=tick)
    finally:
        client.close()
        client.cluster.close()
    ran = [d for d in run.done if not d.get("skipped")]
    for stage in ("base", "results"):
        s = [d["seconds"] for d in ran if d["stage"] == stage]
        print(f"stage {stage:<8} {len(s):>4} counties, {sum(s):8.0f} s of task time")
    print(f"wall time {run.seconds:.0f} s; {run.households:,} households generated "
          f"({run.households / run.seconds:,.0f} households/s end to end)")  # fmt: skip
    peak: dict[int, float] = {}
    for d in ran:
        peak[d["pid"]] = max(peak.get(d["pid"], 0.0), d["rss_mb"])
    print(
        "peak memory per worker process: " + ", ".join(f"{v / 1024:.2f} GB" for v in peak.values())
    )
    print(f"failed counties: {run.failed or 'none'}")
    _counts()


def _counts() -> None:
    engine = sa.create_engine(URL)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT left(community_code, 4), sum(households), count(*) FROM buildings GROUP BY 1 ORDER BY 1"
        )).fetchall()  # fmt: skip
        n = {t: conn.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar_one()
             for t in ("communities", "grids", "workers", "facilities")}  # fmt: skip
    engine.dispose()
    census = sp.city_households()
    print(f"{'city':<6} {'households':>12} {'census-derived':>15} {'diff':>8} {'buildings':>11}")
    for city, hh, b in rows:
        print(
            f"{city:<6} {int(hh):>12,} {census[city]:>15,} {int(hh) / census[city] - 1:>8.3%} {int(b):>11,}"
        )
    total = sum(int(r[1]) for r in rows)
    print(f"province {total:,} households against the census 35,184,241 ({total / 35_184_241 - 1:.3%}); "
          + ", ".join(f"{k} {v:,}" for k, v in n.items()))  # fmt: skip


def _service() -> None:
    print("== the service over the province store ==", flush=True)
    env = {**os.environ, "GRIDGIS_RATE_LIMIT": "0"}
    cli = [sys.executable, "-c", "from api.cli import main; main()"]
    key = subprocess.run([*cli, "keys", "create", "--role", "admin", "--name", "bench", "--store", URL],
                         capture_output=True, text=True, check=True, env=env).stdout.split()[-1]  # fmt: skip
    pts = _buildings(URL, 0.05, 1000)
    boxes = _boxes(pts[:500])
    servers = [("province", URL, 8711)]
    try:
        if not _has_demo(CITY):  # the city to compare with: as bench_api.py builds it
            _database(CITY)
            t = time.perf_counter()
            subprocess.run([*cli, "demo", "--json", "--store", CITY], env=env, check=True,
                           capture_output=True)  # fmt: skip
            print(f"gridgis demo into {CITY.rsplit('/', 1)[1]}: {time.perf_counter() - t:.0f} s")
        servers.append(("Zaozhuang", CITY, 8712))
    except (subprocess.CalledProcessError, sa.exc.OperationalError) as exc:
        print(f"no Zaozhuang store to compare with ({exc}): grids/items over the province only")
    procs = []
    try:
        for name, url, port in servers:
            k = key if name == "province" else _key(url, cli, env)
            procs.append(_start([*cli, "serve", "--store", url, "--port", str(port)], env, port, k))
        loc = [f"http://127.0.0.1:8711/locate?lon={x:.6f}&lat={y:.6f}" for x, y in pts]
        for r in range(2):
            _load(loc[:32], {"X-API-Key": key}, 3)
            _report(f"province /locate #{r + 1}", *_load(loc, {"X-API-Key": key}))
        for r in range(2):
            for name, url, port in servers:
                k = key if name == "province" else _key(url, cli, env)
                bb = boxes if name == "province" else _boxes(_buildings(url, 1, 500))
                urls = [f"http://127.0.0.1:{port}/collections/grids/items?bbox="
                        + ",".join(f"{v:.5f}" for v in b) + "&limit=100" for b in bb]  # fmt: skip
                _load(urls[:32], {"X-API-Key": k}, 3)
                _report(f"{name} grids/items 1 km #{r + 1}", *_load(urls, {"X-API-Key": k}))
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)


def _has_demo(url: str) -> bool:
    try:
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            ok = conn.execute(
                sa.text("SELECT to_regclass('public.grids') IS NOT NULL")
            ).scalar_one()
        engine.dispose()
        return bool(ok)
    except sa.exc.OperationalError:
        return False


_KEYS: dict[str, str] = {}


def _key(url: str, cli: list[str], env: dict) -> str:
    if url not in _KEYS:
        _KEYS[url] = subprocess.run([*cli, "keys", "create", "--role", "admin", "--name", "bench", "--store", url],
                                    capture_output=True, text=True, check=True, env=env).stdout.split()[-1]  # fmt: skip
    return _KEYS[url]


def _buildings(url: str, percent: float, n: int) -> list[tuple[float, float]]:
    """``n`` building points of the store at ``url`` (a random sample)."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        pts = conn.execute(sa.text(
            f"SELECT ST_X(geom), ST_Y(geom) FROM buildings TABLESAMPLE SYSTEM ({percent}) LIMIT {n}"
        )).fetchall()  # fmt: skip
    engine.dispose()
    return [(float(x), float(y)) for x, y in pts]


def _boxes(pts: list[tuple[float, float]]) -> list[tuple[float, ...]]:
    """About 1 km boxes around the points."""
    return [(x - 0.0055, y - 0.0045, x + 0.0055, y + 0.0045) for x, y in pts]


def main() -> None:
    try:
        _database(URL)
    except sa.exc.OperationalError as exc:
        print(f"no PostgreSQL at {URL} ({exc.orig}); the province benchmark needs one: skipped")
        return
    if "--service-only" not in sys.argv:  # --service-only: the province store is built
        if "--no-speed-up" not in sys.argv:
            _speed_up()
        _province()
    if subprocess.run(["which", "wrk"], capture_output=True).returncode:
        print("no wrk (make bench-tools installs it): the service part is skipped")
        return
    _service()


if __name__ == "__main__":
    main()
