"""``gridgis demo|import|export|info|serve``: the demo city, data in and out, the server."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from api.cli.maps import demo_maps
from api.cli.output import (
    JsonOpt,
    StoreOpt,
    actor,
    console,
    emit,
    open_,
    progress,
    settings,
    steps,
    store_spec,
    table,
)
from gis import export as gexport
from gis import schema
from gis.errors import InputFileError, ValidationError
from gis.workflows import data as wdata
from gis.workflows.coverage import city_table

CrsOpt = Annotated[
    list[str] | None,
    typer.Option(
        help="Coordinates of lon/lat inputs: wgs84 (default), cgcs2000, gcj02 (Amap/Tencent), bd09 "
        "(Baidu) for every file, or LAYER=SYSTEM per file (repeat), e.g. --crs buildings=gcj02.",
    ),
]


def parse_crs(given: list[str] | None) -> str | dict[str, str]:
    """``--crs`` as io.load takes it: one system, or layer → system."""
    if not given:
        return "wgs84"
    if len(given) == 1 and "=" not in given[0]:
        return given[0]
    out = {}
    for g in given:
        layer, sep, system = g.partition("=")
        if not sep:
            raise ValidationError(
                "--crs", [f"{g!r}: give one SYSTEM, or LAYER=SYSTEM for each file"]
            )
        out[layer.strip()] = system.strip()
    return out


def demo(
    store: StoreOpt = None,
    seed: Annotated[
        int, typer.Option(help="Seed of the synthetic city (same seed, same city).")
    ] = 20201101,
    as_json: JsonOpt = False,
) -> None:
    """Build the default city, Zaozhuang (枣庄市), into a store and print a summary.

    Real district outlines and NBS community codes; synthetic (seeded, labelled) township
    and community polygons, roads, buildings with households, facilities and workers.
    """
    spec = store_spec(store)
    t0 = time.perf_counter()
    s = open_(spec)
    with progress(not as_json, "网格划分 grids") as (say, tick):
        d = wdata.demo(s, seed=seed, say=say, tick=tick)
        say("maps: city overviews, one street in detail, the sample siting scenario")
        maps_dir = (Path(spec).parent if "://" not in spec else Path("out")) / "maps"
        written = demo_maps(d, maps_dir)
    summary = wdata.city_summary(d.frames)
    elapsed = time.perf_counter() - t0
    coverage = city_table(d.coverage, d.frames["facility_types"])
    staffing = d.staffing()

    def render() -> None:
        console.print(table("枣庄市 demo city (synthetic detail, real codes)", summary))
        console.print(
            f"社区工作者: 规则定额 {staffing['urban_rule_total']:,} → 核定 {staffing['urban_quota_total']:,} "
            f"(核定总量 {staffing['cap']:,}); 网格员负担 300–400 户 (可达处) "
            f"{staffing['grid_workers_in_band_where_possible']:.1%}"
        )
        console.print(table("服务覆盖 (路网步行距离)", coverage))
        o = d.frames.get("orders")
        if o is not None and len(o):
            from gis import orders as om
            from gis.workflows.orders import wall_clock

            red = int((om.colours(o, wall_clock()) == "red").sum())
            console.print(
                f"工单 (近 30 天, 合成): {len(o):,} 件, 未办结 {int(o['state'].isin(om.OPEN).sum()):,}, "
                f"当前超时 {red:,} — gridgis orders report / GET /maps/orders",
                highlight=False,
            )
        console.print("地图 maps:")
        for path in written:
            console.print(f"  {path}  ({path.stat().st_size / 1e6:.1f} MB)", highlight=False)
        console.print(f"store: [bold]{spec}[/bold]  ({elapsed:.1f} s)")

    payload = {"store": spec, "seconds": round(elapsed, 2), "districts": summary.to_dict("records"),
               "staffing": staffing, "coverage": coverage.to_dict("records"),
               "maps": [str(p) for p in written]}  # fmt: skip
    emit(as_json, payload, render)


def import_(
    communities: Annotated[
        Path | None, typer.Option(help="Community polygons: code (12 digits), name, …")
    ] = None,
    buildings: Annotated[
        Path | None,
        typer.Option(help="Buildings: points, or CSV/XLSX with lon, lat; id, households, …"),
    ] = None,
    facilities: Annotated[
        Path | None, typer.Option(help="Facilities: points; id, name, type, area_m2, status")
    ] = None,
    workers: Annotated[
        Path | None,
        typer.Option(help="Workers (CSV/XLSX): id, name, community_code, post, hired, education"),
    ] = None,
    roads: Annotated[
        Path | None, typer.Option(help="Road lines (any kind column is kept).")
    ] = None,
    crs: CrsOpt = None,
    encoding: Annotated[
        str | None, typer.Option(help="Attribute encoding when detection fails, e.g. GBK.")
    ] = None,
    replace_with_empty: Annotated[
        bool, typer.Option("--replace-with-empty", help="Let a file with no rows empty its layer.")
    ] = False,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair", help="Accept invalid polygons made valid (each repair is listed)."
        ),
    ] = False,
    tolerance: Annotated[
        float, typer.Option(help="Metres a building may lie outside the community its code names.")
    ] = 50.0,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Import files into a store: all files are validated first, then written in one step.

    Any bad input is reported with every problem and its row, and nothing is written.
    """
    given = {"communities": communities, "buildings": buildings, "facilities": facilities,
             "workers": workers, "roads": roads}  # fmt: skip
    files = {k: v for k, v in given.items() if v is not None}
    if not files:
        raise typer.BadParameter(
            "give at least one of --communities, --buildings, --facilities, --workers, --roads"
        )
    s = open_(store)
    with steps(not as_json) as say:
        done = wdata.import_files(s, actor(), files, crs=parse_crs(crs), encoding=encoding,
                                  replace_with_empty=replace_with_empty, repair=repair,
                                  tolerance_m=tolerance, say=say)  # fmt: skip

    def render() -> None:
        console.print(table(f"imported into {s.url}", pd.DataFrame([done.counts])))
        for r in done.repairs:
            console.print(f"已修复 repaired: {r}", highlight=False)

    emit(as_json, {"store": s.url, "imported": done.counts, "repairs": done.repairs}, render)


