"""``gridgis sites`` and ``gridgis scenarios``: test candidate sites, optimise new ones,
keep named scenarios in the store.
"""

from __future__ import annotations

import getpass
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

import geopandas as gpd

from api.coverage_cli import store_inputs
from api.options import JsonOpt, StoreOpt
from gis import access, siting
from gis import io as gio
from gis.coverage import compute
from gis.errors import NotFoundError, ValidationError
from gis.reference import facility_types
from gis.store import Store, open_store

app = typer.Typer(
    help="设施选址 — test candidate sites for a facility type, optimise where to build.",
    no_args_is_help=True,
)
scenarios_app = typer.Typer(
    help="选址方案 — saved scenarios: list, show, compare, delete.", no_args_is_help=True
)

TypeOpt = Annotated[
    str, typer.Option("--type", "-t", help="Facility type code, e.g. elderly_day_care.")
]
ModeOpt = Annotated[
    str | None,
    typer.Option(help="line (straight) or network (walking on roads; default when roads exist)."),
]
CandOpt = Annotated[
    Path | None,
    typer.Option(
        "--candidates",
        help="Candidate sites: a point file (GeoJSON/GPKG/SHP/CSV lon,lat) with id, optional area_m2.",
    ),
]
SaveOpt = Annotated[
    str | None, typer.Option("--save", help="Save the result as a scenario with this name.")
]
AuthorOpt = Annotated[
    str | None, typer.Option("--author", help="Who makes the scenario (default: the login name).")
]
BuildingsOpt = Annotated[Path | None, typer.Option("--buildings", help="File mode: buildings.")]
FacilitiesOpt = Annotated[Path | None, typer.Option("--facilities", help="File mode: facilities.")]
CommunitiesOpt = Annotated[
    Path | None, typer.Option("--communities", help="File mode: communities (optional).")
]
RoadsOpt = Annotated[Path | None, typer.Option("--roads", help="File mode: roads (network mode).")]
CrsOpt = Annotated[str, typer.Option(help="File mode: coordinates of the inputs.")]

RANK_COLUMNS = {
    "rank": "排名",
    "id": "候选点",
    "community_code": "所在社区",
    "newly_covered": "新增覆盖",
    "newly_covered_buildings": "新增覆盖楼栋",
    "uncovered_after": "剩余未覆盖",
    "share_before": "覆盖率(前)",
    "share_after": "覆盖率(后)",
    "area_per_100_before": "每百户面积(前)",
    "area_per_100_after": "每百户面积(后)",
    "access_before": "2SFCA(前)",
    "access_after": "2SFCA(后)",
}


def _planner(
    type_: str,
    mode: str | None,
    store: str | None,
    files: dict[str, Path] | None,
    crs: str,
) -> tuple[siting.Planner, Store | None]:
    """Coverage of the one type (distances measured once), as a siting context."""
    from api.cli import store_spec

    types = facility_types()
    s: Store | None = None
    if files is not None:
        layers = gio.load(files, crs=crs, facility_types=set(types["code"]))
        b, f = layers["buildings"], layers["facilities"]
        comm, grids, roads = layers.get("communities"), None, layers.get("roads")
    else:
        s = open_store(store_spec(store))
        i = store_inputs(s, types)
        types, b, f, comm = i["facility_types"], i["buildings"], i["facilities"], i["communities"]
        grids, roads = i["grids"], i["roads"]
    if type_ not in set(types["code"]):
        raise ValidationError(
            "sites",
            [f"unknown facility type {type_!r}; the catalogue has {', '.join(types['code'])}"],
        )
    cv = compute(b, f, types, comm, grids=grids, roads=roads, mode=mode, only=[type_], gaps=False)
    return siting.Planner.from_coverage(cv, b, f, types, type_), s


def _files(
    buildings: Path | None,
    facilities: Path | None,
    communities: Path | None,
    roads: Path | None,
) -> dict[str, Path] | None:
    from api.cli import file_inputs

    return file_inputs(
        "sites",
        {"buildings": buildings, "facilities": facilities},
        {"communities": communities, "roads": roads},
        out=True,
    )


def _read_candidates(path: Path, crs: str) -> gpd.GeoDataFrame:
    gdf = gio.read_points(path, crs)
    if "id" not in gdf:
        gdf = gdf.assign(id=[f"S{i + 1:04d}" for i in range(len(gdf))])
    return siting.candidates(gdf)


