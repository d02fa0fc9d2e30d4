"""Coverage workflows: distances from every building to each facility type, kept per level."""

from __future__ import annotations

import os
from collections.abc import Sequence

import pandas as pd

import geopandas as gpd

from gis import export as gexport
from gis import io as gio
from gis import settings
from gis.access import Principal
from gis.coverage import Coverage, compute
from gis.reference import facility_types
from gis.store import Store, Tx
from gis.workflows.base import Files, Inputs, clear_stale, read

NEEDS = ("buildings", "facilities", "communities")
OPTIONAL = ("grids", "roads", "facility_types")


def merged(tx: Tx, cv: Coverage) -> dict[str, pd.DataFrame]:
    """The layers ``coverage`` and ``gaps`` with this run's types replaced and the other
    types' rows kept (a run for one type must not wipe the rest).
    """
    types = set(cv.table["type"])
    out = {}
    for name, new in (("coverage", cv.table), ("gaps", cv.gaps)):
        if tx.has(name):
            old = tx.read(name)
            old = old[~old["type"].isin(types)]
            new = pd.concat([old, new], ignore_index=True) if len(old) else new
        out[name] = new
    return out


def run(
    store: Store,
    actor: Principal,
    *,
    types: Sequence[str] | None = None,
    mode: str | None = None,
) -> Coverage:
    """Coverage of the catalogue's types (or ``types``) and their gap areas, kept in the
    store; a ``mode`` given here becomes the city's coverage mode.

    The layers are locked from the first read, so two runs for different types at once
    keep both results (the second waits for the first, then merges into what it wrote).
    """
    with store.transaction(lock=("coverage", "gaps", "settings")) as tx:
        city = settings.load(tx)
        if mode is not None:
            city = settings.CityRules(city.grids, city.staff, mode, city.city_name)
            settings.store(tx, city, actor.name)
        f = read(tx, NEEDS, OPTIONAL)
        cv = compute(
            f["buildings"], f["facilities"], f["facility_types"], f["communities"],
            grids=f.get("grids"), roads=f.get("roads"), mode=city.coverage_mode, only=types,
        )  # fmt: skip
        tx.write(merged(tx, cv))
        clear_stale(tx, [f"coverage:{t}" for t in set(cv.table["type"])])
        tx.audit(actor.name, "coverage.run", ",".join(sorted(set(cv.table["type"]))),
                 f"{cv.mode}, {len(cv.gaps)} gap areas")  # fmt: skip
    return cv


def compute_for(
    inputs: Inputs, types: Sequence[str] | None = None, *, gaps: bool = True
) -> Coverage:
    """Coverage computed from ``inputs`` without writing it (maps, site tests)."""
    f = inputs.get((*NEEDS, *OPTIONAL, "settings"))
    mode = settings.decode(f.get("settings")).coverage_mode
    return compute(
        f["buildings"], f["facilities"], f["facility_types"], f["communities"],
        grids=f.get("grids"), roads=f.get("roads"), mode=mode, only=types, gaps=gaps,
    )  # fmt: skip


def from_files(
    files: Files,
    out: os.PathLike[str],
    *,
    crs: str = "wgs84",
    types: Sequence[str] | None = None,
    mode: str | None = None,
) -> tuple[Coverage, pd.DataFrame]:
    """File mode: coverage of files, written as a GeoPackage of buildings (``dist_``,
    ``covered_``, ``access_`` per type), coverage and gaps.
    """
    catalogue = facility_types()
    layers = gio.load(files, crs=crs, facility_types=set(catalogue["code"]))
    cv = compute(layers["buildings"], layers["facilities"], catalogue, layers.get("communities"),
                 roads=layers.get("roads"), mode=mode, only=types)  # fmt: skip
    b = gpd.GeoDataFrame(
        cv.buildings, geometry=layers["buildings"].geometry.values, crs="EPSG:4326"
    )
    gexport.write_layers({"buildings": b, "coverage": cv.table, "gaps": cv.gaps}, out)
    return cv, catalogue


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
