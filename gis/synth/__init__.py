"""The default city, Zaozhuang (枣庄市): real outlines and codes, seeded synthetic detail.

Real (``data/boundaries``, see its PROVENANCE.md): the 6 district outlines, the 66
township-level units and 2,469 village-level units with their NBS codes and names, the 2020
census totals. Synthetic — generated here, seeded and deterministic, and marked
``synthetic = True`` in every row: township and community polygons, roads, buildings with
households, residents and addresses, facilities, and the rosters.

How it is drawn (:mod:`~gis.synth.places`, :mod:`~gis.synth.urban`,
:mod:`~gis.synth.rural`, :mod:`~gis.synth.services`):

- Townships tile each district (weighted k-means centres, dense near the district seat, so
  街道 are small and central, 镇 large and outlying); communities tile each township the
  same way, residents' committees nearest the town centre, villages the rest.
- Households: district totals follow the census populations; urban communities average
  about 2,000 households, villages share the rest; the city total is exactly the census
  1,258,194 family households, residents exactly 2.89 per household.
- Roads: primary roads between town centres, secondary roads between community centres; in
  each urban community a grid of streets in its township's orientation, forming blocks.
- Urban communities: gated compounds (小区) in the blocks nearest the centre, buildings in
  rows with households of floors × units × 2–3 (85–100 % occupied), an internal path between
  the middle rows, addresses 小区 + 楼号.
- Villages: one to three settlements, each a grid of lanes with courtyards of one to three
  households along them, two village roads to the fields, door numbers 村 + 门牌.
- Facilities: each residents' committee's community service station at its office, each
  village committee's service centre at its office; the other types in some communities and
  not others; township-level ones near the town centre. Rosters: urban workers and the
  villages' 村两委 members.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

import geopandas as gpd
import shapely

from gis import schema
from gis.crs import metric_crs
from gis.reference import facility_types
from gis.synth import rural, services, urban
from gis.synth.places import (
    CHILDREN_SHARE,
    CITY_HOUSEHOLDS,
    DISABLED_SHARE,
    ELDERLY_SHARE,
    PERSONS_PER_HOUSEHOLD,
    Reference,
    _district_households,
    _divide_district,
    _households,
    _inside_own_community,
    _nudge,
    _rng,
    _split_sizes,
    _urban_totals,
    arterials,
    largest_remainder,
    load_reference,
)

Progress = Callable[[str], None]

__all__ = [
    "CITY_HOUSEHOLDS",
    "PERSONS_PER_HOUSEHOLD",
    "Reference",
    "build_city",
    "largest_remainder",
    "load_reference",
]


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
    urban_hh = _urban_totals(ref, totals)
    root = np.random.SeedSequence(seed)
    # one independent stream per district, so a subset reproduces the full city's districts
    streams = dict(zip(ref.districts["code"], root.spawn(len(ref.districts)), strict=True))

    say("townships and communities")
    street_rows, comm_rows = [], []
    for d in dist.itertuples():
        rng = np.random.default_rng(streams[d.code])
        s_rows, c_rows = _divide_district(ref, d.code, d.geometry, metric, rng)
        _households(c_rows, totals[d.code], urban_hh[d.code], rng)
        street_rows += s_rows
        comm_rows += c_rows
    streets = gpd.GeoDataFrame(street_rows, crs=metric)
    comms = gpd.GeoDataFrame(comm_rows, crs=metric)

    say("roads, compounds, buildings and courtyards")
    through = arterials(streets, comms)
    buildings, local, offices = _draw(streets, comms, through, root)
    roads = _roads([*through, *local], metric)
    say("facilities")
    facilities = services.facilities(streets, comms, offices, root)
    say("rosters")
    workers = services.workers(comms, root)

    out = {"districts": dist.assign(synthetic=False), "streets": streets, "communities": comms,
           "buildings": buildings, "roads": roads, "facilities": facilities}  # fmt: skip
    frames: dict[str, pd.DataFrame] = {
        name: schema.conform(name, gdf.to_crs(schema.STORAGE_CRS)) for name, gdf in out.items()
    }
    frames["buildings"] = _inside_own_community(frames["buildings"], frames["communities"])
    frames["workers"] = schema.conform("workers", workers)
    frames["facility_types"] = facility_types()
    return frames


def _draw(
    streets: gpd.GeoDataFrame,
    comms: gpd.GeoDataFrame,
    through: list[tuple[str, np.ndarray]],
    root: np.random.SeedSequence,
    persons: float = PERSONS_PER_HOUSEHOLD,
) -> tuple[gpd.GeoDataFrame, list[tuple[str, np.ndarray]], dict[str, np.ndarray]]:
    """Every community drawn: buildings (with households and addresses), local roads and
    paths, each committee's office; ``persons`` residents per household on average.
    """
    lines = np.concatenate([g for _, g in through]) if through else np.empty(0, dtype=object)
    tree = shapely.STRtree(lines)
    # one street orientation per township: its grid plan
    theta = {s: float(np.random.default_rng(int(s)).uniform(0, np.pi / 2)) for s in streets["code"]}
    xy, hh, code, address, urban_flag = [], [], [], [], []
    local: dict[str, list] = {"residential": [], "path": [], "lane": []}
    offices: dict[str, np.ndarray] = {}
    for c in comms.itertuples():
        rng = _rng(root, int(c.code))
        centre = np.array([c.cx_, c.cy_])  # type: ignore[attr-defined]
        short = services.short_name(c.name)
        is_urban = c.kind == "urban"
        if is_urban:
            cross = lines[tree.query(c.geometry, predicate="intersects")]
            cross = shapely.get_parts(shapely.intersection(cross, c.geometry))
            cross = cross[shapely.get_type_id(cross) == 1]
            d = urban.draw(c.geometry, centre, int(c.hh_), theta[c.street_code], cross, short, rng)  # type: ignore[attr-defined]
        else:
            sizes = _split_sizes(int(c.hh_), False, rng)  # type: ignore[attr-defined]
            d = rural.draw(
                c.geometry,
                centre,
                sizes,
                theta[c.street_code] + float(rng.normal(0, 0.3)),
                short,
                rng,
            )
        pts = np.vstack(d.xy)
        h = np.concatenate(d.households)
        xy.append(pts)
        hh.append(h)
        code.append(np.full(len(h), c.code, dtype=object))
        address += d.address
        urban_flag.append(np.full(len(h), is_urban))
        for kind, g in d.roads:
            local[kind].append(g)
        if d.office is not None:
            offices[c.code] = d.office
    hh_all = np.concatenate(hh)
    code_all = np.concatenate(code)
    people = _people(hh_all, np.concatenate(urban_flag), _rng(root, 1), persons)
    seq = pd.Series(code_all).groupby(code_all).cumcount().to_numpy() + 1
    pts = np.vstack(xy)
    b = gpd.GeoDataFrame(
        {"id": [f"{c}B{s:05d}" for c, s in zip(code_all, seq, strict=True)], "community_code": code_all,
         "households": hh_all, **people, "address": address, "synthetic": True},
        geometry=gpd.points_from_xy(pts[:, 0], pts[:, 1]), crs=comms.crs,
    )  # fmt: skip
    return b, [(k, np.asarray(v, dtype=object)) for k, v in local.items() if v], offices


def _people(
    hh: np.ndarray, is_urban: np.ndarray, rng: np.random.Generator, persons: float
) -> dict[str, np.ndarray]:
    """Residents (exactly ``persons`` per household over all), elderly, children, disabled."""
    residents = 2 * hh + rng.binomial(hh, persons - 2)
    _nudge(residents, int(round(hh.sum() * persons)), lower=hh, rng=rng)
    # the countryside is older than the towns (census pattern); shares set so the city
    # lands on the census 18.5 % aged 60+
    p_old = np.where(is_urban, 0.145, 0.215)
    p_old = p_old * ELDERLY_SHARE / np.average(p_old, weights=np.maximum(residents, 1))
    elderly = rng.binomial(residents, np.clip(p_old, 0, 0.9))
    children = rng.binomial(residents - elderly, CHILDREN_SHARE / (1 - ELDERLY_SHARE))
    disabled = rng.binomial(residents, DISABLED_SHARE)
    return {"residents": residents, "elderly": elderly, "children": children, "disabled": disabled}


def _roads(parts: list[tuple[str, np.ndarray]], crs: object) -> gpd.GeoDataFrame:
    kinds = np.concatenate([np.full(len(g), k, dtype=object) for k, g in parts])
    geom = np.concatenate([g for _, g in parts])
    ok = (shapely.get_type_id(geom) == 1) & (shapely.length(geom) > 1.0)
    kinds, geom = kinds[ok], geom[ok]
    return gpd.GeoDataFrame(
        {"id": [f"R{i:06d}" for i in range(1, len(geom) + 1)], "kind": kinds, "synthetic": True},
        geometry=geom, crs=crs,
    )  # fmt: skip
