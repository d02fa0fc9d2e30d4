"""A whole province, county by county: generate → grids → staffing → coverage, as tasks.

Each county-level unit is an independent unit of division, staffing and coverage, so a
province runs as two tasks per county:

- ``base``: the county's synthetic layers (:func:`gis.synth.province.build_county`);
- ``results``: its grids, quotas, assignments, payroll and coverage. Coverage near the
  county's edge sees the facilities (and walks the roads) of its neighbours within the
  longest walking distance of any facility type, so the task waits for its neighbours'
  ``base`` and reads that buffer from the store.

Each task writes its county in one transaction: the county's rows of each layer are
deleted (by their code prefix) and written again, with its row in ``province_runs`` and
an audit row. A task run twice (a retry after a worker died, a repeated run) replaces its
own rows and never duplicates them; a run skips the tasks already done with the same
settings (``province_runs.digest``). The tasks run on dask.distributed (a ``LocalCluster``
of processes, or a real cluster's scheduler) or, with no client, one after another in
this process — the same functions on the same inputs, so the same results.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import geopandas as gpd
import shapely

from gis import schema
from gis.assign import assign
from gis.coverage import compute
from gis.crs import metric_crs
from gis.errors import InputFileError, ValidationError
from gis.partition import divide
from gis.reference import facility_types
from gis.rules import Band
from gis.settings import CityRules
from gis.staffing import StaffRules, payroll
from gis.store import Store, now, open_store
from gis.synth import province as sp
from gis.workflows.staff import quota_table

#: bump when the generator or a stage changes what it writes: the digest then differs
#: and a resumed run redoes every county
VERSION = 1
#: a county's rows in each layer: the column and the prefix its values start with
PARTS = {
    "districts": ("code", "{c}"), "streets": ("code", "{c}"), "communities": ("code", "{c}"),
    "buildings": ("id", "{c}"), "roads": ("id", "R{c}"), "facilities": ("id", "F{c}"),
    "workers": ("id", "W{c}"), "grids": ("code", "{c}"), "assignments": ("grid_code", "{c}"),
    "quotas": ("code", "{c}"), "coverage": ("code", "{c}"), "gaps": ("community_code", "{c}"),
}  # fmt: skip
STAGES = {
    "base": ("districts", "streets", "communities", "buildings", "roads", "facilities", "workers"),
    "results": ("grids", "quotas", "assignments", "workers", "coverage", "gaps"),
}
ACTOR = "gridgis province"
_BAND_KEYS = ("urban", "rural")
_STAFF_KEYS = {f.name for f in dataclasses.fields(StaffRules)}


@dataclass(frozen=True)
class ProvinceRules:
    """The province's rules and each city's overrides (band, ratio, minimum, cap…)."""

    province: str = "37"
    base: CityRules = field(default_factory=lambda: CityRules(staff=StaffRules(cap=None)))
    cities: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def for_city(self, city: str) -> CityRules:
        """The rules of city ``city`` (4 digits): the province's with its overrides."""
        return _apply(self.base, self.cities.get(city, {}), f"city {city}")

    def for_county(self, county: str) -> CityRules:
        """The rules of a county: its city's, with the city's approved total (cap) shared
        among its counties by their urban households (known before any county is built).
        """
        r = self.for_city(county[:4])
        if r.staff.cap is None:
            return r
        share = _cap_shares(self.province, county[:4], r.staff.cap)
        return dataclasses.replace(r, staff=dataclasses.replace(r.staff, cap=share[county]))


def _apply(base: CityRules, over: Mapping[str, Any], where: str) -> CityRules:
    unknown = sorted(set(over) - _STAFF_KEYS - set(_BAND_KEYS))
    if unknown:
        raise ValidationError(
            "province rules",
            [f"{where}: unknown setting(s) {', '.join(unknown)}; known: "
             f"{', '.join(sorted(_STAFF_KEYS | set(_BAND_KEYS)))}"],
        )  # fmt: skip
    try:
        bands = {k: Band(**over[k]) for k in _BAND_KEYS if k in over}
        staff: dict[str, Any] = {
            k: (tuple(v) if k == "policy_range" else v) for k, v in over.items() if k in _STAFF_KEYS
        }
        return dataclasses.replace(
            base,
            grids=dataclasses.replace(base.grids, **bands) if bands else base.grids,
            staff=dataclasses.replace(base.staff, **staff) if staff else base.staff,
        )
    except (TypeError, ValueError) as exc:
        raise ValidationError("province rules", [f"{where}: {exc}"]) from None


