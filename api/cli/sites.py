"""``gridgis sites`` and ``gridgis scenarios``: test candidate sites, optimise new ones,
keep named scenarios in the store.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

import geopandas as gpd

from api.cli.output import JsonOpt, StoreOpt, actor, console, emit, file_inputs, open_, table, xlsx
from gis import io as gio
from gis import siting
from gis.errors import ValidationError
from gis.workflows import sites as wsites
from gis.workflows.base import StoreInputs

app = typer.Typer(help="设施选址 — test candidate sites for a facility type, optimise where to build.",
                  no_args_is_help=True)  # fmt: skip
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
    typer.Option("--candidates", help="Candidate sites: a point file (GeoJSON/GPKG/SHP/CSV lon,lat) with id, optional area_m2."),
]  # fmt: skip
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
    "rank": "排名", "id": "候选点", "community_code": "所在社区", "newly_covered": "新增覆盖",
    "newly_covered_buildings": "新增覆盖楼栋", "uncovered_after": "剩余未覆盖", "share_before": "覆盖率(前)",
    "share_after": "覆盖率(后)", "area_per_100_before": "每百户面积(前)", "area_per_100_after": "每百户面积(后)",
    "access_before": "2SFCA(前)", "access_after": "2SFCA(后)",
}  # fmt: skip
UNIT_COLUMNS = {"id": "候选点", "code": "代码", "newly_covered": "新增覆盖", "buildings": "楼栋"}


def _planner(
    type_: str, mode: str | None, store: str | None, files: dict[str, Path] | None, crs: str
) -> siting.Planner:
    if files is not None:
        return wsites.planner_from_files(files, type_, crs=crs, mode=mode)
    return wsites.planner(StoreInputs(open_(store)), type_, mode)


def _files(
    buildings: Path | None, facilities: Path | None, communities: Path | None, roads: Path | None
) -> Any:
    return file_inputs("sites", {"buildings": buildings, "facilities": facilities},
                       {"communities": communities, "roads": roads}, out=True)  # fmt: skip


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
    store: str | None, files: Any, name: str, author: str | None, sites: pd.DataFrame, results: dict
) -> None:
    if files is not None:
        raise ValidationError("sites", ["--save keeps the scenario in a store; not in file mode"])
    wsites.save_scenario(open_(store), actor(author), name, sites, results)


@app.command("test")
def test_sites(
    type_: TypeOpt,
    at: Annotated[list[str] | None, typer.Option("--at", help="A candidate site as LON,LAT (WGS84); repeat for more.")] = None,
    area: Annotated[list[float] | None, typer.Option("--area", help="Floor area in m² (one for all sites, or one per --at).")] = None,
    candidates: CandOpt = None, mode: ModeOpt = None, buildings: BuildingsOpt = None,
    facilities: FacilitiesOpt = None, communities: CommunitiesOpt = None, roads: RoadsOpt = None,
    crs: CrsOpt = "wgs84",
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Also write the tables as XLSX.")] = None,
    save: SaveOpt = None, author: AuthorOpt = None, store: StoreOpt = None, as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Test candidate sites: what each would newly cover, by grid and community, the gap
    left, floor area per 100 households and 2SFCA access before and after; ranked.
    """
    if not at and candidates is None:
        raise ValidationError("sites test", ["give a site with --at LON,LAT or --candidates F"])
    cands = (
        _read_candidates(candidates, crs) if candidates is not None else _parse_at(at or [], area)
    )
    files = _files(buildings, facilities, communities, roads)
    p = _planner(type_, mode, store, files, crs)
    t = wsites.test_sites(p, cands)
    if save:
        _save(store, files, save, author, t.sites, t.results)
    ev = t.evaluation
    if out is not None:
        xlsx(out, {"候选点排名": ev.ranking.rename(columns=RANK_COLUMNS), "分网格社区": ev.by_unit})
    if as_json:
        emit(True, {**t.results, "by_unit": json.loads(ev.by_unit.to_json(orient="records", force_ascii=False))},
             lambda: None)  # fmt: skip
        return
    _print_test(p, ev, save)


def _print_test(p: siting.Planner, ev: siting.Evaluation, saved: str | None) -> None:
    shown = ev.ranking[[c for c in RANK_COLUMNS if c in ev.ranking]].rename(columns=RANK_COLUMNS)
    for c in shown.columns:
        if c.startswith("覆盖率"):
            shown[c] = shown[c].map(lambda v: f"{v:.2%}")
        elif c in ("新增覆盖", "剩余未覆盖"):
            shown[c] = shown[c].round().astype("Int64")
    how = "路网步行" if p.network else "直线"
    console.print(
        table(
            f"候选点评估 — {p.type.get('name_zh', p.code)} ({p.radius:g} m, {how})", shown.round(2)
        )
    )
    level = "grid" if "grid" in set(ev.by_unit["level"]) else "community"
    top = ev.by_unit[ev.by_unit["level"] == level]
    if len(top):
        top = (
            top.sort_values(["id", "newly_covered"], ascending=[True, False]).groupby("id").head(5)
        )
        title = "新增覆盖 (按网格)" if level == "grid" else "新增覆盖 (按社区)"
        console.print(table(title, top.rename(columns=UNIT_COLUMNS).drop(columns="level")))
    if saved:
        console.print(f"已保存方案 {saved}")


