"""Siting workflows: test candidate sites, optimise new ones, keep named scenarios."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

import geopandas as gpd

from gis import io as gio
from gis import siting
from gis.access import Principal
from gis.coverage import compute
from gis.errors import ConflictError, NotFoundError, ValidationError
from gis.reference import facility_types
from gis.store import Store, now
from gis.workflows.base import Files, Inputs
from gis.workflows.coverage import NEEDS, OPTIONAL, compute_for

SCENARIO_COLUMNS = ["id", "name", "author", "created", "sites", "results"]


def _known_type(types: pd.DataFrame, code: str) -> None:
    if code not in set(types["code"]):
        raise ValidationError(
            "sites",
            [f"unknown facility type {code!r}; the catalogue has {', '.join(types['code'])}"],
        )


def planner(inputs: Inputs, type_code: str, mode: str | None = None) -> siting.Planner:
    """The siting context of one type: its coverage (distances measured once)."""
    f = inputs.get((*NEEDS, *OPTIONAL))
    _known_type(f["facility_types"], type_code)
    if mode is None:
        cv = compute_for(inputs, [type_code], gaps=False)
    else:
        cv = compute(f["buildings"], f["facilities"], f["facility_types"], f["communities"],
                     grids=f.get("grids"), roads=f.get("roads"), mode=mode, only=[type_code],
                     gaps=False)  # fmt: skip
    return siting.Planner.from_coverage(
        cv, f["buildings"], f["facilities"], f["facility_types"], type_code
    )


def planner_from_files(
    files: Files,
    type_code: str,
    *,
    crs: str = "wgs84",
    mode: str | None = None,
) -> siting.Planner:
    """File mode: the siting context from buildings, facilities (and communities, roads)."""
    types = facility_types()
    layers = gio.load(files, crs=crs, facility_types=set(types["code"]))
    _known_type(types, type_code)
    cv = compute(layers["buildings"], layers["facilities"], types, layers.get("communities"),
                 roads=layers.get("roads"), mode=mode, only=[type_code], gaps=False)  # fmt: skip
    return siting.Planner.from_coverage(
        cv, layers["buildings"], layers["facilities"], types, type_code
    )


def sites_frame(p: siting.Planner, cands: gpd.GeoDataFrame) -> pd.DataFrame:
    """Sites as a scenario keeps them: id, type, lon, lat (7 decimals), area_m2."""
    return pd.DataFrame(
        {
            "id": cands["id"].astype(str).to_numpy(),
            "type": p.code,
            "lon": cands.geometry.x.round(7).to_numpy(),
            "lat": cands.geometry.y.round(7).to_numpy(),
            "area_m2": cands["area_m2"].to_numpy(dtype=float),
        }
    )


@dataclass
class SiteTest:
    """A site test: the evaluation and its results as a scenario keeps them."""

    evaluation: siting.Evaluation
    results: dict[str, Any]
    sites: pd.DataFrame


def test_sites(p: siting.Planner, cands: gpd.GeoDataFrame) -> SiteTest:
    """What each candidate site would newly cover, side by side (nothing is written)."""
    ev = siting.evaluate(p, cands)
    results = {
        "kind": "test",
        "type": p.code,
        "mode": p.cv.mode,
        "ranking": json.loads(ev.ranking.to_json(orient="records", force_ascii=False)),
    }
    return SiteTest(ev, results, sites_frame(p, cands))


@dataclass
class Optimised:
    """An optimisation: the solution, the candidates it chose from and the chosen sites."""

    solution: siting.Solution
    candidates: gpd.GeoDataFrame
    sites: pd.DataFrame
    results: dict[str, Any]


def optimise_sites(
    p: siting.Planner,
    cands: gpd.GeoDataFrame | None,
    k: int | None,
    objective: str = "mclp",
    *,
    generate: int = 300,
    time_limit: float = 60.0,
    within: str | None = None,
) -> Optimised:
    """New sites by MCLP, LSCP or p-median (existing facilities stay open)."""
    if cands is None:
        cands = siting.generate(p, generate)
    sol = siting.optimise(p, cands, k, objective, time_limit=time_limit, within=within)
    chosen = cands[cands["id"].isin(sol.chosen)]
    results = {"kind": "optimise", "type": p.code, "mode": p.cv.mode, "k": k, **sol.as_dict()}
    return Optimised(sol, cands, sites_frame(p, chosen), results)


# --- scenarios ------------------------------------------------------------------------------


def scenario_row(
    name: str, author: str, sites: pd.DataFrame, results: dict[str, Any]
) -> pd.DataFrame:
    """One row of the ``scenarios`` layer: sites and results as JSON, author, time."""
    return pd.DataFrame(
        {
            "id": [name],
            "name": [name],
            "author": [author],
            "created": [now()],
            "sites": [sites.to_json(orient="records", force_ascii=False)],
            "results": [json.dumps(results, ensure_ascii=False, default=float)],
        }
    )


def save_scenario(
    store: Store,
    actor: Principal,
    name: str,
    sites: pd.DataFrame,
    results: dict[str, Any],
    *,
    replace: bool = False,
) -> None:
    """Keep sites and results as the scenario ``name`` (with author and time), or replace
    an existing one's sites and results (``replace=True``); audited.
    """
    row = scenario_row(name, actor.name, sites, results)
    with store.transaction(lock=("scenarios",)) as tx:
        exists = tx.has("scenarios") and len(tx.read("scenarios", where={"id": name})) > 0
        if replace:
            if not exists:
                raise NotFoundError("scenarios", [f"no scenario named {name!r}"])
            tx.update(
                "scenarios",
                name,
                {"sites": row["sites"].iloc[0], "results": row["results"].iloc[0]},
            )
        else:
            if exists:
                raise ConflictError(
                    f"a scenario named {name!r} exists; delete it or choose another name"
                )
            tx.insert("scenarios", row)
        tx.audit(actor.name, "scenarios.update" if replace else "scenarios.create", name,
                 f"{len(sites)} sites")  # fmt: skip


def delete_scenario(store: Store, actor: Principal, name: str) -> None:
    """Delete a scenario (audited)."""
    with store.transaction(lock=("scenarios",)) as tx:
        if not tx.has("scenarios") or not tx.delete("scenarios", [name]):
            raise NotFoundError("scenarios", [f"no scenario named {name!r}"])
        tx.audit(actor.name, "scenarios.delete", name, None)


def scenarios(inputs: Inputs) -> pd.DataFrame:
    """The saved scenarios (an empty table when there are none)."""
    f = inputs.get(("scenarios",))
    return f.get("scenarios", pd.DataFrame(columns=SCENARIO_COLUMNS))


def scenario(inputs: Inputs, name: str) -> dict[str, Any]:
    """One scenario with its sites and results decoded."""
    df = scenarios(inputs)
    hit = df[df["id"] == name]
    if not len(hit):
        known = ", ".join(df["id"]) or "none"
        raise NotFoundError("scenarios", [f"no scenario named {name!r} (saved: {known})"])
    r = hit.iloc[0]
    sites = json.loads(r["sites"])
    for s in sites:
        if isinstance(s.get("area_m2"), float) and np.isnan(s["area_m2"]):
            s["area_m2"] = None
    return {
        "id": r["id"], "name": r["name"], "author": r["author"], "created": r["created"],
        "sites": sites, "results": json.loads(r["results"] or "null"),
    }  # fmt: skip


def summary(s: dict[str, Any]) -> dict[str, Any]:
    """A scenario's figures for lists and comparisons (Chinese labels)."""
    r = s["results"] or {}
    out: dict[str, Any] = {
        "方案": s["id"],
        "创建人": s["author"],
        "创建时间": s["created"],
        "类别": {"test": "候选点评估", "optimise": "选址优化"}.get(
            str(r.get("kind")), r.get("kind")
        ),
        "设施类型": r.get("type"),
        "距离": r.get("mode"),
        "站点数": len(s["sites"]),
    }
    if r.get("kind") == "optimise":
        return out | {"目标": r.get("objective_name"), "目标值": r.get("objective"),
                      "新增覆盖": r.get("newly_covered"), "最优性差距": r.get("gap")}  # fmt: skip
    ranking = r.get("ranking", [])
    return out | {"目标": "—", "目标值": None,
                  "新增覆盖": max((x["newly_covered"] for x in ranking), default=0),
                  "最优性差距": None}  # fmt: skip