def _cap_shares(province: str, city: str, cap: int) -> dict[str, int]:
    urban = sp.urban_households(province)
    counties = sorted(c for c in urban if c[:4] == city)
    shares = sp.largest_remainder([urban[c] for c in counties], cap)
    return dict(zip(counties, (int(v) for v in shares), strict=True))


def load_rules(path: str | Path | None, province: str = "37") -> ProvinceRules:
    """Province rules from a TOML file: ``[province]`` (every city) and ``[cities.<code>]``
    (one city), keys as :class:`gis.staffing.StaffRules` (``ratio``, ``urban_min``,
    ``cap``…) and ``urban``/``rural`` bands (``{min, target, max}``). ``None``: defaults.
    """
    sp.load_province(province)  # an unknown province: one clear error
    if path is None:
        return ProvinceRules(province)
    try:
        doc = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InputFileError(f"province rules {path}: {exc}") from None
    unknown = sorted(set(doc) - {"province", "cities"})
    if unknown:
        raise ValidationError("province rules", [f"unknown table(s) {', '.join(unknown)}"])
    known = set(sp.load_province(province).cities["code"])
    cities = {str(k): dict(v) for k, v in doc.get("cities", {}).items()}
    bad = sorted(set(cities) - known)
    if bad:
        raise ValidationError(
            "province rules", [f"no city {', '.join(bad)} in province {province}; cities: {', '.join(sorted(known))}"]
        )  # fmt: skip
    base = _apply(ProvinceRules().base, doc.get("province", {}), "province")
    rules = ProvinceRules(province, base, cities)
    for c in cities:
        rules.for_city(c)  # each city's overrides checked now, not in a task
    return rules


def digest(rules: ProvinceRules, county: str, stage: str) -> str:
    """What a stage of a county ran with: the generator's version, and for results the
    county's rules.
    """
    r = rules.for_county(county) if stage == "results" else None
    text = json.dumps([VERSION, rules.province, county, stage, dataclasses.asdict(r) if r else None],
                      sort_keys=True, default=str)  # fmt: skip
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# -- the tasks (run in worker processes: arguments are a store URL and plain values) ------
_STORES: dict[str, Store] = {}


def _store(url: str) -> Store:
    if url not in _STORES:
        _STORES[url] = open_store(url)
    return _STORES[url]


def _peak_mb() -> float:
    """The peak resident memory of this process so far (MB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def _forget(url: str) -> None:
    """Close this process's store of ``url`` (after an in-process run)."""
    store = _STORES.pop(url, None)
    if store is not None:
        store.close()


def _done(store: Store, county: str, stage: str, dig: str) -> bool:
    with store.snapshot() as tx:
        if not tx.has("province_runs"):
            return False
        rows = tx.rows("province_runs", {"id": [f"{county}:{stage}"]})
    return bool(rows) and rows[0]["digest"] == dig


def write_county(
    store: Store,
    county: str,
    stage: str,
    frames: Mapping[str, pd.DataFrame],
    dig: str,
    seconds: float,
) -> int:
    """Replace the county's rows of ``frames`` in one transaction, with its progress row
    and an audit row; returns the households written. Two writers of one county take
    turns (a lock on the county).
    """
    hh = int(frames["buildings"]["households"].sum()) if "buildings" in frames else 0
    with store.transaction() as tx:
        tx.will_write(*frames, "province_runs", "audit")
        tx.lock_key(f"province:{county}")
        for name, df in frames.items():
            col, prefix = PARTS[name]
            tx.delete_prefix(name, col, prefix.format(c=county))
            if len(df):
                tx.insert(name, df)
        # a county generated again has its results to redo: both its rows go
        if stage == "base":
            tx.delete_prefix("province_runs", "id", f"{county}:")
        else:
            tx.delete("province_runs", [f"{county}:{stage}"])
        tx.add("province_runs", [{"id": f"{county}:{stage}", "county": county, "stage": stage, "digest": dig, "households": hh,
                                  "seconds": round(seconds, 3), "at": now()}])  # fmt: skip
        tx.audit(ACTOR, f"province.{stage}", county, f"{hh} households, {seconds:.1f} s")
    return hh


