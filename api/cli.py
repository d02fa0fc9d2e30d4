"""The ``gridgis`` command line: build the demo city, import, export, inspect a store."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from api.options import JsonOpt, StoreOpt
from gis import crs as gcrs
from gis import export as gexport
from gis import io as gio
from gis import schema
from gis.assign import assign
from gis.coverage import compute as compute_coverage
from gis.errors import GridError, InputFileError, ValidationError
from gis.reference import facility_types
from gis.staffing import payroll, quotas
from gis.store import open_store

DEFAULT_STORE = "out/zaozhuang.gpkg"

app = typer.Typer(
    name="gridgis",
    help="社区网格化服务管理 GIS — grids, workers and facility coverage for community governance.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# wide enough for the summary tables when output goes to a file or a pipe
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)
_state = {"debug": False}


def _register_subcommands() -> None:
    from api import coverage_cli, grids_cli, keys_cli, map_cli, sites_cli, staff_cli

    app.add_typer(grids_cli.app, name="grids")
    app.add_typer(staff_cli.app, name="staff")
    app.add_typer(sites_cli.app, name="sites")
    app.add_typer(sites_cli.scenarios_app, name="scenarios")
    app.add_typer(map_cli.app, name="map")
    app.add_typer(keys_cli.app, name="keys")
    app.command("coverage")(coverage_cli.coverage)


def file_inputs(
    command: str,
    required: dict[str, Path | None],
    optional: dict[str, Path | None] | None = None,
    out: Path | None | bool = True,
) -> dict[str, Path] | None:
    """File mode (no store) when any required input file is given: then all of them (and
    ``--out`` unless ``out`` is ``True``) must be; returns layer → path, else ``None``.
    """
    if all(v is None for v in required.values()):
        return None
    missing = [f"--{k}" for k, v in required.items() if v is None]
    if out is None:
        missing.append("--out")
    if missing:
        raise ValidationError(command, [f"file mode also needs {', '.join(missing)}"])
    given = {k: v for k, v in {**required, **(optional or {})}.items() if v is not None}
    return given


def store_spec(store: str | None) -> str:
    """The store to use: the option, else ``$GRIDGIS_STORE``, else the demo file."""
    return store or os.environ.get("GRIDGIS_STORE") or DEFAULT_STORE


@contextmanager
def _steps(enabled: bool = True) -> Iterator[Callable[[str], None]]:
    """A rich progress display fed by step descriptions (silent when disabled)."""
    if not enabled:
        yield lambda _msg: None
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as progress:
        task: list[Any] = []

        def say(msg: str) -> None:
            if task:
                progress.update(task[0], completed=1)
                progress.stop_task(task[0])
            task[:] = [progress.add_task(msg, total=1)]

        yield say


def _cell(v: Any) -> str:
    if isinstance(v, bool | np.bool_):
        return "是" if v else "否"
    if isinstance(v, int | np.integer):
        return f"{v:,}"
    if isinstance(v, float | np.floating):
        return f"{v:,.3f}"
    return str(v)


def _table(title: str, df: pd.DataFrame) -> Table:
    t = Table(title=title)
    for c in df.columns:
        t.add_column(str(c), justify="right" if pd.api.types.is_numeric_dtype(df[c]) else "left")
    for row in df.itertuples(index=False):
        t.add_row(*[_cell(v) for v in row])
    return t


def _emit(as_json: bool, payload: Any, render: Callable[[], None]) -> None:
    if as_json:
        sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
    else:
        render()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
) -> None:
    _state["debug"] = debug


def city_summary(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per district: townships, communities (urban/rural), households, residents, buildings."""
    d = frames["districts"][["code", "name"]]
    s = frames["streets"].groupby("district_code").size()
    c = frames["communities"]
    b = frames["buildings"].merge(
        c[["code", "district_code"]], left_on="community_code", right_on="code"
    )
    w = frames.get("workers")
    g = frames.get("grids")
    rows = []
    for code, name in d.itertuples(index=False):
        cc = c[c["district_code"] == code]
        bb = b[b["district_code"] == code]
        rows.append(
            {
                "区县代码": code,
                "区县": name,
                "街道/乡镇": int(s.get(code, 0)),
                "城市社区": int((cc["kind"] == "urban").sum()),
                "行政村": int((cc["kind"] == "rural").sum()),
                "楼栋/院落": len(bb),
                "户数": int(bb["households"].sum()),
                "人口": int(bb["residents"].sum()),
                "网格": int(g["community_code"].str[:6].eq(code).sum()) if g is not None else 0,
                "社区工作者": int(w["community_code"].str[:6].eq(code).sum())
                if w is not None
                else 0,
            }
        )
    out = pd.DataFrame(rows)
    total = {k: (int(out[k].sum()) if k not in ("区县代码", "区县") else "") for k in out.columns}
    total["区县"] = "合计"
    return pd.concat([out, pd.DataFrame([total])], ignore_index=True)


