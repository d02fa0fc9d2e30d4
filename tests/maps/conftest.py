"""A store with everything the maps draw: the 台儿庄区 district with grids, workers,
coverage and a saved scenario."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from gis import schema, siting
from gis.assign import assign
from gis.coverage import compute
from gis.partition import divide
from gis.staffing import quotas
from gis.store import GeoPackageStore
from maps import browser

IN_CI = __import__("os").environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def map_frames(district_city) -> dict[str, pd.DataFrame]:
    f = {k: v.copy() for k, v in district_city.items()}
    f["grids"] = divide(f["communities"], f["buildings"], f["roads"]).grids
    hh = f["buildings"].groupby("community_code")["households"].sum()
    staffed = assign(f["grids"], quotas(f["communities"], hh), f["workers"])
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
    cands = siting.generate(p, 20)
    sol = siting.optimise(p, cands, 3, "mclp")
    chosen = cands[cands["id"].isin(sol.chosen)]
    sites = pd.DataFrame(
        {"id": chosen["id"], "type": "elderly_day_care", "lon": chosen.geometry.x,
         "lat": chosen.geometry.y, "area_m2": 400.0}
    )  # fmt: skip
    f["scenarios"] = pd.DataFrame(
        {
            "id": ["示例"],
            "name": ["示例"],
            "author": ["test"],
            "created": ["2026-11-26T12:00:00+08:00"],
            "sites": [sites.to_json(orient="records", force_ascii=False)],
            "results": [
                json.dumps({"kind": "optimise", "type": "elderly_day_care", **sol.as_dict()})
            ],
        }
    )
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
