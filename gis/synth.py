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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

import geopandas as gpd
import shapely

from gis import schema
from gis.crs import metric_crs
from gis.reference import DATA_DIR, facility_types

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


def build_city(
    *,
    seed: int = 20201101,
    districts: Iterable[str] | None = None,
    progress: Progress | None = None,
) -> dict[str, pd.DataFrame]:
    """Build the Zaozhuang demo city: every layer, deterministic for a seed.

    Parameters
    ----------
    seed
        Seed of the random generator; the same seed gives the same city.
    districts
        District codes to build (default all six); a subset keeps the households each of
        those districts has in the full city.
    progress
        Called with a short description as each step starts.

    Returns
    -------
    dict
        Layer name → frame in EPSG:4326, conformed to :mod:`gis.schema`.

    Examples
    --------
    >>> city = build_city(districts=["370405"])
    >>> sorted(city)[:3]
    ['buildings', 'communities', 'districts']
    """
    say = progress or (lambda _msg: None)
    ref = load_reference()
    codes = list(districts) if districts is not None else list(ref.districts["code"])
    unknown = sorted(set(codes) - set(ref.districts["code"]))
    if unknown:
        raise ValueError(
            f"unknown district code(s) {', '.join(unknown)}; Zaozhuang has {', '.join(ref.districts['code'])}"
        )
    metric = metric_crs(117.4)
    dist = ref.districts[ref.districts["code"].isin(codes)].to_crs(metric).reset_index(drop=True)
    totals = _district_households(ref, codes)
    urban = _urban_totals(ref, totals)
    root = np.random.SeedSequence(seed)
    # one independent stream per district, so a subset reproduces the full city's districts
    streams = dict(zip(ref.districts["code"], root.spawn(len(ref.districts)), strict=True))

    say("townships and communities")
    street_rows, comm_rows = [], []
    for d in dist.itertuples():
        rng = np.random.default_rng(streams[d.code])
        s_rows, c_rows = _divide_district(ref, d.code, d.geometry, metric, rng)
        _households(c_rows, totals[d.code], urban[d.code], rng)
        street_rows += s_rows
        comm_rows += c_rows
    streets = gpd.GeoDataFrame(street_rows, crs=metric)
    comms = gpd.GeoDataFrame(comm_rows, crs=metric)

    say("buildings")
    buildings = _buildings(comms, root)
    say("roads")
    roads = _roads(streets, comms, buildings)
    say("facilities")
    facilities = _facilities(streets, comms, buildings, root)
    say("worker roster")
    workers = _workers(comms, root)

    out = {
        "districts": dist.assign(synthetic=False),
        "streets": streets,
        "communities": comms,
        "buildings": buildings,
        "roads": roads,
        "facilities": facilities,
    }
    frames: dict[str, pd.DataFrame] = {
        name: schema.conform(name, gdf.to_crs(schema.STORAGE_CRS)) for name, gdf in out.items()
    }
    frames["buildings"] = _inside_own_community(frames["buildings"], frames["communities"])
    frames["workers"] = schema.conform("workers", workers)
    frames["facility_types"] = facility_types()
    return frames


