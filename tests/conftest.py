"""Shared fixtures: a small seeded city made in code, stores of both kinds, a store with
everything the maps draw, and the browser."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

import shapely

from gis import schema, siting
from gis.assign import assign
from gis.coverage import compute
from gis.partition import divide
from gis.staffing import StaffRules
from gis.store import GeoPackageStore, PostGISStore, Store
from gis.synth import build_city
from gis.workflows import sites as wsites
from gis.workflows.staff import quota_table
from maps import browser

POSTGIS_URL = os.environ.get("GRIDGIS_TEST_POSTGIS")
IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def district_city() -> dict[str, pd.DataFrame]:
    """The 台儿庄区 district of the demo city (about 100,000 households)."""
    return build_city(districts=["370405"])


@pytest.fixture(scope="session")
def town(district_city: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """One township of it (运河街道 and its neighbour's layers cut to it): small, every layer."""
    c = district_city
    street = c["streets"][c["streets"]["code"] == "370405001"]
    comms = c["communities"][c["communities"]["street_code"] == "370405001"]
    codes = set(comms["code"])
    area = shapely.union_all(comms.geometry.values)
    roads = c["roads"][c["roads"].intersects(area)].head(200)
    return {
        "districts": c["districts"],
        "streets": street.reset_index(drop=True),
        "communities": comms.reset_index(drop=True),
        "buildings": c["buildings"][c["buildings"]["community_code"].isin(codes)]
        .head(400)
        .reset_index(drop=True),
        "roads": roads.reset_index(drop=True),
        "facilities": c["facilities"][c["facilities"].within(area)].reset_index(drop=True),
        "workers": c["workers"][c["workers"]["community_code"].isin(codes)].reset_index(drop=True),
        "facility_types": c["facility_types"],
    }


def _postgis_url() -> str:
    if not POSTGIS_URL:
        reason = "no PostGIS: set GRIDGIS_TEST_POSTGIS=postgresql+psycopg://… (.ci/run does)"
        if IN_CI:
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)
    return POSTGIS_URL


@contextmanager
def _postgis_schema() -> Iterator[PostGISStore]:
    url = _postgis_url()
    name = f"t_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS postgis"))
        conn.execute(sa.text(f'CREATE SCHEMA "{name}"'))
    sep = "&" if "?" in url else "?"
    store = PostGISStore(f"{url}{sep}options=-csearch_path%3D{name},public")
    try:
        yield store
    finally:
        store.engine.dispose()
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{name}" CASCADE'))
        engine.dispose()


@pytest.fixture
def postgis_store() -> Iterator[PostGISStore]:
    """A PostGIS store in a schema of its own, dropped afterwards."""
    with _postgis_schema() as s:
        yield s


@pytest.fixture(params=["gpkg", "postgis"])
def store(request: pytest.FixtureRequest, tmp_path) -> Store:  # noqa: ANN001
    """Each test using it runs once per store kind."""
    if request.param == "gpkg":
        return GeoPackageStore(tmp_path / "city.gpkg")
    return request.getfixturevalue("postgis_store")


@pytest.fixture(scope="session")
def map_frames(district_city) -> dict[str, pd.DataFrame]:
    f = {k: v.copy() for k, v in district_city.items()}
    f["grids"] = divide(f["communities"], f["buildings"], f["roads"]).grids
    f["quotas"] = quota_table(f["communities"], f["buildings"], StaffRules())
    staffed = assign(f["grids"], f["quotas"], f["workers"])
    f["workers"] = staffed.workers[schema.layer("workers").columns]
    f["assignments"] = staffed.assignments
    cv = compute(
        f["buildings"], f["facilities"], f["facility_types"], f["communities"],
        grids=f["grids"], roads=f["roads"],
    )  # fmt: skip
    f["coverage"], f["gaps"] = cv.table, cv.gaps
    p = siting.Planner.from_coverage(
        cv, f["buildings"], f["facilities"], f["facility_types"], "elderly_day_care"
    )
    cands = siting.generate(p, 80)  # the sample scenario's sites lie in one street
    inside = wsites.locate(cands.geometry, f["communities"]).fillna("").str.startswith("370405001")
    cands = cands[inside.to_numpy()].head(20).reset_index(drop=True)
    sol = siting.optimise(p, cands, 3, "mclp", within="370405001")
    chosen = cands[cands["id"].isin(sol.chosen)]
    sites = pd.DataFrame(
        {"id": chosen["id"], "type": "elderly_day_care", "lon": chosen.geometry.x,
         "lat": chosen.geometry.y, "area_m2": 400.0}
    )  # fmt: skip
    results = {"kind": "optimise", "type": "elderly_day_care", **sol.as_dict()}
    comms = wsites.communities_of(sites, f["communities"])
    f["scenarios"] = wsites.scenario_row("示例", "test", sites, results, comms)
    return f


@pytest.fixture(scope="session")
def map_store(map_frames, tmp_path_factory) -> GeoPackageStore:
    s = GeoPackageStore(tmp_path_factory.mktemp("maps") / "city.gpkg")
    s.write(map_frames)
    return s


@pytest.fixture(scope="session")
def chromium() -> None:
    if not browser.available():
        reason = "no Chromium: make test installs Debian chromium and chromium-driver"
        if IN_CI:
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="session", params=["gpkg", "postgis"])
def served(request, map_frames, tmp_path_factory) -> Iterator[tuple[Store, dict[str, str]]]:
    """Each store kind holding the map city, with a key per role and jurisdiction."""
    from gis import access

    if request.param == "gpkg":
        s: Store = GeoPackageStore(tmp_path_factory.mktemp("served") / "city.gpkg")
        ctx: Any = contextlib.nullcontext(s)
    else:
        ctx = _postgis_schema()
    with ctx as s:
        s.write(map_frames)
        keys = {
            name: access.create_key(s, role, scope, name)[0]
            for name, role, scope in (
                ("viewer", "viewer", None),
                ("supervisor", "supervisor", "370405001"),
                ("supervisor_other", "supervisor", "370405100"),
                ("planner", "planner", "370405001"),
                ("planner2", "planner", "370405001"),
                ("admin", "admin", None),
            )
        }
        yield s, keys


@pytest.fixture(params=["gpkg", "postgis"])
def city(request, map_frames, tmp_path):
    """A fresh store of either kind holding the test city."""
    if request.param == "gpkg":
        s = GeoPackageStore(tmp_path / "city.gpkg")
        s.write(map_frames)
        yield s
        return
    with _postgis_schema() as s:
        s.write(map_frames)
        yield s


def store_spec(store: Store) -> str:
    if isinstance(store, GeoPackageStore):
        return str(store.path)
    return store.engine.url.render_as_string(hide_password=False)
