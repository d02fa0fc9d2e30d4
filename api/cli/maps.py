"""``gridgis map``: coverage, staffing and scenario maps as self-contained HTML files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from api.cli.output import StoreOpt, console, open_, settings
from gis import mapdata
from gis.workflows.base import StoreInputs
from gis.workflows.data import Demo
from maps import views
from maps.base import GridMap

app = typer.Typer(
    help="地图 — coverage, staffing and scenario maps (HTML, opens offline).", no_args_is_help=True
)

StreetOpt = Annotated[
    str | None, typer.Option("--street", help="Detailed map of one street/township (9-digit code).")
]
CommunityOpt = Annotated[
    str | None, typer.Option("--community", help="Detailed map of one community (12-digit code).")
]
TilesOpt = Annotated[
    str,
    typer.Option(
        "--tiles", help="Base map: none (offline), osm, tianditu (needs a key) or amap (GCJ-02)."
    ),
]
KeyOpt = Annotated[
    str | None,
    typer.Option(
        "--tianditu-key", help="Tianditu key (default: $TIANDITU_KEY).", show_default=False
    ),
]
LangOpt = Annotated[str, typer.Option("--lang", help="Labels: zh (default) or en.")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="The HTML file to write.")]


def _save(gm: GridMap, out: Path) -> None:
    path = gm.save(out)
    console.print(f"地图已写入 {path}  ({path.stat().st_size / 1e6:.1f} MB)", highlight=False)


def _frames(store: str | None, kind: str) -> dict:
    return StoreInputs(open_(store)).get(mapdata.LAYERS[kind])


@app.command("coverage")
def coverage_map(
    out: OutOpt,
    type_: Annotated[
        str | None,
        typer.Option("--type", "-t", help="Facility type (city overview: all types when omitted)."),
    ] = None,
    street: StreetOpt = None,
    community: CommunityOpt = None,
    tiles: TilesOpt = "none",
    key: KeyOpt = None,
    lang: LangOpt = "zh",
    store: StoreOpt = None,
) -> None:
    """Coverage map: shares by grid (or community), facilities with their service areas,
    gap areas, uncovered households.
    """
    key = key or settings().tianditu_key
    if street or community:
        f = _frames(store, "detail")
        d = mapdata.coverage_detail(f, type_, mapdata.scope(f, street, community))
        _save(views.coverage_detail_map(d, tiles=tiles, lang=lang, key=key), out)
    else:
        o = mapdata.coverage_overview(_frames(store, "coverage_city"), type_, lang)
        _save(views.coverage_overview_map(o, tiles=tiles, lang=lang, key=key), out)


@app.command("staffing")
def staffing_map(
    out: OutOpt,
    street: StreetOpt = None,
    community: CommunityOpt = None,
    tiles: TilesOpt = "none",
    key: KeyOpt = None,
    lang: LangOpt = "zh",
    store: StoreOpt = None,
) -> None:
    """Staffing map: grids by responsible worker, loads, communities flagged."""
    f = _frames(store, "detail" if street or community else "staffing_city")
    v = mapdata.staffing(f, mapdata.scope(f, street, community), lang)
    _save(views.staffing_map(v, tiles=tiles, lang=lang, key=key or settings().tianditu_key), out)


@app.command("scenario")
def scenario_map(
    name: Annotated[str, typer.Argument(help="A saved scenario (gridgis scenarios list).")],
    out: OutOpt,
    street: StreetOpt = None,
    tiles: TilesOpt = "none",
    key: KeyOpt = None,
    lang: LangOpt = "zh",
    store: StoreOpt = None,
) -> None:
    """Scenario map: candidate sites, coverage before and after, ranking."""
    v = mapdata.scenario(_frames(store, "scenario"), name, street)
    _save(views.scenario_map(v, tiles=tiles, lang=lang, key=key or settings().tianditu_key), out)


def demo_maps(d: Demo, out_dir: Path) -> list[Path]:
    """The demo's maps: city overviews, one street in detail (coverage, staffing, work
    orders), the sample scenario.
    """
    from gis.workflows.orders import wall_clock

    f, street, t = d.frames, d.street, "elderly_day_care"
    detail = f"coverage_{street}_{t}.html"
    sc = mapdata.scope(f, street)
    overview = mapdata.coverage_overview(f, None)
    return [
        views.coverage_overview_map(overview, links={street: detail}).save(
            out_dir / "coverage_city.html"
        ),
        views.staffing_map(mapdata.staffing(f, mapdata.scope(f))).save(
            out_dir / "staffing_city.html"
        ),
        views.coverage_detail_map(mapdata.coverage_detail(f, t, sc)).save(out_dir / detail),
        views.staffing_map(mapdata.staffing(f, sc)).save(out_dir / f"staffing_{street}.html"),
        views.scenario_map(mapdata.scenario(f, d.scenario)).save(out_dir / "scenario_demo.html"),
        views.orders_map(mapdata.orders(f, sc, wall_clock())).save(
            out_dir / f"orders_{street}.html"
        ),
    ]
