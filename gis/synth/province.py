"""A synthetic province from the real lists: Shandong (山东省), county by county.

Real (``data/boundaries/shandong``, see its PROVENANCE.md): the 151 county outlines, the
1,853 township-level and 62,074 village-level units with their NBS codes and names, each
city's 2020 census residents and the province's 35,184,241 family households (2.70
persons each). Synthetic: everything below county level, drawn by the demo city's
generator (:mod:`gis.synth`) inside each county's outline.

Each county is built alone from its code: its random streams are seeded by the code, and
its household total comes from the static lists only (the city's share of the province's
households by residents, then the county's share of its city's by its committees: about
2,000 households per residents' committee and 385 per village committee, the province's
averages), so a county rebuilt alone is identical to the same county in a whole-province
run — what lets :mod:`gis.workflows.province` run counties as independent tasks.
"""

from __future__ import annotations

import csv
import functools
import gzip
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

import geopandas as gpd
import shapely

from gis import schema
from gis.crs import metric_crs
from gis.errors import ValidationError
from gis.reference import DATA_DIR, facility_types
from gis.synth import _draw, _roads, services
from gis.synth.places import (
    MIN_VILLAGE_MEAN,
    URBAN_MEAN_HOUSEHOLDS,
    Reference,
    _divide_district,
    _households,
    _inside_own_community,
    arterials,
    largest_remainder,
)

#: the provinces shipped: code → folder under ``data/boundaries``
PROVINCES = {"37": "shandong"}
NAMES = {"37": "山东省"}
#: Shandong, 7th census (2020): family households and persons per family household
PROVINCE_HOUSEHOLDS = {"37": 35_184_241}
PERSONS = {"37": 2.70}
#: the province's households per village committee once residents' committees hold about
#: URBAN_MEAN_HOUSEHOLDS each: (35,184,241 − 6,977 × 2,000) / 55,097
RURAL_MEAN_HOUSEHOLDS = 385

Progress = Callable[[str], None]


def _invalid(message: str) -> ValidationError:
    return ValidationError("province", [message])


@dataclass(frozen=True)
class Province:
    """The real reference data of a province."""

    code: str
    counties: gpd.GeoDataFrame  # code, name, city_code, synthetic_outline, geometry (WGS84)
    cities: pd.DataFrame  # code, name, residents_2020
    townships: pd.DataFrame  # code, name, type, district_code, n_residents_committees, …
    villages: pd.DataFrame  # code12, name, township_code, district_code

    def county(self, code: str) -> pd.Series:
        """The county ``code``; a :class:`ValidationError` naming the province's if unknown."""
        hit = self.counties[self.counties["code"] == code]
        if not len(hit):
            raise _invalid(
                f"unknown county code {code!r} in province {self.code} "
                f"({len(self.counties)} counties, e.g. {', '.join(self.counties['code'][:3])})"
            )
        return hit.iloc[0]

    def counties_of(self, cities: list[str] | None = None) -> list[str]:
        """The county codes of ``cities`` (4-digit codes; default all), in code order."""
        if cities is None:
            return sorted(self.counties["code"])
        unknown = sorted(set(cities) - set(self.cities["code"]))
        if unknown:
            raise _invalid(
                f"unknown city code(s) {', '.join(unknown)}; province {self.code} has "
                f"{', '.join(self.cities['code'])}"
            )
        return sorted(self.counties.loc[self.counties["city_code"].isin(cities), "code"])


@functools.lru_cache(maxsize=2)
def load_province(code: str = "37") -> Province:
    """The shipped reference data of province ``code`` (only Shandong, 37, is shipped)."""
    if code not in PROVINCES:
        raise _invalid(
            f"unknown province {code!r}; shipped: {', '.join(f'{k} ({v})' for k, v in PROVINCES.items())}"
        )
    d = DATA_DIR / PROVINCES[code]
    counties = gpd.read_file(d / "counties_wgs84.geojson", engine="pyogrio")
    counties = counties.astype({"code": str, "city_code": str})
    cities = pd.read_csv(d / "cities.csv", dtype={"code": str})
    townships = pd.read_csv(d / "townships.csv", dtype={"code": str, "county_code": str})
    townships = townships.rename(columns={"county_code": "district_code"})
    with gzip.open(d / "villages.csv.gz", "rt", encoding="utf-8") as fh:
        villages = pd.DataFrame(list(csv.DictReader(fh)))
    villages["district_code"] = villages["code12"].str[:6]
    missing = sorted(set(townships["district_code"]) - set(counties["code"]))
    if missing:
        raise _invalid(
            f"no outline for county {', '.join(missing)} in {d / 'counties_wgs84.geojson'}"
        )
    return Province(code, counties, cities, townships, villages)


