"""Benchmark: build the whole Zaozhuang city and write it to each store.

Prints wall time and peak memory (RSS) of each step; asserts nothing. PostGIS is measured
when GRIDGIS_BENCH_POSTGIS (or GRIDGIS_TEST_POSTGIS) names a database.

    make bench
"""

from __future__ import annotations

import os
import resource
import tempfile
import time
from pathlib import Path

from gis.store import GeoPackageStore, PostGISStore
from gis.synth import build_city


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(label: str, fn):
    t = time.perf_counter()
    out = fn()
    print(
        f"{label:<34} {time.perf_counter() - t:8.2f} s   peak RSS {peak_mb():8.0f} MB", flush=True
    )
    return out


def main() -> None:
    print("gridgis bench: the whole Zaozhuang city (6 districts, 66 townships, 2,469 communities)")
    city = timed("build_city (synthetic detail)", build_city)
    rows = sum(len(df) for df in city.values())
    hh = int(city["buildings"]["households"].sum())
    print(f"  {rows:,} rows; {len(city['buildings']):,} buildings; {hh:,} households")
    with tempfile.TemporaryDirectory() as tmp:
        store = GeoPackageStore(Path(tmp) / "city.gpkg")
        timed("write GeoPackage (atomic)", lambda: store.write(city))
        print(f"  file size {store.path.stat().st_size / 1e6:.0f} MB")
        timed("read buildings (GeoPackage)", lambda: store.read("buildings"))
        bbox = (117.30, 34.80, 117.34, 34.84)
        timed("bbox read, 4x4 km (GeoPackage)", lambda: store.read("buildings", bbox=bbox))
    url = os.environ.get("GRIDGIS_BENCH_POSTGIS") or os.environ.get("GRIDGIS_TEST_POSTGIS")
    if url:
        pg = PostGISStore(url)
        timed("write PostGIS (one transaction)", lambda: pg.write(city))
        timed("read buildings (PostGIS)", lambda: pg.read("buildings"))
    else:
        print("PostGIS: skipped (set GRIDGIS_BENCH_POSTGIS=postgresql+psycopg://…)")
    t = time.perf_counter()
    from api.cli import main as _cli  # noqa: F401  (import cost of the CLI)

    print(f"{'import api.cli':<34} {time.perf_counter() - t:8.2f} s")


if __name__ == "__main__":
    main()