@app.command()
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
    from api.grids_cli import community_progress
    from gis.partition import divide
    from gis.synth import build_city

    with _steps(not as_json) as say:
        frames = build_city(seed=seed, progress=say)
    with community_progress(not as_json, "网格划分 grids") as tick:
        frames["grids"] = divide(
            frames["communities"], frames["buildings"], frames["roads"], progress=tick
        ).grids
    with _steps(not as_json) as say:
        say("staffing: quotas, workers into grids, grades")
        hh = frames["buildings"].groupby("community_code")["households"].sum()
        quota = quotas(frames["communities"], hh)
        staffed = assign(frames["grids"], quota, frames["workers"])
        frames["workers"], _ = payroll(staffed.workers, on=date.today())
        frames["workers"] = frames["workers"][schema.layer("workers").columns]
        frames["assignments"] = staffed.assignments
        say("coverage of every facility type (walking distance on the roads)")
        cov = compute_coverage(
            frames["buildings"],
            frames["facilities"],
            frames["facility_types"],
            frames["communities"],
            grids=frames["grids"],
            roads=frames["roads"],
        )
        frames["coverage"], frames["gaps"] = cov.table, cov.gaps
        say(f"writing {sum(len(f) for f in frames.values()):,} rows to {spec}")
        s = open_store(spec)
        s.write(frames)
        say("maps: city overviews, one street in detail, a sample siting scenario")
        from api.map_cli import demo_maps

        maps_dir = (Path(spec).parent if "://" not in spec else Path("out")) / "maps"
        written = demo_maps({**frames, "coverage": cov.table, "gaps": cov.gaps}, cov, s, maps_dir)
    summary = city_summary(frames)
    elapsed = time.perf_counter() - t0

    from api.coverage_cli import city_table

    coverage_table = city_table(cov, frames["facility_types"])
    urban = quota["kind"] == "urban"
    staffing = {
        "urban_quota_total": int(quota.loc[urban, "quota"].sum()),
        "urban_rule_total": int(quota.loc[urban, "rule_quota"].sum()),
        "cap": 1540,
        "grid_workers_in_band_where_possible": round(staffed.share_in_band_where_possible, 4),
    }

    def render() -> None:
        console.print(_table("枣庄市 demo city (synthetic detail, real codes)", summary))
        console.print(
            f"社区工作者: 规则定额 {staffing['urban_rule_total']:,} → 核定 {staffing['urban_quota_total']:,} "
            f"(核定总量 {staffing['cap']:,}); 网格员负担 300–400 户 (可达处) "
            f"{staffing['grid_workers_in_band_where_possible']:.1%}"
        )
        console.print(_table("服务覆盖 (路网步行距离)", coverage_table))
        console.print("地图 maps:")
        for path in written:
            console.print(f"  {path}  ({path.stat().st_size / 1e6:.1f} MB)", highlight=False)
        console.print(f"store: [bold]{spec}[/bold]  ({elapsed:.1f} s)")

    _emit(
        as_json,
        {
            "store": spec,
            "seconds": round(elapsed, 2),
            "districts": summary.to_dict("records"),
            "staffing": staffing,
            "coverage": coverage_table.to_dict("records"),
            "maps": [str(p) for p in written],
        },
        render,
    )