@functools.lru_cache(maxsize=2)
def county_households(code: str = "37") -> dict[str, int]:
    """Family households per county: the province's by city residents, each city's by its
    counties' committees (see the module's text); they sum exactly to the census total.
    """
    p = load_province(code)
    city_hh = dict(
        zip(p.cities["code"], largest_remainder(p.cities["residents_2020"], PROVINCE_HOUSEHOLDS[code]),
            strict=True)
    )  # fmt: skip
    units = _committees(code)
    out: dict[str, int] = {}
    for city, group in p.counties.groupby("city_code"):
        codes = sorted(group["code"])
        u = units.loc[codes]
        w = (
            u["n_residents_committees"] * URBAN_MEAN_HOUSEHOLDS
            + u["n_village_committees"] * RURAL_MEAN_HOUSEHOLDS
        )
        out.update(
            zip(
                codes,
                (int(v) for v in largest_remainder(w.to_numpy(), int(city_hh[city]))),
                strict=True,
            )
        )
    return out


def city_households(code: str = "37") -> dict[str, int]:
    """Family households per city, census-derived (the province's by residents)."""
    out: dict[str, int] = {}
    for county, hh in county_households(code).items():
        out[county[:4]] = out.get(county[:4], 0) + hh
    return out


@functools.lru_cache(maxsize=2)
def _committees(code: str) -> pd.DataFrame:
    """Residents' and village committees per county (0 for a county without any)."""
    p = load_province(code)
    cols = ["n_residents_committees", "n_village_committees"]
    units = p.townships.groupby("district_code")[cols].sum()
    return units.reindex(sorted(p.counties["code"])).fillna(0).astype("int64")


@functools.lru_cache(maxsize=2)
def urban_households(code: str = "37") -> dict[str, int]:
    """Households per county in residents' committees: about URBAN_MEAN_HOUSEHOLDS each,
    but its villages keep at least MIN_VILLAGE_MEAN each (all of them where it has no
    village). Known from the lists alone, before any county is built.
    """
    units = _committees(code)
    out = {}
    for county, total in county_households(code).items():
        n_rc, n_vc = (int(v) for v in units.loc[county])
        out[county] = (
            total
            if not n_vc
            else int(max(0, min(total - n_vc * MIN_VILLAGE_MEAN, n_rc * URBAN_MEAN_HOUSEHOLDS)))
        )
    return out


