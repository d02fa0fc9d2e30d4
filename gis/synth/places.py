"""The default city, Zaozhuang (枣庄市): real outlines and codes, seeded synthetic detail.

Real (``data/boundaries``, see its PROVENANCE.md): the 6 district outlines, the 66
township-level units and 2,469 village-level units with their NBS codes and names, the 2020
census totals. Synthetic — generated here, seeded and deterministic, and marked
``synthetic = True`` in every row: township and community polygons, roads, buildings with
households and residents, facilities, and a worker roster.

How it is drawn:

- Townships tile each district: weighted k-means centres (dense near the district seat, so
  街道 are small and central, 镇 large and outlying) → Voronoi cells clipped to the outline.
- Communities tile each township the same way; residents' committees take the cells
  nearest the town centre, villages the rest.
- Households: district totals follow the census populations; urban communities average
  about 2,000 households (so the staffing rule 1 per 350, at least 5, lands near the
  city's approved 1,540), villages share the rest; the city total is exactly the census
  1,258,194 family households, residents exactly 2.89 per household.
- Buildings: urban blocks of tens to hundreds of households clustered in compounds;
  rural courtyards of one to three households clustered in village settlements.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

import geopandas as gpd
import shapely

from gis.reference import DATA_DIR

CITY_HOUSEHOLDS = 1_258_194
PERSONS_PER_HOUSEHOLD = 2.89
ELDERLY_SHARE = 715_213 / 3_855_601  # aged 60+, census 2020
CHILDREN_SHARE = 866_637 / 3_855_601  # aged 0-14
DISABLED_SHARE = 0.063  # national sample-survey share; an assumption, not a Zaozhuang figure
URBAN_MEAN_HOUSEHOLDS = 2_000
MIN_VILLAGE_MEAN = 250

#: Approximate seats of the district governments (WGS84), used as urban centres.
DISTRICT_SEATS = {
    "370402": (117.556, 34.864),
    "370403": (117.263, 34.795),
    "370404": (117.591, 34.773),
    "370405": (117.734, 34.563),
    "370406": (117.461, 35.099),
    "370481": (117.165, 35.084),
}

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Reference:
    """The real reference data of the default city."""

    districts: gpd.GeoDataFrame
    townships: pd.DataFrame
    villages: pd.DataFrame
    district_population: dict[str, float]


def load_reference() -> Reference:
    """Load the shipped Zaozhuang reference files."""
    districts = gpd.read_file(DATA_DIR / "zaozhuang_districts_wgs84.geojson", engine="pyogrio")
    districts = districts.rename(columns={"adcode": "code"})[["code", "name", "geometry"]]
    with open(DATA_DIR / "zaozhuang_townships_nbs2023.json", encoding="utf-8") as fh:
        tdoc = json.load(fh)
    townships = pd.DataFrame(
        [{**t, "district_code": d["code"]} for d in tdoc["districts"] for t in d["townships"]]
    )
    with open(DATA_DIR / "zaozhuang_village_level_nbs2023.csv", encoding="utf-8") as fh:
        villages = pd.DataFrame(list(csv.DictReader(fh)))
    with open(DATA_DIR / "zaozhuang_stats_sources.json", encoding="utf-8") as fh:
        stats = json.load(fh)
    pop = stats["districts_2020_census_resident_population"]
    known = {c: float(v["value"]) for c, v in pop.items() if isinstance(v, dict) and v.get("value")}
    rest = float(pop["remainder_370402+370403+370404+370406"]["value"])
    p2010 = stats["districts_2010_census_resident_population"]
    others = [c for c in districts["code"] if c not in known]
    base = sum(p2010[c] for c in others)
    population = {**known, **{c: rest * p2010[c] / base for c in others}}
    return Reference(districts, townships, villages, population)


def largest_remainder(weights: Sequence[float] | np.ndarray, total: int) -> np.ndarray:
    """Apportion the whole number ``total`` in proportion to ``weights`` (Hamilton method).

    Examples
    --------
    >>> largest_remainder([1, 1, 1], 10).tolist()
    [4, 3, 3]
    """
    w = np.asarray(weights, dtype=float)
    quota = w / w.sum() * total
    out = np.floor(quota).astype(np.int64)
    short = int(total - out.sum())
    if short:
        order = np.lexsort((np.arange(len(w)), -(quota - out)))
        out[order[:short]] += 1
    return out


def _rng(root: np.random.SeedSequence, *key: int) -> np.random.Generator:
    """An independent random stream of the city's seed, named by ``key``."""
    return np.random.default_rng(np.random.SeedSequence(root.entropy, spawn_key=key))


