"""``gridgis province``: a whole province county by county, on a dask cluster; its report."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from api.cli.output import (
    JsonOpt,
    OutXlsx,
    console,
    emit,
    err_console,
    open_,
    store_spec,
    table,
    xlsx,
)
from gis.errors import ValidationError
from gis.workflows import province as wp

app = typer.Typer(
    help="全省 — a province (Shandong) county by county: build on a dask cluster, report.",
    no_args_is_help=True,
)
ProvinceOpt = Annotated[
    str, typer.Option("--province", help="Province code (shipped: 37, Shandong).")
]
StoreOpt = Annotated[
    str | None,
    typer.Option("--store", "-s", help="The province's store: a postgresql+psycopg:// URL (a cluster's "
                 "workers all write to it); a .gpkg only with --workers 0.", show_default=False),
]  # fmt: skip


@app.command("build")
def build(
    store: StoreOpt = None,
    province: ProvinceOpt = "37",
    city: Annotated[
        list[str] | None, typer.Option("--city", help="Only this city (4 digits; repeat).")
    ] = None,
    county: Annotated[
        list[str] | None, typer.Option("--county", help="Only this county (6 digits; repeat).")
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers", min=0, help="Worker processes of a LocalCluster; 0: in this process."
        ),
    ] = 2,
    scheduler: Annotated[
        str | None,
        typer.Option("--scheduler", help="A running cluster's scheduler, tcp://host:8786."),
    ] = None,
    memory: Annotated[str, typer.Option("--memory", help="Memory limit per local worker.")] = "6GB",
    rules: Annotated[
        Path | None,
        typer.Option("--rules", help="Province rules (TOML: [province], [cities.<code>])."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Generate, grid, staff and cover every county (default the whole province).

    Each county is one transaction; a county already done with the same settings is
    skipped, so a run that stopped resumes where it was. A failed county is reported and
    the others finish (exit code 1).
    """
    url = store_spec(store)
    on_cluster = scheduler is not None or workers > 0
    if on_cluster and not url.startswith(("postgresql", "postgres")):
        raise ValidationError(
            "province build", ["a cluster's workers share one store: give --store postgresql+psycopg://…, "
                               "or --workers 0 to run in this process"],
        )  # fmt: skip
    r = wp.load_rules(rules, province)
    p = wp.sp.load_province(province)
    todo = sorted(set(county or []) | set(p.counties_of(city) if city else [])) or p.counties_of()
    for c in todo:
        p.county(c)  # an unknown county: one clear error before any work
    client = wp.connect(scheduler, workers, memory) if on_cluster else None
    try:
        run = _with_bar(url, todo, r, client, not as_json)
    finally:
        if client is not None:
            cluster = getattr(client, "cluster", None)
            client.close()
            if cluster is not None and scheduler is None:
                cluster.close()
    payload = {
        "counties": len(todo), "done": len([d for d in run.done if not d.get("skipped")]),
        "skipped": len([d for d in run.done if d.get("skipped")]), "failed": run.failed,
        "households": run.households, "seconds": round(run.seconds, 1),
    }  # fmt: skip

    def render() -> None:
        console.print(
            f"{payload['counties']} counties: {payload['done']} tasks run, {payload['skipped']} skipped "
            f"(done before with the same settings); {run.households:,} households generated in "
            f"{run.seconds:.0f} s", highlight=False,
        )  # fmt: skip
        for c, why in sorted(run.failed.items()):
            err_console.print(f"[red]failed[/red] {c}: {why}", highlight=False)

    emit(as_json, payload, render)
    if run.failed:
        sys.exit(1)


def _with_bar(
    url: str, todo: list[str], rules: wp.ProvinceRules, client: Any, show: bool
) -> wp.ProvinceRun:
    if not show:
        return wp.build(url, todo, rules=rules, client=client)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err_console, transient=False) as bar:
        task = bar.add_task("县区任务 county tasks", total=2 * len(todo))

        def tick(d: dict[str, Any]) -> None:
            what = "failed" if "error" in d else "skipped" if d.get("skipped") else "done"
            bar.update(task, advance=1, description=f"县区任务 {d['county']} {d['stage']} {what}")

        return wp.build(url, todo, rules=rules, client=client, tick=tick)


LABELS = {
    "code": "县区代码", "city_code": "城市代码", "name": "名称", "communities": "社区/村",
    "households": "户数", "census_households": "普查推算户数", "households_vs_census": "户数偏差",
    "rule_quota": "规则定额", "quota": "核定定额", "grid_workers": "网格员", "grids": "网格",
    "grids_in_band": "户数达标网格", "covered_community_service_station": "社区服务站覆盖率",
    "covered_elderly_day_care": "日间照料覆盖率", "covered_kindergarten": "幼儿园覆盖率",
    "covered_health_station": "卫生服务站覆盖率",
}  # fmt: skip


@app.command("report")
def report(
    store: StoreOpt = None,
    province: ProvinceOpt = "37",
    out: OutXlsx = None,
    as_json: JsonOpt = False,
) -> None:
    """The province's tables per city and per county: households, grids, staffing, coverage."""
    s = open_(store)
    rep = wp.report(s, province)
    if out is not None:
        xlsx(
            out,
            {
                "城市": rep.cities.rename(columns=LABELS),
                "县区": rep.counties.rename(columns=LABELS),
            },
        )

    def render() -> None:
        console.print(table("全省各市 cities", rep.cities.rename(columns=LABELS)))
        console.print(table("各县区 counties", rep.counties.rename(columns=LABELS)))

    emit(
        as_json,
        {"cities": rep.cities.to_dict("records"), "counties": rep.counties.to_dict("records")},
        render,
    )


@app.command("map")
def map_(
    store: StoreOpt = None,
    province: ProvinceOpt = "37",
    out: Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.")] = Path(
        "out/maps/province.html"
    ),
    base: Annotated[
        str, typer.Option("--base", help="Where the service runs, for the counties' links.")
    ] = "",
    lang: Annotated[str, typer.Option("--lang", help="zh or en.")] = "zh",
) -> None:
    """The province overview: cities over counties shaded by covered share, each county a
    link to its supervisor map (``/maps/city?district=…`` of the service at ``--base``).
    """
    from gis.reference import facility_types
    from maps import views

    rep = wp.report(open_(store), province)
    p = wp.sp.load_province(province)
    types = facility_types().set_index("code").loc[list(wp.REPORT_TYPES)].reset_index()
    links = {c: f"{base.rstrip('/')}/maps/city?district={c}" for c in rep.counties["code"]}
    gm = views.province_map(rep.counties, p.counties[["code", "city_code", "name", "geometry"]], types,
                            province=wp.sp.NAMES.get(province, province), links=links, lang=lang)  # fmt: skip
    path = gm.save(out)
    console.print(f"{path} ({path.stat().st_size / 1e6:.1f} MB)", highlight=False)