def base_task(url: str, county: str, rules: ProvinceRules) -> dict[str, Any]:
    """Generate county ``county`` and write its layers (skipped when already done)."""
    store, dig = _store(url), digest(rules, county, "base")
    if _done(store, county, "base", dig):
        return {"county": county, "stage": "base", "skipped": True}
    t = time.perf_counter()
    frames = sp.build_county(county, province=rules.province)
    out = {k: frames[k] for k in STAGES["base"]}
    hh = write_county(store, county, "base", out, dig, time.perf_counter() - t)
    return {"county": county, "stage": "base", "skipped": False, "pid": os.getpid(), "rss_mb": _peak_mb(),
            "households": hh, "seconds": time.perf_counter() - t}  # fmt: skip


def results_task(url: str, county: str, rules: ProvinceRules, *_after: Any) -> dict[str, Any]:
    """Grids, staffing and coverage of county ``county`` from the store (its neighbours'
    ``base`` done first: ``_after`` are their results, passed only to order the tasks).
    """
    store, dig = _store(url), digest(rules, county, "results")
    if _done(store, county, "results", dig):
        return {"county": county, "stage": "results", "skipped": True}
    t = time.perf_counter()
    out = county_results(store, county, rules.for_county(county))
    write_county(store, county, "results", out, dig, time.perf_counter() - t)
    return {"county": county, "stage": "results", "skipped": False, "pid": os.getpid(), "rss_mb": _peak_mb(),
            "seconds": time.perf_counter() - t}  # fmt: skip


def county_inputs(store: Store, county: str, reach: float) -> dict[str, pd.DataFrame]:
    """The county's layers, and the roads and facilities within ``reach`` metres of it
    (its neighbours' too), each in key order (the same inputs on any machine).
    """
    d = store.read("districts", where={"code": [county]})
    if not len(d):
        raise ValidationError("province", [f"county {county} has no base layers in the store"])
    comms = store.read("communities", where={"district_code": [county]})
    codes = list(comms["code"])
    f: dict[str, pd.DataFrame] = {
        "districts": d, "communities": comms,
        "buildings": store.read("buildings", where={"community_code": codes}),
        "workers": store.read("workers", where={"community_code": codes}),
    }  # fmt: skip
    metric = metric_crs(float(d.geometry.iloc[0].centroid.x))
    near = gpd.GeoSeries(d.geometry, crs=d.crs).to_crs(metric).buffer(reach).to_crs(d.crs)
    zone = near.iloc[0]
    x0, y0, x1, y1 = (float(v) for v in near.total_bounds)
    for name in ("roads", "facilities"):
        df = store.read(name, bbox=(x0, y0, x1, y1))
        f[name] = df[shapely.intersects(df.geometry.values, zone)]
    key = {n: list(schema.layer(n).key) for n in f}
    return {n: df.sort_values(key[n]).reset_index(drop=True) for n, df in f.items()}


def county_results(
    store: Store, county: str, rules: CityRules, on: date | None = None
) -> dict[str, pd.DataFrame]:
    """The ``results`` layers of one county (grids, quotas, assignments, workers with their
    grades, coverage and gaps) from the store's layers.
    """
    types = facility_types()
    f = county_inputs(store, county, float(types["radius_m"].max()))
    own_roads = f["roads"][f["roads"]["id"].str.startswith(f"R{county}")]
    grids = divide(f["communities"], f["buildings"], own_roads, rules=rules.grids, workers=1).grids
    quota = quota_table(f["communities"], f["buildings"], rules.staff)
    staffed = assign(grids, quota, f["workers"], rules=rules.staff)
    workers, _ = payroll(staffed.workers, on=on or date.today())
    cov = compute(
        f["buildings"], f["facilities"], types, f["communities"], grids=grids, roads=f["roads"]
    )
    coverage = cov.table[cov.table["level"] != "city"]  # a county is not a city: the report sums
    return {"grids": grids, "quotas": quota, "assignments": staffed.assignments,
            "workers": workers[schema.layer("workers").columns], "coverage": coverage,
            "gaps": cov.gaps}  # fmt: skip


# -- the run --------------------------------------------------------------------------
Tick = Callable[[dict[str, Any]], None]