def _parse_at(at: list[str], area: list[float] | None) -> gpd.GeoDataFrame:
    pts, problems = [], []
    for a in at:
        try:
            lon, lat = (float(v) for v in a.replace("，", ",").split(","))
            pts.append((lon, lat))
        except ValueError:
            problems.append(f"--at {a!r}: expected LON,LAT, e.g. 117.5580,34.8560")
    areas: list[float | None] = list(area or [])
    if len(areas) == 1:
        areas = areas * len(pts)
    elif areas and len(areas) != len(pts):
        problems.append(f"{len(areas)} --area values for {len(pts)} --at sites")
    if problems:
        raise ValidationError("sites test", problems)
    return siting.candidates(pts, area=areas or None)


def _save(
    s: Store | None,
    name: str,
    author: str | None,
    sites: pd.DataFrame,
    results: dict[str, Any],
) -> None:
    if s is None:
        raise ValidationError("sites", ["--save keeps the scenario in a store; not in file mode"])
    row = pd.DataFrame(
        {
            "id": [name],
            "name": [name],
            "author": [author or getpass.getuser()],
            "created": [datetime.now().astimezone().isoformat(timespec="seconds")],
            "sites": [sites.to_json(orient="records", force_ascii=False)],
            "results": [json.dumps(results, ensure_ascii=False, default=float)],
        }
    )
    if not s.has("scenarios"):
        s.write({"scenarios": row})
        access.audit(s, row["author"].iloc[0], "scenarios.create", name, "gridgis sites --save")
        return
    if len(s.read("scenarios", where={"id": name})):
        raise ValidationError(
            "scenarios", [f"a scenario named {name!r} exists; delete it or choose another name"]
        )
    s.insert("scenarios", row)
    access.audit(s, row["author"].iloc[0], "scenarios.create", name, "gridgis sites --save")


def _sites_frame(p: siting.Planner, c: gpd.GeoDataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": c["id"].to_numpy(),
            "type": p.code,
            "lon": c.geometry.x.round(7).to_numpy(),
            "lat": c.geometry.y.round(7).to_numpy(),
            "area_m2": c["area_m2"].to_numpy(),
        }
    )


