"""Siting workflows: test candidate sites, optimise new ones, keep named scenarios."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

import geopandas as gpd

from gis import io as gio
from gis import siting
from gis.access import Principal
from gis.coverage import compute
from gis.errors import AccessError, ConflictError, NotFoundError, ValidationError
from gis.io import locate
from gis.reference import facility_types
from gis.store import Store, now
from gis.workflows.base import Files, Inputs
from gis.workflows.coverage import NEEDS, OPTIONAL, compute_for

SCENARIO_COLUMNS = [
    "id",
    "name",
    "author",
    "created",
    "sites",
    "results",
    "communities",
    "editor",
    "edited",
]


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

#: a scenario name: what a URL path segment and a file name can hold, no control characters
NAME = re.compile(r"^[^/\\\x00-\x1f\x7f]{1,100}$")


def check_name(name: str) -> str:
    """A scenario name as given, or one clear error (every stored scenario stays reachable)."""
    if not NAME.match(name) or name.strip() != name or name in (".", ".."):
        raise ValidationError(
            "scenario name",
            [f"{name[:40]!r}…: 1–100 characters, no '/' or '\\', no control characters, "
             "no spaces at either end" if len(name) > 40 else
             f"{name!r}: 1–100 characters, no '/' or '\\', no control characters, no spaces at either end"],
        )  # fmt: skip
    return name


def scenario_row(
    name: str, author: str, sites: pd.DataFrame, results: dict[str, Any], communities: list[str]
) -> pd.DataFrame:
    """One row of the ``scenarios`` layer: sites and results as JSON, author, time, the
    communities its sites lie in.
    """
    stamp = now()
    return pd.DataFrame(
        {
            "id": [name], "name": [name], "author": [author], "created": [stamp],
            "sites": [sites.to_json(orient="records", force_ascii=False)],
            "results": [json.dumps(results, ensure_ascii=False, default=float)],
            "communities": [",".join(sorted(set(communities)))], "editor": [author], "edited": [stamp],
        }
    )  # fmt: skip


def communities_of(sites: pd.DataFrame, communities: gpd.GeoDataFrame) -> list[str]:
    """The communities the sites (``lon``, ``lat``) lie in."""
    pts = gpd.GeoSeries(gpd.points_from_xy(sites["lon"], sites["lat"]), crs=4326)
    return [str(c) for c in locate(pts, communities).dropna()]


def may_see(row: pd.Series | dict[str, Any], who: Principal) -> bool:
    """Whether ``who`` may see a scenario: all its sites inside the caller's jurisdiction."""
    if who.scope is None:
        return True
    codes = [c for c in str(row.get("communities") or "").split(",") if c]
    return bool(codes) and all(who.covers(c) for c in codes)


def save_scenario(
    store: Store,
    actor: Principal,
    name: str,
    sites: pd.DataFrame,
    results: dict[str, Any],
    *,
    replace: bool = False,
) -> None:
    """Keep sites and results as the scenario ``name`` (author, time, the communities of its
    sites), or replace an existing one's sites and results (``replace=True``; its author or
    an admin only; the editor and time are recorded); audited.
    """
    check_name(name)
    with store.transaction(lock=("scenarios",)) as tx:
        comms = communities_of(sites, tx.read("communities")) if tx.has("communities") else []
        if not all(actor.covers(c) for c in comms):
            raise AccessError("a site lies outside your jurisdiction")
        old = tx.read("scenarios", where={"id": name}) if tx.has("scenarios") else pd.DataFrame()
        row = scenario_row(name, actor.name, sites, results, comms)
        if replace:
            if not len(old) or not may_see(old.iloc[0], actor):
                raise NotFoundError("scenarios", [f"no scenario named {name!r}"])
            _may_change(old.iloc[0], actor)
            keep = ("sites", "results", "communities", "editor", "edited")
            tx.update("scenarios", name, {k: row[k].iloc[0] for k in keep})
        else:
            if len(old):
                raise ConflictError(
                    f"a scenario named {name!r} exists; delete it or choose another name"
                )
            tx.insert("scenarios", row)
        tx.audit(actor.name, "scenarios.update" if replace else "scenarios.create", name,
                 f"{len(sites)} sites")  # fmt: skip


def _may_change(row: pd.Series, actor: Principal) -> None:
    if row["author"] != actor.name and not actor.at_least("admin"):
        raise AccessError(
            f"scenario {row['id']!r} is {row['author']}'s; only its author or an admin may change it"
        )


def delete_scenario(store: Store, actor: Principal, name: str) -> None:
    """Delete a scenario (its author or an admin; audited)."""
    with store.transaction(lock=("scenarios",)) as tx:
        old = tx.read("scenarios", where={"id": name}) if tx.has("scenarios") else pd.DataFrame()
        if not len(old) or not may_see(old.iloc[0], actor):
            raise NotFoundError("scenarios", [f"no scenario named {name!r}"])
        _may_change(old.iloc[0], actor)
        tx.delete("scenarios", [name])
        tx.audit(actor.name, "scenarios.delete", name, None)


def scenarios(inputs: Inputs, who: Principal | None = None) -> pd.DataFrame:
    """The saved scenarios ``who`` may see (an empty table when there are none)."""
    f = inputs.get(("scenarios",))
    df = f.get("scenarios", pd.DataFrame(columns=SCENARIO_COLUMNS))
    if who is not None and who.scope is not None and len(df):
        df = df[[may_see(r, who) for _, r in df.iterrows()]]
    return df


def scenario(inputs: Inputs, name: str, who: Principal | None = None) -> dict[str, Any]:
    """One scenario with its sites and results decoded (as if absent for a caller who may
    not see it).
    """
    df = scenarios(inputs, who)
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
        "editor": _text(r.get("editor")), "edited": _text(r.get("edited")), "sites": sites,
        "results": json.loads(r["results"] or "null"),
    }  # fmt: skip


def _text(v: Any) -> str | None:
    return None if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v)


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