def _kmeans(points: np.ndarray, k: int, rng: np.random.Generator, iters: int = 12) -> np.ndarray:
    """Lloyd's k-means with a KD-tree; empty clusters keep their centre.

    Written here rather than scipy's ``kmeans2`` because that warns on empty clusters and
    ignores the exact seeding needed for a reproducible city; a dozen numpy lines suffice.
    """
    centres = points[rng.choice(len(points), size=k, replace=False)]
    for _ in range(iters):
        label = cKDTree(centres).query(points)[1]
        sums = np.zeros_like(centres)
        np.add.at(sums, label, points)
        counts = np.bincount(label, minlength=k)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
    # snap to the nearest sample so every centre lies inside the area sampled
    return points[cKDTree(points).query(centres)[1]]


def _sample_in(poly: shapely.Geometry, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` uniform random points inside a polygon (rejection sampling)."""
    minx, miny, maxx, maxy = poly.bounds
    shapely.prepare(poly)
    out: list[np.ndarray] = []
    got = 0
    while got < n:
        m = max(64, int((n - got) * 1.5 * (maxx - minx) * (maxy - miny) / max(poly.area, 1)))
        xy = np.column_stack([rng.uniform(minx, maxx, m), rng.uniform(miny, maxy, m)])
        xy = xy[shapely.contains_xy(poly, xy[:, 0], xy[:, 1])]
        out.append(xy)
        got += len(xy)
    return np.concatenate(out)[:n]


def _scatter_in(
    poly: shapely.Geometry, centres: np.ndarray, sigma: float, n: int, rng: np.random.Generator
) -> np.ndarray:
    """``n`` points scattered normally around ``centres``, kept inside ``poly``."""
    shapely.prepare(poly)
    out: list[np.ndarray] = []
    got = 0
    for _ in range(20):
        m = (n - got) * 2 + 8
        pick = centres[rng.integers(len(centres), size=m)]
        xy = pick + rng.normal(0.0, sigma, size=(m, 2))
        xy = xy[shapely.contains_xy(poly, xy[:, 0], xy[:, 1])]
        out.append(xy)
        got += len(xy)
        if got >= n:
            break
    if got < n:  # a sliver of a polygon: fall back to uniform sampling
        out.append(_sample_in(poly, n - got, rng))
    return np.concatenate(out)[:n]


def _voronoi_tiles(region: shapely.Geometry, centres: np.ndarray) -> list[shapely.Geometry]:
    """Voronoi cells of ``centres`` clipped to ``region``, in the centres' order.

    The cells tile the region exactly (shapely clips each cell), so the tiles' union is
    the region and no two overlap.
    """
    if len(centres) == 1:
        return [region]
    minx, miny, maxx, maxy = region.bounds
    frame = shapely.box(minx - 1e4, miny - 1e4, maxx + 1e4, maxy + 1e4)
    cells = shapely.voronoi_polygons(shapely.multipoints(centres), extend_to=frame, ordered=True)
    return [shapely.intersection(c, region) for c in shapely.get_parts(cells)]


def _district_households(ref: Reference, codes: Sequence[str]) -> dict[str, int]:
    all_codes = list(ref.districts["code"])
    hh = largest_remainder([ref.district_population[c] for c in all_codes], CITY_HOUSEHOLDS)
    return {c: int(h) for c, h in zip(all_codes, hh, strict=True) if c in codes}


def _urban_totals(ref: Reference, totals: dict[str, int]) -> dict[str, int]:
    """Urban households per district: residents' committees average about 2,000 households
    city-wide, but no district's villages fall under ``MIN_VILLAGE_MEAN`` households each.
    """
    t = ref.townships.groupby("district_code")[
        ["n_residents_committees", "n_village_committees"]
    ].sum()
    codes = list(totals)
    n_rc = t.loc[codes, "n_residents_committees"].to_numpy(float)
    cap = (
        np.array([totals[c] for c in codes])
        - t.loc[codes, "n_village_committees"].to_numpy(float) * MIN_VILLAGE_MEAN
    )
    target = URBAN_MEAN_HOUSEHOLDS * n_rc.sum()
    lo, hi = 0.0, 20.0 * URBAN_MEAN_HOUSEHOLDS
    for _ in range(60):  # bisection on the per-community mean of the uncapped districts
        mid = (lo + hi) / 2
        if np.minimum(cap, n_rc * mid).sum() < target:
            lo = mid
        else:
            hi = mid
    return {c: int(round(u)) for c, u in zip(codes, np.minimum(cap, n_rc * hi), strict=True)}


def _divide_district(
    ref: Reference,
    code: str,
    outline: shapely.Geometry,
    metric: object,
    rng: np.random.Generator,
    seat_lonlat: tuple[float, float] | None = None,
) -> tuple[list[dict], list[dict]]:
    towns = ref.townships[ref.townships["district_code"] == code].reset_index(drop=True)
    lonlat = seat_lonlat if seat_lonlat is not None else DISTRICT_SEATS[code]
    seat = gpd.GeoSeries([shapely.Point(lonlat)], crs="EPSG:4326").to_crs(metric)[0]
    seat_xy = np.array(seat.coords[0])
    k = len(towns)
    # samples: half uniform over the district, half concentrated around the seat
    uni = _sample_in(outline, 40 * k, rng)
    dense = _scatter_in(outline, seat_xy[None, :], 4000.0, 40 * k, rng)
    centres = _kmeans(np.concatenate([uni, dense]), k, rng)
    # 街道 and development zones take the centres nearest the seat
    near = np.argsort(np.hypot(*(centres - seat_xy).T), kind="stable")
    urban_first = towns.assign(_o=(towns["type"] == "镇").astype(int)).sort_values(
        ["_o", "code"], kind="stable"
    )
    tiles = _voronoi_tiles(outline, centres)
    street_rows, comm_rows = [], []
    for t, ci in zip(urban_first.itertuples(), near, strict=True):
        poly, centre = tiles[ci], centres[ci]
        kind = {"街道": "街道", "镇": "镇", "乡": "乡"}.get(t.type, "其他")
        street_rows.append(
            {
                "code": t.code,
                "name": t.name,
                "kind": kind,
                "district_code": code,
                "synthetic": True,
                "geometry": poly,
            }
        )
        comm_rows += _divide_township(ref, t.code, poly, centre, rng)
    return street_rows, comm_rows


def _divide_township(
    ref: Reference, code: str, poly: shapely.Geometry, centre: np.ndarray, rng: np.random.Generator
) -> list[dict]:
    units = (
        ref.villages[ref.villages["township_code"] == code]
        .sort_values("code12")
        .reset_index(drop=True)
    )
    is_urban = units["code12"].str[9:12].astype(int) < 200
    n_u, k = int(is_urban.sum()), len(units)
    area_km2 = poly.area / 1e6
    sigma = 380.0 * np.sqrt(max(n_u, 1)) if n_u else 1500.0
    uni = _sample_in(poly, 30 * max(k - n_u, 1) + 10, rng)
    dense = _scatter_in(
        poly, centre[None, :], min(sigma, 200.0 * np.sqrt(area_km2) + 200), 60 * max(n_u, 1), rng
    )
    pts = np.concatenate([uni, dense]) if n_u else uni
    centres = _kmeans(pts, k, rng) if k > 1 else centre[None, :]
    near = np.argsort(np.hypot(*(centres - centre).T), kind="stable")
    tiles = _voronoi_tiles(poly, centres)
    order = list(units[is_urban].index) + list(units[~is_urban].index)
    rows = []
    for ui, ci in zip(order, near, strict=True):
        u = units.loc[ui]
        rows.append(
            {
                "code": u["code12"],
                "name": u["name"],
                "kind": "urban" if is_urban[ui] else "rural",
                "street_code": code,
                "district_code": code[:6],
                "synthetic": True,
                "geometry": tiles[ci],
                "cx_": centres[ci][0],
                "cy_": centres[ci][1],
            }
        )
    return rows


def _households(rows: list[dict], total: int, urban_total: int, rng: np.random.Generator) -> None:
    """Give each community a household count: lognormal spreads scaled to the totals."""
    urban = [r for r in rows if r["kind"] == "urban"]
    rural = [r for r in rows if r["kind"] == "rural"]
    if not rural:
        urban_total = total
    if urban:
        hh = largest_remainder(rng.lognormal(0.0, 0.22, len(urban)), urban_total)
        for r, h in zip(urban, hh, strict=True):
            r["hh_"] = int(h)
    if rural:
        hh = largest_remainder(
            rng.lognormal(0.0, 0.45, len(rural)), total - (urban_total if urban else 0)
        )
        for r, h in zip(rural, hh, strict=True):
            r["hh_"] = int(h)


def _split_sizes(total: int, urban: bool, rng: np.random.Generator) -> np.ndarray:
    """Households per building summing exactly to ``total``."""
    if total <= 0:
        return np.zeros(0, dtype=np.int64)
    if urban:  # 6-storey walk-ups (12–36), mid-rises (36–90), high-rises (90–240)
        n = total // 12 + 8
        kind = rng.choice(3, size=n, p=[0.45, 0.35, 0.20])
        lo = np.array([12, 36, 90])[kind]
        hi = np.array([36, 90, 240])[kind]
        sizes = rng.integers(lo, hi + 1)
    else:  # courtyards of one to three households
        n = total + 8
        sizes = rng.choice([1, 2, 3], size=n, p=[0.78, 0.18, 0.04])
    csum = np.cumsum(sizes)
    m = int(np.searchsorted(csum, total)) + 1
    sizes = sizes[:m].copy()
    sizes[-1] -= int(csum[m - 1] - total)
    return sizes[sizes > 0]


def _inside_own_community(buildings: gpd.GeoDataFrame, comms: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Move the rare building that reprojection put on or across its community's edge."""
    from gis.io import locate

    wrong = (locate(buildings.geometry, comms) != buildings["community_code"]).to_numpy()
    if wrong.any():
        inner = comms.set_index("code").geometry.representative_point()
        buildings = buildings.copy()
        buildings.loc[wrong, "geometry"] = inner.loc[buildings.loc[wrong, "community_code"]].values
    return buildings


def _nudge(values: np.ndarray, total: int, *, lower: np.ndarray, rng: np.random.Generator) -> None:
    """Add or take single units at random rows so ``values`` sums to ``total`` (≥ ``lower``)."""
    diff = total - int(values.sum())
    while diff:
        step = 1 if diff > 0 else -1
        room = np.flatnonzero(values > lower) if step < 0 else np.arange(len(values))
        pick = rng.choice(room, size=min(abs(diff), len(room)), replace=False)
        values[pick] += step
        diff -= step * len(pick)


def _lines(segments: np.ndarray) -> np.ndarray:
    """LineStrings from an (n, 2, 2) array of segment end points."""
    return shapely.linestrings(segments)


def arterials(streets: gpd.GeoDataFrame, comms: gpd.GeoDataFrame) -> list[tuple[str, np.ndarray]]:
    """The city's through roads: primary roads between town centres, secondary roads
    between neighbouring community centres (under 6 km), inside the city.
    """
    region = shapely.union_all(streets.geometry.values)
    urban = (comms["kind"] == "urban").to_numpy()
    # between villages: roads from centre to centre; in town the communities are bounded by
    # their main streets (the borders between neighbouring residents' committees)
    centres = np.column_stack([comms["cx_"], comms["cy_"]])[~urban]
    edges = shapely.get_parts(
        shapely.delaunay_triangles(shapely.multipoints(centres), only_edges=True)
    )
    town = comms.geometry.values[urban]
    tree = shapely.STRtree(town)
    a, b = tree.query(town, predicate="touches")
    keep = a < b
    borders = shapely.get_parts(shapely.line_merge(
        shapely.intersection(shapely.boundary(town[a[keep]]), shapely.boundary(town[b[keep]]))
    ))  # fmt: skip
    borders = borders[shapely.get_type_id(borders) == 1]
    parts = [("secondary", np.concatenate([edges[shapely.length(edges) < 6000], borders]))]
    town_c = streets.geometry.representative_point()
    if len(town_c) > 2:
        arts = shapely.get_parts(
            shapely.delaunay_triangles(shapely.multipoints(town_c.values), only_edges=True)
        )
        parts.append(("primary", arts))
    out = []
    for kind, g in parts:
        g = shapely.get_parts(shapely.intersection(g, region))
        out.append((kind, g[(shapely.get_type_id(g) == 1) & (shapely.length(g) > 1.0)]))
    return out