@app.command("test")
def test_sites(
    type_: TypeOpt,
    at: Annotated[
        list[str] | None,
        typer.Option("--at", help="A candidate site as LON,LAT (WGS84); repeat for more."),
    ] = None,
    area: Annotated[
        list[float] | None,
        typer.Option("--area", help="Floor area in m² (one for all sites, or one per --at)."),
    ] = None,
    candidates: CandOpt = None,
    mode: ModeOpt = None,
    buildings: BuildingsOpt = None,
    facilities: FacilitiesOpt = None,
    communities: CommunitiesOpt = None,
    roads: RoadsOpt = None,
    crs: CrsOpt = "wgs84",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Also write the tables as XLSX.")
    ] = None,
    save: SaveOpt = None,
    author: AuthorOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Test candidate sites: what each would newly cover, by grid and community, the gap
    left, floor area per 100 households and 2SFCA access before and after; ranked.
    """
    from api.cli import _table, console

    if not at and candidates is None:
        raise ValidationError("sites test", ["give a site with --at LON,LAT or --candidates F"])
    cands = (
        _read_candidates(candidates, crs) if candidates is not None else _parse_at(at or [], area)
    )
    p, s = _planner(type_, mode, store, _files(buildings, facilities, communities, roads), crs)
    ev = siting.evaluate(p, cands)
    results = {
        "kind": "test",
        "type": p.code,
        "mode": p.cv.mode,
        "ranking": json.loads(ev.ranking.to_json(orient="records", force_ascii=False)),
    }
    if save:
        _save(s, save, author, _sites_frame(p, cands), results)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        with pd.ExcelWriter(out) as xl:
            ev.ranking.rename(columns=RANK_COLUMNS).to_excel(
                xl, sheet_name="候选点排名", index=False
            )
            ev.by_unit.to_excel(xl, sheet_name="分网格社区", index=False)
    if as_json:
        results["by_unit"] = json.loads(ev.by_unit.to_json(orient="records", force_ascii=False))
        sys.stdout.write(json.dumps(results, ensure_ascii=False, indent=2) + "\n")
        return
    name = p.type.get("name_zh", p.code)
    shown = ev.ranking[[c for c in RANK_COLUMNS if c in ev.ranking]].rename(columns=RANK_COLUMNS)
    for c in shown.columns:
        if c.startswith("覆盖率"):
            shown[c] = shown[c].map(lambda v: f"{v:.2%}")
        elif c in ("新增覆盖", "剩余未覆盖"):
            shown[c] = shown[c].round().astype("Int64")
    console.print(
        _table(
            f"候选点评估 — {name} ({p.radius:g} m, {'路网步行' if p.network else '直线'})",
            shown.round(2),
        )
    )
    top = ev.by_unit[
        ev.by_unit["level"] == ("grid" if "grid" in set(ev.by_unit["level"]) else "community")
    ]
    if len(top):
        console.print(
            _table(
                "新增覆盖 (按网格)" if "grid" in set(top["level"]) else "新增覆盖 (按社区)",
                top.sort_values(["id", "newly_covered"], ascending=[True, False])
                .groupby("id")
                .head(5)
                .rename(
                    columns={
                        "id": "候选点",
                        "code": "代码",
                        "newly_covered": "新增覆盖",
                        "buildings": "楼栋",
                    }
                )
                .drop(columns="level"),
            )
        )
    if save:
        console.print(f"已保存方案 {save}")


@app.command("optimise")
def optimise_sites(
    type_: TypeOpt,
    k: Annotated[
        int | None, typer.Option("--k", "-k", help="Number of new sites (mclp, pmedian).")
    ] = None,
    objective: Annotated[
        str,
        typer.Option(
            help="mclp (cover the most), lscp (fewest sites covering all), pmedian (least distance)."
        ),
    ] = "mclp",
    candidates: CandOpt = None,
    generate: Annotated[
        int,
        typer.Option(help="Without --candidates: how many sites to draw from the gaps."),
    ] = 300,
    within: Annotated[
        str | None,
        typer.Option(help="Only demand in this district, street or community (code prefix)."),
    ] = None,
    time_limit: Annotated[float, typer.Option(help="Solver time limit in seconds.")] = 60.0,
    mode: ModeOpt = None,
    buildings: BuildingsOpt = None,
    facilities: FacilitiesOpt = None,
    communities: CommunitiesOpt = None,
    roads: RoadsOpt = None,
    crs: CrsOpt = "wgs84",
    save: SaveOpt = None,
    author: AuthorOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Optimise new sites for a type (existing facilities stay open): MCLP, LSCP or
    p-median, solved exactly with HiGHS under a time limit; the optimality gap is reported.
    """
    from api.cli import _table, console

    cands = _read_candidates(candidates, crs) if candidates is not None else None
    p, s = _planner(type_, mode, store, _files(buildings, facilities, communities, roads), crs)
    if cands is None:
        cands = siting.generate(p, generate)
    sol = siting.optimise(p, cands, k, objective, time_limit=time_limit, within=within)
    chosen = cands[cands["id"].isin(sol.chosen)]
    if save:
        _save(
            s,
            save,
            author,
            _sites_frame(p, chosen),
            {"kind": "optimise", "type": p.code, "mode": p.cv.mode, "k": k, **sol.as_dict()},
        )
    if as_json:
        payload = {
            "chosen": sol.chosen,
            "objective": sol.objective,
            "bound": sol.bound,
            "gap": sol.gap,
            "status": sol.status,
            "objective_name": objective,
            "newly_covered": sol.newly_covered,
            "uncoverable": sol.uncoverable,
            "candidates": int(len(cands)),
            "seconds": round(sol.seconds, 3),
            "sites": _sites_frame(p, chosen).to_dict("records"),
            "notes": sol.notes,
        }
        sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
        return
    label = {"mclp": "新增覆盖", "lscp": "最少站点数", "pmedian": "加权距离总和(米)"}[objective]
    name = {"mclp": "最大覆盖", "lscp": "集合覆盖", "pmedian": "p-中位"}[objective]
    console.print(
        f"选址优化 — {p.type.get('name_zh', p.code)} ({p.radius:g} m, "
        f"{'路网步行' if p.network else '直线'}) · {name} ({objective.upper()}) · "
        f"{len(cands)} 个候选点{'' if candidates else ' (由覆盖缺口生成)'}",
        highlight=False,
    )
    status = {"optimal": "最优", "time limit": "达到时限", "heuristic": "启发式"}[sol.status]
    facts = {
        label: f"{sol.objective:,.1f}",
        "界 (上界/下界)": f"{sol.bound:,.1f}",
        "最优性差距": f"{sol.gap:.3%}",
        "求解状态": status,
        "新增覆盖": f"{sol.newly_covered:,.0f}",
        "候选点都覆盖不到": f"{sol.uncoverable:,.0f}",
        "用时(秒)": f"{sol.seconds:.2f}",
    }
    console.print(_table("结果", pd.DataFrame({"指标": list(facts), "值": list(facts.values())})))
    shown = _sites_frame(p, chosen).drop(columns="type")
    shown["area_m2"] = shown["area_m2"].map(lambda v: "—" if pd.isna(v) else f"{v:g}")
    for c in ("lon", "lat"):
        shown[c] = shown[c].map(lambda v: f"{v:.6f}")
    shown = shown.rename(
        columns={"id": "站点", "lon": "经度", "lat": "纬度", "area_m2": "面积(m²)"}
    )
    console.print(_table("选中站点", shown))
    for note in sol.notes:
        console.print(f"注意: {note}", highlight=False)
    if save:
        console.print(f"已保存方案 {save}")