@app.command("optimise")
def optimise_sites(
    type_: TypeOpt,
    k: Annotated[int | None, typer.Option("--k", "-k", help="Number of new sites (mclp, pmedian).")] = None,
    objective: Annotated[str, typer.Option(help="mclp (cover the most), lscp (fewest sites covering all), pmedian (least distance).")] = "mclp",
    candidates: CandOpt = None,
    generate: Annotated[int, typer.Option(help="Without --candidates: how many sites to draw from the gaps.")] = 300,
    within: Annotated[str | None, typer.Option(help="Only demand in this district, street or community (code prefix).")] = None,
    time_limit: Annotated[float, typer.Option(help="Solver time limit in seconds.")] = 60.0,
    mode: ModeOpt = None, buildings: BuildingsOpt = None, facilities: FacilitiesOpt = None,
    communities: CommunitiesOpt = None, roads: RoadsOpt = None, crs: CrsOpt = "wgs84",
    save: SaveOpt = None, author: AuthorOpt = None, store: StoreOpt = None, as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Optimise new sites for a type (existing facilities stay open): MCLP, LSCP or
    p-median, solved exactly with HiGHS under a time limit; the optimality gap is reported.
    """
    cands = _read_candidates(candidates, crs) if candidates is not None else None
    files = _files(buildings, facilities, communities, roads)
    p = _planner(type_, mode, store, files, crs)
    opt = wsites.optimise_sites(
        p, cands, k, objective, generate=generate, time_limit=time_limit, within=within
    )
    if save:
        _save(store, files, save, author, opt.sites, {**opt.results, "objective_name": objective})
    sol = opt.solution
    if as_json:
        emit(True, {**sol.as_dict(), "objective_name": objective, "candidates": int(len(opt.candidates)),
                    "seconds": round(sol.seconds, 3), "sites": opt.sites.to_dict("records")}, lambda: None)  # fmt: skip
        return
    _print_optimised(p, opt, objective, candidates is None)
    if save:
        console.print(f"已保存方案 {save}")


def _print_optimised(
    p: siting.Planner, opt: wsites.Optimised, objective: str, generated: bool
) -> None:
    sol = opt.solution
    label = {"mclp": "新增覆盖", "lscp": "最少站点数", "pmedian": "加权距离总和(米)"}[objective]
    name = {"mclp": "最大覆盖", "lscp": "集合覆盖", "pmedian": "p-中位"}[objective]
    console.print(
        f"选址优化 — {p.type.get('name_zh', p.code)} ({p.radius:g} m, {'路网步行' if p.network else '直线'}) · "
        f"{name} ({objective.upper()}) · {len(opt.candidates)} 个候选点{' (由覆盖缺口生成)' if generated else ''}",
        highlight=False,
    )
    status = {"optimal": "最优", "time limit": "达到时限", "heuristic": "启发式"}[sol.status]
    facts = {label: f"{sol.objective:,.1f}", "界 (上界/下界)": f"{sol.bound:,.1f}", "最优性差距": f"{sol.gap:.3%}",
             "求解状态": status, "新增覆盖": f"{sol.newly_covered:,.0f}",
             "候选点都覆盖不到": f"{sol.uncoverable:,.0f}", "用时(秒)": f"{sol.seconds:.2f}"}  # fmt: skip
    console.print(table("结果", pd.DataFrame({"指标": list(facts), "值": list(facts.values())})))
    shown = opt.sites.drop(columns="type")
    shown["area_m2"] = shown["area_m2"].map(lambda v: "—" if pd.isna(v) else f"{v:g}")
    for c in ("lon", "lat"):
        shown[c] = shown[c].map(lambda v: f"{v:.6f}")
    console.print(
        table(
            "选中站点",
            shown.rename(
                columns={"id": "站点", "lon": "经度", "lat": "纬度", "area_m2": "面积(m²)"}
            ),
        )
    )
    for note in sol.notes:
        console.print(f"注意: {note}", highlight=False)


# --- scenarios ------------------------------------------------------------------------------


@scenarios_app.command("list")
def list_scenarios(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """List the saved scenarios."""
    inputs = StoreInputs(open_(store))
    rows = pd.DataFrame(
        [wsites.summary(wsites.scenario(inputs, n)) for n in wsites.scenarios(inputs)["id"]]
    )

    def render() -> None:
        if not len(rows):
            console.print("还没有保存的方案 (gridgis sites test|optimise … --save NAME)")
        else:
            console.print(table("选址方案", rows))

    emit(as_json, rows.to_dict("records"), render)


@scenarios_app.command("show")
def show_scenario(
    name: Annotated[str, typer.Argument(help="Scenario name.")],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show one scenario: its sites and results."""
    s = wsites.scenario(StoreInputs(open_(store)), name)

    def render() -> None:
        summary = wsites.summary(s)
        console.print(
            table(
                f"方案 {name}",
                pd.DataFrame({"项目": list(summary), "值": [str(v) for v in summary.values()]}),
            )
        )
        console.print(table("站点", pd.DataFrame(s["sites"])))

    emit(as_json, s, render)


@scenarios_app.command("compare")
def compare_scenarios(
    names: Annotated[list[str], typer.Argument(help="Two or more scenario names.")],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Compare scenarios side by side."""
    if len(names) < 2:
        raise ValidationError("scenarios compare", ["name two or more scenarios"])
    inputs = StoreInputs(open_(store))
    t = pd.DataFrame({n: wsites.summary(wsites.scenario(inputs, n)) for n in names})
    if as_json:
        emit(True, json.loads(t.to_json(force_ascii=False, default_handler=str)), lambda: None)
        return
    t = t.map(lambda v: "—" if v is None else (f"{v:,.4g}" if isinstance(v, float) else str(v)))
    console.print(table("方案对比", t.reset_index(names="项目")))


@scenarios_app.command("delete")
def delete_scenario(
    name: Annotated[str, typer.Argument(help="Scenario name.")], store: StoreOpt = None
) -> None:
    """Delete a scenario."""
    wsites.delete_scenario(open_(store), actor(), name)
    console.print(f"已删除方案 {name}")
