"""``gridgis coverage``: who is beyond reach of which facility, per level and type."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

import geopandas as gpd

from api.options import JsonOpt, StoreOpt
from gis import export as gexport
from gis import io as gio
from gis.coverage import Coverage, compute
from gis.errors import InputFileError
from gis.reference import facility_types
from gis.store import Store, open_store


def store_inputs(s: Store, types: pd.DataFrame) -> dict[str, Any]:
    """What a coverage run reads from a store (grids and roads ``None`` when absent; the
    store's own facility catalogue when it has one), with a clear error for what is missing.
    """
    for need in ("buildings", "facilities", "communities"):
        if not s.has(need):
            raise InputFileError(f"{s.url} has no {need} yet; import them first")
    out: dict[str, Any] = {n: s.read(n) for n in ("buildings", "facilities", "communities")}
    for n in ("grids", "roads"):
        out[n] = s.read(n) if s.has(n) else None
    out["facility_types"] = s.read("facility_types") if s.has("facility_types") else types
    return out


def _merged(s: Store, cv: Coverage, types: set[str]) -> dict[str, pd.DataFrame]:
    """The layers coverage and gaps with this run's types replaced and the other types'
    rows kept (a run for one type must not wipe the rest).
    """
    out = {}
    for name, new in (("coverage", cv.table), ("gaps", cv.gaps)):
        if s.has(name):
            old = s.read(name)
            old = old[~old["type"].isin(types)]
            new = pd.concat([old, new], ignore_index=True) if len(old) else new
        out[name] = new
    return out


def city_table(cv: Coverage, types: pd.DataFrame) -> pd.DataFrame:
    """Per type: served, covered, share, unreachable, communities under the area standard."""
    t = cv.table[cv.table["level"] == "city"].set_index("type")
    names = types.set_index("code")["name_zh"]
    under = (
        cv.capacity.groupby("type")["under_standard"].sum()
        if len(cv.capacity)
        else pd.Series(dtype=int)
    )
    rows = []
    for code in t.index:
        rows.append(
            {
                "类型": code,
                "名称": names.get(code, code),
                "服务对象": int(t.loc[code, "served"]),
                "已覆盖": int(t.loc[code, "covered"]),
                "覆盖率": f"{t.loc[code, 'share']:.1%}" if pd.notna(t.loc[code, "share"]) else "—",
                "路网不可达": int(t.loc[code, "unreachable"]),
                "面积不达标社区": int(under.get(code, 0)) if code in under.index else "—",
            }
        )
    return pd.DataFrame(rows)


def coverage(
    type_: Annotated[
        list[str] | None,
        typer.Option("--type", "-t", help="Facility type codes (default: all in the catalogue)."),
    ] = None,
    mode: Annotated[
        str | None,
        typer.Option(
            help="line (straight, metres) or network (walking on roads; default when roads exist)."
        ),
    ] = None,
    buildings: Annotated[Path | None, typer.Option(help="File mode: buildings.")] = None,
    facilities: Annotated[Path | None, typer.Option(help="File mode: facilities.")] = None,
    communities: Annotated[
        Path | None, typer.Option(help="File mode: communities (for gap areas and capacity).")
    ] = None,
    roads: Annotated[Path | None, typer.Option(help="File mode: roads (network mode).")] = None,
    crs: Annotated[str, typer.Option(help="File mode: coordinates of the inputs.")] = "wgs84",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="File mode: .gpkg with layers buildings, coverage, gaps; store mode: .xlsx tables.",
        ),
    ] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Coverage of community service facilities: distance from every building to the
    nearest facility of each type, covered within the type's service distance (GB 50180
    life circles), per grid, community, street, district and city; gap areas; floor area
    per 100 households against the standard.
    """
    from api.cli import _table, console, file_inputs, store_spec

    types = facility_types()
    files = file_inputs(
        "coverage",
        {"buildings": buildings, "facilities": facilities},
        {"communities": communities, "roads": roads},
        out,
    )
    if files is not None:
        assert out is not None
        layers = gio.load(files, crs=crs, facility_types=set(types["code"]))
        cv = compute(
            layers["buildings"],
            layers["facilities"],
            types,
            layers.get("communities"),
            roads=layers.get("roads"),
            mode=mode,
            only=type_,
        )
        b = gpd.GeoDataFrame(
            cv.buildings, geometry=layers["buildings"].geometry.values, crs="EPSG:4326"
        )
        gexport.write_layers({"buildings": b, "coverage": cv.table, "gaps": cv.gaps}, out)
    else:
        s = open_store(store_spec(store))
        i = store_inputs(s, types)
        types = i["facility_types"]
        cv = compute(
            i["buildings"],
            i["facilities"],
            types,
            i["communities"],
            grids=i["grids"],
            roads=i["roads"],
            mode=mode,
            only=type_,
        )
        s.write(_merged(s, cv, set(cv.table["type"])))
        if out is not None:
            out.parent.mkdir(parents=True, exist_ok=True)
            with pd.ExcelWriter(out) as xl:
                city_table(cv, types).to_excel(xl, sheet_name="全市", index=False)
                for level, name in (
                    ("district", "区县"),
                    ("street", "街道"),
                    ("community", "社区"),
                    ("grid", "网格"),
                ):
                    cv.table[cv.table["level"] == level].to_excel(xl, sheet_name=name, index=False)
                if len(cv.capacity):
                    cv.capacity.to_excel(xl, sheet_name="面积标准", index=False)
    table = city_table(cv, types)
    payload: dict[str, Any] = {
        "mode": cv.mode,
        "city": table.to_dict("records"),
        "gaps": int(len(cv.gaps)),
        "notes": cv.notes,
    }
    if as_json:
        sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
        return
    console.print(
        _table(f"服务覆盖 ({'路网步行距离' if cv.mode == 'network' else '直线距离'})", table)
    )
    console.print(f"缺口区域 {len(cv.gaps):,} 个")
    for note in cv.notes:
        console.print(f"注意: {note}", highlight=False)
