"""``gridgis coverage``: who is beyond reach of which facility, per level and type."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from api.cli.output import JsonOpt, StoreOpt, actor, console, emit, file_inputs, open_, table, xlsx
from gis.reference import facility_types
from gis.workflows import coverage as wcov

LEVEL_SHEETS = (("district", "区县"), ("street", "街道"), ("community", "社区"), ("grid", "网格"))


def coverage(
    type_: Annotated[
        list[str] | None, typer.Option("--type", "-t", help="Facility type codes (default: all in the catalogue).")
    ] = None,
    mode: Annotated[
        str | None,
        typer.Option(help="line (straight, metres) or network (walking on roads; default when roads exist). "
                          "Given in store mode, it becomes the city's coverage mode."),
    ] = None,
    buildings: Annotated[Path | None, typer.Option(help="File mode: buildings.")] = None,
    facilities: Annotated[Path | None, typer.Option(help="File mode: facilities.")] = None,
    communities: Annotated[Path | None, typer.Option(help="File mode: communities (for gap areas and capacity).")] = None,
    roads: Annotated[Path | None, typer.Option(help="File mode: roads (network mode).")] = None,
    crs: Annotated[str, typer.Option(help="File mode: coordinates of the inputs.")] = "wgs84",
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="File mode: .gpkg with layers buildings, coverage, gaps; store mode: .xlsx tables."),
    ] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Coverage of community service facilities: distance from every building to the
    nearest facility of each type, covered within the type's service distance (GB 50180
    life circles), per grid, community, street, district and city; gap areas; floor area
    per 100 households against the standard.
    """
    files = file_inputs("coverage", {"buildings": buildings, "facilities": facilities},
                        {"communities": communities, "roads": roads}, out)  # fmt: skip
    if files is not None:
        assert out is not None
        cv, types = wcov.from_files(files, out, crs=crs, types=type_, mode=mode)
    else:
        s = open_(store)
        cv = wcov.run(s, actor(), types=type_, mode=mode)
        types = s.read("facility_types") if s.has("facility_types") else facility_types()
        if out is not None:
            sheets = {"全市": wcov.city_table(cv, types)}
            sheets |= {name: cv.table[cv.table["level"] == level] for level, name in LEVEL_SHEETS}
            if len(cv.capacity):
                sheets["面积标准"] = cv.capacity
            xlsx(out, sheets)
    city = wcov.city_table(cv, types)
    payload: dict[str, Any] = {"mode": cv.mode, "city": city.to_dict("records"), "gaps": int(len(cv.gaps)),
                               "notes": cv.notes}  # fmt: skip

    def render() -> None:
        console.print(
            table(f"服务覆盖 ({'路网步行距离' if cv.mode == 'network' else '直线距离'})", city)
        )
        console.print(f"缺口区域 {len(cv.gaps):,} 个")
        for note in cv.notes:
            console.print(f"注意: {note}", highlight=False)

    emit(as_json, payload, render)