@dataclass
class ProvinceRun:
    """What a run did: each task's outcome, and the failed counties with their errors."""

    done: list[dict[str, Any]]
    failed: dict[str, str]
    seconds: float

    @property
    def households(self) -> int:
        """Households generated in this run (counties skipped as done not counted)."""
        return int(sum(d.get("households", 0) for d in self.done))


def neighbours(province: str, counties: Sequence[str], reach: float) -> dict[str, list[str]]:
    """For each county, the counties (of the province) within ``reach`` metres of it."""
    p = sp.load_province(province)
    all_ = p.counties.to_crs(metric_crs(float(p.counties.union_all().centroid.x)))
    tree = shapely.STRtree(all_.geometry.values)
    code = all_["code"].to_numpy()
    out = {}
    for c in counties:
        g = all_.geometry.values[int(np.flatnonzero(code == c)[0])]
        out[c] = sorted(
            str(code[i]) for i in tree.query(g, predicate="dwithin", distance=reach) if code[i] != c
        )
    return out


def prepare(store: Store, rules: ProvinceRules) -> None:
    """Create the layers the tasks write (empty), and the facility catalogue, once: two
    tasks never race to create a table.
    """
    names = sorted({n for s in STAGES.values() for n in s} | {"province_runs"})
    with store.transaction(lock=(*names, "facility_types")) as tx:
        tx.write({n: schema.empty(n) for n in names if not tx.has(n)})
        tx.write({"facility_types": facility_types()})
        tx.audit(ACTOR, "province.prepare", rules.province, f"{len(names)} layers")


def build(
    url: str,
    counties: Sequence[str] | None = None,
    *,
    rules: ProvinceRules | None = None,
    client: Any = None,
    tick: Tick | None = None,
) -> ProvinceRun:
    """Build ``counties`` (default the whole province) into the store at ``url``.

    With a dask ``client`` the tasks run on its cluster (each county's ``results`` after its
    own and its neighbours' ``base``); without one, in this process in the same order. A
    failed county is reported in :attr:`ProvinceRun.failed`; the others finish.
    """
    rules = rules or ProvinceRules()
    p = sp.load_province(rules.province)
    todo = list(counties) if counties is not None else p.counties_of()
    for c in todo:
        p.county(c)
    store = open_store(url)
    try:
        prepare(store, rules)
    finally:
        store.close()
    reach = float(facility_types()["radius_m"].max())
    near = neighbours(rules.province, todo, reach)
    t0 = time.perf_counter()
    say = tick or (lambda _d: None)
    done: list[dict[str, Any]] = []
    failed: dict[str, str] = {}
    if client is None:
        for stage, run in (("base", base_task), ("results", results_task)):
            for c in todo:
                if stage == "results" and any(n in failed for n in [c, *near[c]] if n in todo):
                    failed.setdefault(c, "a neighbour's base failed")
                    continue
                try:
                    done.append(run(url, c, rules))
                    say(done[-1])
                except Exception as exc:  # noqa: BLE001 - reported, the others go on
                    failed[c] = f"{stage}: {type(exc).__name__}: {exc}"
                    say({"county": c, "stage": stage, "error": failed[c]})
        _forget(url)
        return ProvinceRun(done, failed, time.perf_counter() - t0)
    return _on_cluster(client, url, todo, near, rules, say, t0)


def _on_cluster(
    client: Any, url: str, todo: list[str], near: dict[str, list[str]], rules: ProvinceRules,
    say: Tick, t0: float,
) -> ProvinceRun:  # fmt: skip
    from distributed import as_completed

    # the biggest counties first, so that the workers end together rather than one waiting
    # on the last big county (dask runs the higher priority first)
    size = sp.county_households(rules.province)
    base = {
        c: client.submit(base_task, url, c, rules, key=f"base-{c}", pure=False, priority=size[c])
        for c in todo
    }
    results = {
        c: client.submit(
            results_task,
            url,
            c,
            rules,
            *[base[n] for n in [c, *near[c]] if n in base],
            key=f"results-{c}",
            pure=False,
            priority=size[c],
        )  # fmt: skip
        for c in todo
    }
    which = {
        f.key: (c, s) for s, fs in (("base", base), ("results", results)) for c, f in fs.items()
    }
    done: list[dict[str, Any]] = []
    failed: dict[str, str] = {}
    for fut in as_completed([*base.values(), *results.values()]):
        c, stage = which[fut.key]
        if fut.status == "finished":
            done.append(fut.result())
            say(done[-1])
        else:
            exc = fut.exception()
            failed.setdefault(c, f"{stage}: {type(exc).__name__}: {exc}")
            say({"county": c, "stage": stage, "error": failed[c]})
    return ProvinceRun(done, failed, time.perf_counter() - t0)