def _divide_district(
    ref: Reference, code: str, outline: shapely.Geometry, metric: object, rng: np.random.Generator
) -> tuple[list[dict], list[dict]]:
    towns = ref.townships[ref.townships["district_code"] == code].reset_index(drop=True)
    seat = gpd.GeoSeries([shapely.Point(DISTRICT_SEATS[code])], crs="EPSG:4326").to_crs(metric)[0]
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
    sigma = 700.0 * np.sqrt(max(n_u, 1)) if n_u else 1500.0
    uni = _sample_in(poly, 30 * max(k - n_u, 1) + 10, rng)
    dense = _scatter_in(
        poly, centre[None, :], min(sigma, 300.0 * np.sqrt(area_km2) + 300), 60 * max(n_u, 1), rng
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


def _buildings(comms: gpd.GeoDataFrame, root: np.random.SeedSequence) -> gpd.GeoDataFrame:
    xs, ys, hhs, codes, urban_flags = [], [], [], [], []
    for c in comms.itertuples():
        rng = _rng(root, int(c.code))
        urban = c.kind == "urban"
        sizes = _split_sizes(c.hh_, urban, rng)  # type: ignore[attr-defined]
        centre = np.array([c.cx_, c.cy_])  # type: ignore[attr-defined]
        if urban:  # residential compounds (小区) of about 12 buildings
            m = max(1, len(sizes) // 12)
            hubs = _sample_in(c.geometry, m, rng)
            xy = _scatter_in(c.geometry, hubs, 80.0, len(sizes), rng)
        else:  # one to three settlements, the main one at the village centre
            m = 1 + int(rng.integers(0, 3)) if len(sizes) > 150 else 1
            hubs = (
                np.vstack([centre, _sample_in(c.geometry, m - 1, rng)])
                if m > 1
                else centre[None, :]
            )
            sigma = 12.0 * np.sqrt(len(sizes) / m) + 20.0
            xy = _scatter_in(c.geometry, hubs, sigma, len(sizes), rng)
        xs.append(xy[:, 0])
        ys.append(xy[:, 1])
        hhs.append(sizes)
        codes.append(np.full(len(sizes), c.code, dtype=object))
        urban_flags.append(np.full(len(sizes), urban))
    hh = np.concatenate(hhs)
    is_urban = np.concatenate(urban_flags)
    code = np.concatenate(codes)
    rng = _rng(root, 1)
    residents = 2 * hh + rng.binomial(hh, PERSONS_PER_HOUSEHOLD - 2)
    _nudge(residents, int(round(hh.sum() * PERSONS_PER_HOUSEHOLD)), lower=hh, rng=rng)
    # the countryside is older than the towns (census pattern); shares set so the city
    # lands on the census 18.5 % aged 60+
    p_old = np.where(is_urban, 0.145, 0.215)
    p_old = p_old * ELDERLY_SHARE / (np.average(p_old, weights=residents))
    elderly = rng.binomial(residents, np.clip(p_old, 0, 0.9))
    children = rng.binomial(residents - elderly, CHILDREN_SHARE / (1 - ELDERLY_SHARE))
    disabled = rng.binomial(residents, DISABLED_SHARE)
    seq = pd.Series(code).groupby(code).cumcount().to_numpy() + 1
    ids = [f"{c}B{s:05d}" for c, s in zip(code, seq, strict=True)]
    return gpd.GeoDataFrame(
        {
            "id": ids,
            "community_code": code,
            "households": hh,
            "residents": residents,
            "elderly": elderly,
            "children": children,
            "disabled": disabled,
            "synthetic": True,
        },
        geometry=gpd.points_from_xy(np.concatenate(xs), np.concatenate(ys)),
        crs=comms.crs,
    )


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


def _roads(
    streets: gpd.GeoDataFrame, comms: gpd.GeoDataFrame, buildings: gpd.GeoDataFrame
) -> gpd.GeoDataFrame:
    """Roads: arterials between town centres, connectors between community centres, a
    200 m street lattice in urban communities and lanes through village settlements.
    """
    region = shapely.union_all(streets.geometry.values)
    parts: list[tuple[str, np.ndarray]] = []
    centres = np.column_stack([comms["cx_"], comms["cy_"]])
    edges = shapely.get_parts(
        shapely.delaunay_triangles(shapely.multipoints(centres), only_edges=True)
    )
    edges = edges[shapely.length(edges) < 6000]
    parts.append(("secondary", edges))
    town_c = streets.geometry.representative_point()
    if len(town_c) > 2:
        arts = shapely.get_parts(
            shapely.delaunay_triangles(shapely.multipoints(town_c.values), only_edges=True)
        )
        parts.append(("primary", arts))
    lattice, lanes = [], []
    b = buildings.geometry
    bx, by = b.x.to_numpy(), b.y.to_numpy()
    by_comm = (
        pd.Series(np.arange(len(buildings)))
        .groupby(buildings["community_code"].to_numpy())
        .apply(np.asarray)
    )
    for c in comms.itertuples():
        if c.kind == "urban":
            minx, miny, maxx, maxy = c.geometry.bounds
            xs = np.arange(np.ceil(minx / 200) * 200, maxx, 200.0)
            ys = np.arange(np.ceil(miny / 200) * 200, maxy, 200.0)
            segs = [((x, miny), (x, maxy)) for x in xs] + [((minx, y), (maxx, y)) for y in ys]
            if segs:
                lattice.append(shapely.intersection(_lines(np.array(segs)), c.geometry))
        elif c.code in by_comm.index:
            idx = by_comm[c.code]
            x0, x1 = np.percentile(bx[idx], [5, 95])
            y0, y1 = np.percentile(by[idx], [5, 95])
            cx, cy = c.cx_, c.cy_  # type: ignore[attr-defined]
            cross = np.array([((x0 - 30, cy), (x1 + 30, cy)), ((cx, y0 - 30), (cx, y1 + 30))])
            lanes.append(shapely.intersection(_lines(cross), c.geometry))
    if lattice:
        parts.append(("residential", np.concatenate(lattice)))
    if lanes:
        parts.append(("lane", np.concatenate(lanes)))
    kinds, geoms = [], []
    for kind, g in parts:
        g = shapely.intersection(g, region)
        g = shapely.get_parts(g)
        g = g[(shapely.get_type_id(g) == 1) & (shapely.length(g) > 1.0)]
        kinds.append(np.full(len(g), kind, dtype=object))
        geoms.append(g)
    geom = np.concatenate(geoms)
    return gpd.GeoDataFrame(
        {
            "id": [f"R{i:06d}" for i in range(1, len(geom) + 1)],
            "kind": np.concatenate(kinds),
            "synthetic": True,
        },
        geometry=geom,
        crs=comms.crs,
    )


# share of communities with each 5/10-minute facility: (urban, rural); gaps are deliberate
_LOCAL_SHARE = {
    "community_service_station": (0.88, 0.0),
    "elderly_day_care": (0.55, 0.12),
    "kindergarten": (0.6, 0.22),
    "health_station": (0.7, 0.3),
    "culture_room": (0.75, 0.45),
    "sports_ground": (0.6, 0.35),
}
# township-level (15-minute) facilities: share of townships with one at the town centre
_TOWN_SHARE = {"community_service_center": 0.9, "health_center": 1.0, "elderly_care_home": 0.7}
_TYPICAL_AREA = {
    "elderly_day_care": 400.0,
    "kindergarten": 2500.0,
    "health_station": 150.0,
    "culture_room": 200.0,
    "sports_ground": 800.0,
    "community_service_center": 1500.0,
    "health_center": 2000.0,
    "elderly_care_home": 3000.0,
    "rural_service_center": 400.0,
}


def _short_name(name: str) -> str:
    for suffix in ("社区居委会", "居委会", "村委会", "委会"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _facilities(
    streets: gpd.GeoDataFrame,
    comms: gpd.GeoDataFrame,
    buildings: gpd.GeoDataFrame,
    root: np.random.SeedSequence,
) -> gpd.GeoDataFrame:
    rng = _rng(root, 2)
    names = facility_types().set_index("code")["name_zh"]
    rows: list[dict] = []
    first_b = buildings.groupby("community_code").head(1).set_index("community_code")
    for c in comms.itertuples():
        urban = c.kind == "urban"
        base = np.array([c.cx_, c.cy_])  # type: ignore[attr-defined]
        if c.code in first_b.index and urban:
            base = np.array(first_b.loc[c.code].geometry.coords[0])
        short = _short_name(c.name)
        for ftype, (pu, pr) in _LOCAL_SHARE.items():
            if rng.random() < (pu if urban else pr):
                xy = _scatter_in(c.geometry, base[None, :], 120.0, 1, rng)[0]
                if ftype == "community_service_station":
                    area = c.hh_ / 100 * 30 * rng.uniform(0.55, 1.45)  # type: ignore[attr-defined]
                else:
                    area = _TYPICAL_AREA[ftype] * rng.uniform(0.6, 1.4)
                rows.append(
                    {
                        "name": f"{short}{names[ftype]}",
                        "type": ftype,
                        "area_m2": round(area, 1),
                        "xy": xy,
                    }
                )
        if not urban and rng.random() < 0.35:
            xy = _scatter_in(c.geometry, base[None, :], 60.0, 1, rng)[0]
            area = _TYPICAL_AREA["rural_service_center"] * rng.uniform(0.6, 1.4)
            rows.append(
                {
                    "name": f"{short}{names['rural_service_center']}",
                    "type": "rural_service_center",
                    "area_m2": round(area, 1),
                    "xy": xy,
                }
            )
    for s in streets.itertuples():
        town = comms[comms["street_code"] == s.code]
        centre = np.array([town["cx_"].mean(), town["cy_"].mean()])
        centre = np.array(
            shapely.ops.nearest_points(s.geometry, shapely.Point(centre))[0].coords[0]
        )
        for ftype, share in _TOWN_SHARE.items():
            if rng.random() < share:
                xy = _scatter_in(s.geometry, centre[None, :], 300.0, 1, rng)[0]
                area = _TYPICAL_AREA[ftype] * rng.uniform(0.6, 1.4)
                rows.append(
                    {
                        "name": f"{s.name}{names[ftype]}",
                        "type": ftype,
                        "area_m2": round(area, 1),
                        "xy": xy,
                    }
                )
    xy = np.array([r.pop("xy") for r in rows])
    df = pd.DataFrame(rows)
    df.insert(0, "id", [f"F{i:06d}" for i in range(1, len(df) + 1)])
    df["status"] = "existing"
    df["synthetic"] = True
    return gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=comms.crs)


_SURNAMES = list(
    "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史顾侯邵孟龙万段"
)
_GIVEN = list(
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国玉兰红梅文波宁丹辉鹏晨雪琳欣怡浩宇子涵佳琪"
)


def _workers(comms: gpd.GeoDataFrame, root: np.random.SeedSequence) -> pd.DataFrame:
    """A roster for the urban communities: about one worker per 350 households (at least
    5), a few posts vacant; one 正职, one or two 副职, the rest 其他.
    """
    rng = _rng(root, 3)
    urban = comms[comms["kind"] == "urban"]
    centres = gpd.GeoSeries(gpd.points_from_xy(urban["cx_"], urban["cy_"]), crs=comms.crs).to_crs(
        "EPSG:4326"
    )
    rows = []
    start = date(1996, 1, 1)
    for c, home in zip(urban.itertuples(), centres, strict=True):
        n = max(5, int(np.ceil(c.hh_ / 350))) - int(rng.random() < 0.25)  # type: ignore[attr-defined]
        for j in range(n):
            post = "正职" if j == 0 else "副职" if j <= (2 if n >= 7 else 1) else "其他"
            hired = start + timedelta(days=int(rng.integers(0, 365 * 29)))
            edu = rng.choice(
                ["高中及以下", "大专", "本科", "硕士", "博士"], p=[0.12, 0.38, 0.44, 0.055, 0.005]
            )
            name = rng.choice(_SURNAMES) + "".join(rng.choice(_GIVEN, size=int(rng.integers(1, 3))))
            rows.append(
                {
                    "id": f"W{c.code}{j + 1:02d}",
                    "name": name,
                    "community_code": c.code,
                    "post": post,
                    "hired": hired.isoformat(),
                    "education": str(edu),
                    "phone": f"1{rng.choice(['35', '39', '58', '86'])}{int(rng.integers(0, 10**8)):08d}",
                    "home_lon": round(home.x + rng.normal(0, 0.01), 6),
                    "home_lat": round(home.y + rng.normal(0, 0.01), 6),
                    "synthetic": True,
                }
            )
    return pd.DataFrame(rows)