def _scenarios(store: str | None) -> tuple[Store, pd.DataFrame]:
    from api.cli import store_spec

    s = open_store(store_spec(store))
    if not s.has("scenarios"):
        return s, pd.DataFrame(columns=["id", "name", "author", "created", "sites", "results"])
    return s, s.read("scenarios")


def _summary(row: pd.Series) -> dict[str, Any]:
    r = json.loads(row["results"] or "{}")
    sites = json.loads(row["sites"])
    out: dict[str, Any] = {
        "方案": row["id"],
        "创建人": row["author"],
        "创建时间": row["created"],
        "类别": {"test": "候选点评估", "optimise": "选址优化"}.get(r.get("kind"), r.get("kind")),
        "设施类型": r.get("type"),
        "距离": r.get("mode"),
        "站点数": len(sites),
    }
    if r.get("kind") == "optimise":
        out |= {
            "目标": r.get("objective_name"),
            "目标值": r.get("objective"),
            "新增覆盖": r.get("newly_covered"),
            "最优性差距": r.get("gap"),
        }
    else:
        ranking = r.get("ranking", [])
        out |= {
            "目标": "—",
            "目标值": None,
            "新增覆盖": max((x["newly_covered"] for x in ranking), default=0),
            "最优性差距": None,
        }
    return out


@scenarios_app.command("list")
def list_scenarios(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """List the saved scenarios."""
    from api.cli import _table, console

    _, df = _scenarios(store)
    rows = pd.DataFrame([_summary(r) for _, r in df.iterrows()])
    if as_json:
        sys.stdout.write(json.dumps(rows.to_dict("records"), ensure_ascii=False, indent=2) + "\n")
        return
    if not len(rows):
        console.print("还没有保存的方案 (gridgis sites test|optimise … --save NAME)")
        return
    console.print(_table("选址方案", rows))


def _one(df: pd.DataFrame, name: str) -> pd.Series:
    hit = df[df["id"] == name]
    if not len(hit):
        known = ", ".join(df["id"]) or "none"
        raise NotFoundError("scenarios", [f"no scenario named {name!r} (saved: {known})"])
    return hit.iloc[0]


@scenarios_app.command("show")
def show_scenario(
    name: Annotated[str, typer.Argument(help="Scenario name.")],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one scenario: its sites and results."""
    from api.cli import _table, console

    _, df = _scenarios(store)
    row = _one(df, name)
    sites = pd.DataFrame(json.loads(row["sites"]))
    results = json.loads(row["results"] or "{}")
    if as_json:
        payload = {k: row[k] for k in ("id", "name", "author", "created")}
        payload |= {"sites": sites.to_dict("records"), "results": results}
        sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2, default=str) + "\n")
        return
    summary = _summary(row)
    console.print(
        _table(
            f"方案 {name}",
            pd.DataFrame({"项目": list(summary), "值": [str(v) for v in summary.values()]}),
        )
    )
    console.print(_table("站点", sites))


@scenarios_app.command("compare")
def compare_scenarios(
    names: Annotated[list[str], typer.Argument(help="Two or more scenario names.")],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Compare scenarios side by side."""
    from api.cli import _table, console

    _, df = _scenarios(store)
    if len(names) < 2:
        raise ValidationError("scenarios compare", ["name two or more scenarios"])
    table = pd.DataFrame({n: _summary(_one(df, n)) for n in names})
    if as_json:
        sys.stdout.write(table.to_json(force_ascii=False, indent=2, default_handler=str) + "\n")
        return
    table = table.map(
        lambda v: "—" if v is None else (f"{v:,.4g}" if isinstance(v, float) else str(v))
    )
    console.print(_table("方案对比", table.reset_index(names="项目")))


@scenarios_app.command("delete")
def delete_scenario(
    name: Annotated[str, typer.Argument(help="Scenario name.")],
    store: StoreOpt = None,
) -> None:
    """Delete a scenario."""
    from api.cli import console

    s, df = _scenarios(store)
    _one(df, name)
    s.delete("scenarios", [name])
    access.audit(s, getpass.getuser(), "scenarios.delete", name, "gridgis scenarios delete")
    console.print(f"已删除方案 {name}")