def crossings(code: str, province: str = "37") -> np.ndarray:
    """Where roads cross from county ``code`` into its neighbours (longitude, latitude):
    one point per 20 km of each shared border (at least one), seeded by the pair of codes
    and computed from the pair in code order, so both counties find the very same points
    and their road networks meet there.
    """
    p = load_province(province)
    by = p.counties.set_index("code").geometry
    me = by[code]
    out: list[np.ndarray] = []
    for n in sorted(by.index[shapely.intersects(by.values, me)]):
        if n == code:
            continue
        lo, hi = sorted((code, n))
        border = shapely.line_merge(shapely.intersection(by[lo].boundary, by[hi].boundary))
        lines = shapely.get_parts(border)
        lines = lines[shapely.get_type_id(lines) == 1]
        rng = np.random.default_rng([int(lo), int(hi)])
        lat = float(me.centroid.y)
        for line in lines:
            metres = shapely.length(line) * 111_320 * np.cos(np.radians(lat))
            if metres < 2_000:
                continue
            k = max(1, int(metres // 20_000))
            at = (np.arange(k) + rng.uniform(0.3, 0.7, k)) / k
            out.append(
                shapely.get_coordinates(shapely.line_interpolate_point(line, at, normalized=True))
            )
    return np.concatenate(out) if out else np.empty((0, 2))


def _connectors(
    code: str, through: list[tuple[str, np.ndarray]], metric: object, province: str
) -> gpd.GeoDataFrame:
    """Primary roads from the nearest vertex of ``through`` to each border crossing, in
    WGS84, ending exactly on the crossing (the neighbour's road ends there too).
    """
    cross = crossings(code, province)
    lines = np.concatenate([g for _, g in through]) if through else np.empty(0, dtype=object)
    verts = shapely.get_coordinates(lines) if len(lines) else np.empty((0, 2))
    if not len(cross) or not len(verts):
        return gpd.GeoDataFrame({"id": [], "kind": [], "synthetic": []}, geometry=[], crs=4326)
    cm = gpd.GeoSeries(gpd.points_from_xy(cross[:, 0], cross[:, 1]), crs=4326).to_crs(metric)
    near = verts[cKDTree(verts).query(shapely.get_coordinates(cm.values))[1]]
    start = shapely.get_coordinates(
        gpd.GeoSeries(gpd.points_from_xy(near[:, 0], near[:, 1]), crs=metric).to_crs(4326).values
    )
    geom = shapely.linestrings(np.stack([start, cross], axis=1))
    return gpd.GeoDataFrame(
        {"id": [f"R{code}X{i:03d}" for i in range(1, len(geom) + 1)], "kind": "primary", "synthetic": True},
        geometry=geom, crs=4326,
    )  # fmt: skip


def build_county(
    code: str, *, province: str = "37", progress: Progress | None = None
) -> dict[str, pd.DataFrame]:
    """Build one county of the province: every layer, deterministic for the code.

    Returns layer name → frame in EPSG:4326, conformed to :mod:`gis.schema` (as
    :func:`gis.synth.build_city`); ids of roads and facilities carry the county's code, so
    counties never share one.
    """
    say = progress or (lambda _msg: None)
    p = load_province(province)
    row = p.county(code)
    metric = metric_crs(float(row.geometry.centroid.x))
    outline = gpd.GeoSeries([row.geometry], crs=4326).to_crs(metric)[0]
    towns = p.townships[p.townships["district_code"] == code]
    villages = p.villages[p.villages["district_code"] == code]
    if not len(villages):
        raise _invalid(f"county {code} has no village-level unit in the shipped list")
    ref = Reference(
        gpd.GeoDataFrame([row], crs=4326), towns.reset_index(drop=True),
        villages.reset_index(drop=True), {code: 0.0},
    )  # fmt: skip
    root = np.random.SeedSequence(int(code))
    rng = np.random.default_rng(root.spawn(1)[0])
    total = county_households(province)[code]
    seat = shapely.point_on_surface(row.geometry)

    say(f"{code} {row['name']}: townships and communities")
    s_rows, c_rows = _divide_district(ref, code, outline, metric, rng, (seat.x, seat.y))
    _households(c_rows, total, urban_households(province)[code], rng)
    streets = gpd.GeoDataFrame(s_rows, crs=metric)
    comms = gpd.GeoDataFrame(c_rows, crs=metric)
    say(f"{code}: roads, compounds, buildings and courtyards")
    through = arterials(streets, comms)
    buildings, local, offices = _draw(streets, comms, through, root, PERSONS[province])
    roads = _roads([*through, *local], metric)
    roads["id"] = f"R{code}" + roads["id"].str[1:]
    facilities = services.facilities(streets, comms, offices, root)
    facilities["id"] = f"F{code}" + facilities["id"].str[1:]
    workers = services.workers(comms, root)
    county = gpd.GeoDataFrame(
        [{"code": code, "name": row["name"], "synthetic": bool(row["synthetic_outline"]),
          "geometry": outline}], crs=metric,
    )  # fmt: skip
    out = {"districts": county, "streets": streets, "communities": comms,
           "buildings": buildings, "roads": roads, "facilities": facilities}  # fmt: skip
    frames: dict[str, pd.DataFrame] = {
        name: schema.conform(name, gdf.to_crs(schema.STORAGE_CRS)) for name, gdf in out.items()
    }
    frames["buildings"] = _inside_own_community(frames["buildings"], frames["communities"])
    # from the through roads (a compound's paths may not join the rest), else any road
    links = _connectors(code, [g for g in through if len(g[1])] or local, metric, province)
    links = schema.conform("roads", links)
    frames["roads"] = schema.conform(
        "roads", pd.concat([frames["roads"], links], ignore_index=True)
    )
    frames["workers"] = schema.conform("workers", workers)
    frames["facility_types"] = facility_types()
    return frames