@dataclass
class Report:
    """The province's tables: one row per city, one per county."""

    cities: pd.DataFrame
    counties: pd.DataFrame


#: the coverage columns of the report (covered share of the served, per type)
REPORT_TYPES = ("community_service_station", "elderly_day_care", "kindergarten", "health_station")


def report(store: Store, province: str = "37", rules: ProvinceRules | None = None) -> Report:
    """Per city and county: communities, households (against the census-derived totals),
    grids (in the band), staffing (rule quota, approved quota, grid workers), coverage.
    Read from the small layers only (quotas, grids' attributes, coverage's county rows).
    """
    rules = rules or ProvinceRules(province)
    p = sp.load_province(province)
    q = store.read("quotas")
    g = store.read("grids", columns=["code", "community_code", "households"])
    cov = store.read("coverage", where={"level": ["district"]})
    q["county"], g["county"] = q["code"].str[:6], g["community_code"].str[:6]
    band = {c: rules.for_county(c).grids.band("urban") for c in sorted(set(g["county"]))}
    lo = g["county"].map({c: b.min for c, b in band.items()})
    hi = g["county"].map({c: b.max for c, b in band.items()})
    g["in_band"] = g["households"].between(lo, hi)
    per = pd.DataFrame({
        "communities": q.groupby("county").size(),
        "households": q.groupby("county")["households"].sum(),
        "rule_quota": q.groupby("county")["rule_quota"].sum(),
        "quota": q.groupby("county")["quota"].sum(),
        "grid_workers": q.groupby("county")["grid_workers"].sum(),
        "grids": g.groupby("county").size(),
        "grids_in_band": g.groupby("county")["in_band"].sum(),
    }).fillna(0).astype("int64")  # fmt: skip
    served = cov.pivot_table(index="code", columns="type", values="served", aggfunc="sum")
    covered = cov.pivot_table(index="code", columns="type", values="covered", aggfunc="sum")
    types = [t for t in REPORT_TYPES if t in served.columns]
    names = p.counties.set_index("code")["name"]
    counties = per.reset_index(names="code")
    counties.insert(1, "name", counties["code"].map(names))
    counties.insert(2, "city_code", counties["code"].str[:4])
    for t in types:
        counties[f"covered_{t}"] = (
            (covered[t] / served[t]).reindex(counties["code"]).round(4).to_numpy()
        )
    census = pd.Series(sp.county_households(province))
    counties["census_households"] = counties["code"].map(census)
    cities = counties.groupby("city_code")[[*per.columns]].sum().reset_index()
    cities.insert(1, "name", cities["city_code"].map(p.cities.set_index("code")["name"]))
    city_cov = (
        cov.assign(city=cov["code"].str[:4]).groupby(["city", "type"])[["served", "covered"]].sum()
    )
    for t in types:
        part = city_cov.xs(t, level="type")
        cities[f"covered_{t}"] = (
            (part["covered"] / part["served"]).reindex(cities["city_code"]).round(4).to_numpy()
        )
    cities["census_households"] = cities["city_code"].map(pd.Series(sp.city_households(province)))
    cities["households_vs_census"] = (cities["households"] / cities["census_households"] - 1).round(
        5
    )
    return Report(cities, counties)


def connect(scheduler: str | None, workers: int = 2, memory: str = "6GB") -> Any:
    """A dask client: of a new ``LocalCluster`` of ``workers`` processes (one thread each)
    or of the scheduler at ``scheduler`` (``tcp://host:8786``); one clear error when it
    cannot be reached, before any work starts.
    """
    from distributed import Client, LocalCluster

    if scheduler is None:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               memory_limit=memory, dashboard_address=None)  # fmt: skip
        return Client(cluster)
    try:
        return Client(scheduler, timeout=10)
    except (OSError, TimeoutError) as exc:
        raise InputFileError(f"cannot reach the dask scheduler at {scheduler}: {exc}") from None


__all__ = [
    "ProvinceRules",
    "ProvinceRun",
    "Report",
    "build",
    "connect",
    "load_rules",
    "neighbours",
    "report",
]
