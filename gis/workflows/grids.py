"""Grid workflows: divide communities, re-divide after changes, report."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

import geopandas as gpd

from gis import export as gexport
from gis import io as gio
from gis import settings
from gis.access import Principal
from gis.errors import InputFileError
from gis.partition import (
    Division,
    border_alignment,
    divide,
    grid_quality,
    report_communities,
    summary,
)
from gis.regrid import Update, update
from gis.rules import GridRules
from gis.settings import BandChange
from gis.store import Store, Tx, now
from gis.workflows.base import Files, Tick, clear_stale, read

#: the layers a division writes (and locks from its first read)
WRITES = ("grids", "grid_history", "settings")


@dataclass
class GridsResult:
    """What a division or re-division did, with the city-wide figures."""

    grids: gpd.GeoDataFrame
    report: pd.DataFrame  # per community
    figures: dict[str, Any]
    rules: GridRules
    update: Update | None = None
    alignment: pd.DataFrame | None = None  # inner border along roads, per district


def _figures(
    grids: gpd.GeoDataFrame, report: pd.DataFrame, comms: pd.DataFrame, rules: GridRules
) -> dict[str, Any]:
    q = grid_quality(grids, rules, comms.set_index("code")["kind"])
    return summary(report, grids, q)


def _used_sequences(tx: Tx, only: Sequence[str] | None) -> dict[str, set[int]]:
    used: dict[str, set[int]] = {}
    for name in ("grids", "grid_history"):
        if tx.has(name):
            df = tx.read(name, columns=["community_code", "seq"])
            if only:
                df = df[df["community_code"].isin(only)]
            for code, seqs in df.groupby("community_code")["seq"]:
                used.setdefault(str(code), set()).update(int(s) for s in seqs)
    return used


def build(
    store: Store,
    actor: Principal,
    *,
    urban: BandChange = None,
    rural: BandChange = None,
    only: Sequence[str] | None = None,
    tick: Tick | None = None,
) -> GridsResult:
    """Divide communities (default all) into grids and keep them in the store.

    Bands given here become the city's rules; otherwise the stored ones apply. Communities
    divided again are numbered on (no code reused) and their old grids retired to
    ``grid_history``.
    """
    with store.transaction(lock=WRITES) as tx:
        rules = settings.load(tx)
        if urban or rural:
            rules = settings.with_grids(rules, urban, rural)
            settings.store(tx, rules, actor.name)
        f = read(tx, ("communities", "buildings"), ("roads", "footprints", "grids", "grid_history"))
        div = divide(
            f["communities"], f["buildings"], f.get("roads"), rules=rules.grids, only=only,
            used=_used_sequences(tx, only), progress=tick, footprints=f.get("footprints"),
        )  # fmt: skip
        grids, history = div.grids, f.get("grid_history")
        old = f.get("grids")
        if old is not None and len(old):
            redone = old["community_code"].isin(set(div.grids["community_code"]))
            retired = (
                old[redone].drop(columns="geometry").assign(retired=now()[:10], replaced_by=None)
            )
            history = (
                pd.concat([history, retired], ignore_index=True) if history is not None else retired
            )
            grids = pd.concat([old[~redone], div.grids], ignore_index=True).sort_values("code")
        out: dict[str, pd.DataFrame] = {"grids": grids}
        if history is not None:
            out["grid_history"] = history
        tx.write(out)
        if only is None:
            clear_stale(tx, ["grids"])  # every grid's households counted again
        fig = _figures(div.grids, div.communities, f["communities"], rules.grids)
        tx.audit(actor.name, "grids.build", "grids",
                 f"{len(div.grids)} grids in {len(div.communities)} communities")  # fmt: skip
    return GridsResult(div.grids, div.communities, fig, rules.grids)


def regrid(
    store: Store,
    actor: Principal,
    *,
    urban: BandChange = None,
    rural: BandChange = None,
) -> GridsResult:
    """Re-divide only where this year's households pushed grids out of the band."""
    from gis.workflows import orders as worders

    with store.transaction(lock=(*WRITES, *worders.LOCK)) as tx:
        rules = settings.load(tx)
        if urban or rural:
            rules = settings.with_grids(rules, urban, rural)
            settings.store(tx, rules, actor.name)
        if not tx.has("grids"):
            raise InputFileError(f"{store.url} has no grids yet; run `gridgis grids build` first")
        f = read(tx, ("grids", "communities", "buildings"), ("roads", "grid_history"))
        u = update(f["grids"], f["communities"], f["buildings"], f.get("roads"), rules=rules.grids,
                   history=f.get("grid_history"))  # fmt: skip
        hist = f.get("grid_history")
        hist = pd.concat([hist, u.history], ignore_index=True) if hist is not None else u.history
        tx.write({"grids": u.grids, "grid_history": hist})
        clear_stale(tx, ["grids"])
        # open work orders in a retired grid go to the grid now holding them
        moved = worders.reroute(tx, u.grids, actor.name)
        tx.audit(actor.name, "grids.update", "grids",
                 f"kept {u.kept}, retired {u.retired}, created {u.created}, orders rerouted {moved}")  # fmt: skip
        per = report_communities(u.grids, f["communities"], f["buildings"], rules.grids)
        fig = _figures(u.grids, per, f["communities"], rules.grids)
    return GridsResult(u.grids, per, fig, rules.grids, u)


def report(
    store: Store, *, urban: BandChange = None, rural: BandChange = None
) -> tuple[GridsResult, pd.DataFrame]:
    """Grid quality per grid and per community (against the stored band, or the one given);
    returns the result and the per-grid table (households, area, compactness, in band).
    """
    with store.snapshot() as tx:
        rules = settings.load(tx)
        if urban or rural:
            rules = settings.with_grids(rules, urban, rural)
        if not tx.has("grids"):
            raise InputFileError(f"{store.url} has no grids yet; run `gridgis grids build` first")
        f = read(tx, ("grids", "communities", "buildings"), ("roads",))
    grids, comms = f["grids"], f["communities"]
    q = grid_quality(grids, rules.grids, comms.set_index("code")["kind"])
    per = report_communities(grids, comms, f["buildings"], rules.grids)
    table = pd.concat([grids.drop(columns="geometry"), q], axis=1)
    fig = summary(per, grids, q)
    align = border_alignment(grids, comms, f.get("roads"))
    if len(align):
        fig["inner_border_along_roads"] = float(align["share"].iloc[-1])
    return GridsResult(grids, per, fig, rules.grids, alignment=align), table


def from_files(
    files: Files,
    out: os.PathLike[str],
    *,
    crs: str = "wgs84",
    rules: GridRules | None = None,
    only: Sequence[str] | None = None,
    tick: Tick | None = None,
) -> GridsResult:
    """File mode: divide the communities of a file by its buildings, write the grids file."""
    rules = rules or GridRules()
    layers = gio.load(files, crs=crs)
    div: Division = divide(layers["communities"], layers["buildings"], layers.get("roads"),
                           rules=rules, only=only, progress=tick,
                           footprints=layers.get("footprints"))  # fmt: skip
    gexport.write(div.grids, out, layer="grids")
    return GridsResult(
        div.grids,
        div.communities,
        _figures(div.grids, div.communities, layers["communities"], rules),
        rules,
    )