def export(
    layer: Annotated[str, typer.Argument(help=f"Layer to export: {', '.join(schema.LAYERS)}.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output file: .geojson, .gpkg, .shp, .csv or .xlsx.")
    ],
    crs: Annotated[
        str, typer.Option(help="Coordinates to write: wgs84, cgcs2000, gcj02, bd09.")
    ] = "wgs84",
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Export one layer of a store to a file (format from the extension)."""
    n = gexport.write(open_(store).read(layer), out, layer=layer, system=crs)
    emit(
        as_json,
        {"layer": layer, "rows": n, "out": str(out)},
        lambda: console.print(f"wrote {n:,} {layer} to {out}"),
    )


def info(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Show what a store holds: layers, row counts and extents."""
    src = open_(store)
    held = src.layers()
    if not held:
        raise InputFileError(
            f"{src.url} holds no gridgis layers (run `gridgis demo` or `gridgis import`)"
        )
    rows = [
        {
            "layer": name,
            "名称": schema.layer(name).label,
            "rows": n,
            "geometry": schema.layer(name).geometry or "—",
        }
        for name, n in held.items()
    ]

    def render() -> None:
        console.print(f"store: {src.url}", highlight=False)
        console.print(table("", pd.DataFrame(rows)))

    emit(as_json, {"store": src.url, "layers": rows}, render)


def serve(
    store: StoreOpt = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Server processes (state they share — jobs, keys — is in the store).",
        ),
    ] = 1,
) -> None:
    """Serve the store over HTTP: OGC API – Features, /locate, maps at /maps/…, docs at
    /docs. Clients send a key (gridgis keys create) as X-API-Key; GRIDGIS_ANONYMOUS_READ=1
    lets anonymous clients read what a viewer may. ``--workers N`` runs N processes on
    one port (the GeoPackage has one writer at a time whatever N is; PostGIS scales).
    """
    import os

    import uvicorn

    from api.http import create_app

    spec = store_spec(store)
    open_(spec)  # a store that cannot be opened fails here, once, not in every worker
    console.print(f"gridgis serving {spec} at http://{host}:{port}/  (API docs /docs, maps /maps/coverage)"
                  + (f", {workers} processes" if workers > 1 else ""), highlight=False)  # fmt: skip
    # the locator and the grids' properties are built at start (a province's take seconds)
    os.environ.setdefault("GRIDGIS_WARM", "1")
    if workers == 1:
        uvicorn.run(create_app(spec, settings=settings().model_copy(update={"warm": True})),
                    host=host, port=port, log_level="warning")  # fmt: skip
        return
    # each worker process builds its app from the environment
    os.environ.update(GRIDGIS_STORE=spec, GRIDGIS_PROCESSES=str(workers))
    uvicorn.run("api.http.app:from_environment", factory=True, workers=workers, host=host,
                port=port, log_level="warning")  # fmt: skip