@app.command("import")
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
    crs: Annotated[
        str,
        typer.Option(
            help="Coordinates of lon/lat inputs: wgs84, cgcs2000, gcj02 (Amap/Tencent), bd09 (Baidu)."
        ),
    ] = "wgs84",
    encoding: Annotated[
        str | None, typer.Option(help="Attribute encoding when detection fails, e.g. GBK.")
    ] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Import files into a store: all files are validated first, then written in one step.

    Any bad input is reported with every problem and its row, and nothing is written.
    """
    files = {
        k: v
        for k, v in {
            "communities": communities,
            "buildings": buildings,
            "facilities": facilities,
            "workers": workers,
            "roads": roads,
        }.items()
        if v is not None
    }
    if not files:
        raise typer.BadParameter(
            "give at least one of --communities, --buildings, --facilities, --workers, --roads"
        )
    gcrs.check_system(crs)
    target = open_store(store_spec(store))
    held = target.layers()
    existing = (
        target.read("communities") if "communities" not in files and "communities" in held else None
    )
    types = target.read("facility_types") if "facility_types" in held else facility_types()
    with _steps(not as_json) as say:
        say("reading and validating")
        frames = gio.load(
            files,
            crs=crs,
            encoding=encoding,
            communities=existing,
            facility_types=set(types["code"]),
        )
        if "facility_types" not in held:
            frames["facility_types"] = types
        say(f"writing to {target.url}")
        target.write(frames)
    counts = {k: len(v) for k, v in frames.items()}
    _emit(
        as_json,
        {"store": target.url, "imported": counts},
        lambda: console.print(_table(f"imported into {target.url}", pd.DataFrame([counts]))),
    )


@app.command()
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
    src = open_store(store_spec(store))
    df = src.read(layer)
    n = gexport.write(df, out, layer=layer, system=crs)
    _emit(
        as_json,
        {"layer": layer, "rows": n, "out": str(out)},
        lambda: console.print(f"wrote {n:,} {layer} to {out}"),
    )


@app.command()
def info(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Show what a store holds: layers, row counts and extents."""
    src = open_store(store_spec(store))
    held = src.layers()
    if not held:
        raise InputFileError(
            f"{src.url} holds no gridgis layers (run `gridgis demo` or `gridgis import`)"
        )
    rows = []
    for name, n in held.items():
        spec = schema.layer(name)
        rows.append(
            {"layer": name, "名称": spec.label, "rows": n, "geometry": spec.geometry or "—"}
        )

    def render() -> None:
        console.print(f"store: {src.url}", highlight=False)
        console.print(_table("", pd.DataFrame(rows)))

    _emit(as_json, {"store": src.url, "layers": rows}, render)


def _exit_code(exc: GridError) -> int:
    return 2 if isinstance(exc, ValidationError | InputFileError | ValueError) else 1


_register_subcommands()


def main() -> None:
    """Console-script entry point: errors as one clear message and a meaningful exit code."""
    try:
        app(standalone_mode=False)
    except GridError as exc:
        if _state["debug"]:
            raise
        err_console.print(
            f"[bold red]error:[/bold red] {exc}", highlight=False, markup=True, soft_wrap=True
        )
        sys.exit(_exit_code(exc))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except Exception as exc:  # click usage errors and the unexpected
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if _state["debug"]:
            raise
        err_console.print(
            f"[bold red]error:[/bold red] unexpected {type(exc).__name__}: {exc} (rerun with --debug)"
        )
        sys.exit(1)


__all__ = ["app", "main"]


@app.command("serve")
def serve(
    store: StoreOpt = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Serve the store over HTTP: OGC API – Features, /locate, maps at /maps/…, docs at
    /docs. Clients send a key (gridgis keys create) as X-API-Key; GRIDGIS_ANONYMOUS_READ=1
    lets anonymous clients read what a viewer may.
    """
    import uvicorn

    from api.app import create_app

    spec = store_spec(store)
    app_ = create_app(spec)
    console.print(
        f"gridgis serving {spec} at http://{host}:{port}/  (API docs /docs, maps /maps/coverage)",
        highlight=False,
    )
    uvicorn.run(app_, host=host, port=port, log_level="warning")
