"""``gridgis grids``: divide communities into grids, re-divide after changes, report."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from api.options import JsonOpt, StoreOpt
from gis import export as gexport
from gis import io as gio
from gis.errors import InputFileError, ValidationError
from gis.partition import Band, GridRules, divide, grid_quality, report_communities, summary
from gis.regrid import update
from gis.store import Store, open_store

app = typer.Typer(
    help="网格划分 — divide communities into coded grids of 300–400 households.",
    no_args_is_help=True,
)

TargetOpt = Annotated[int, typer.Option("--target", help="Target households per grid.")]
MinOpt = Annotated[int, typer.Option("--min", help="Fewest households a grid may hold.")]
MaxOpt = Annotated[int, typer.Option("--max", help="Most households a grid may hold.")]
RuralOpt = Annotated[
    str | None,
    typer.Option(
        "--rural", help="A different band for villages, as MIN-TARGET-MAX (e.g. 200-300-400)."
    ),
]


def rules_from(target: int, lo: int, hi: int, rural: str | None) -> GridRules:
    """Grid rules from the command-line options."""
    urban = Band(min=lo, target=target, max=hi)
    if rural is None:
        return GridRules(urban=urban, rural=urban)
    try:
        a, t, b = (int(x) for x in rural.split("-"))
    except ValueError:
        raise ValidationError(
            "--rural", [f"{rural!r} is not MIN-TARGET-MAX, e.g. 200-300-400"]
        ) from None
    return GridRules(urban=urban, rural=Band(min=a, target=t, max=b))


@contextmanager
def community_progress(enabled: bool, label: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar over communities (silent when disabled)."""
    from api.cli import err_console

    if not enabled:
        yield lambda _d, _t: None
        return
    with Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=None)

        def tick(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield tick


def _optional(store: Store, name: str) -> Any:
    return store.read(name) if store.has(name) else None


def _used_sequences(store: Store, only: list[str] | None) -> dict[str, set[int]]:
    used: dict[str, set[int]] = {}
    for name in ("grids", "grid_history"):
        if store.has(name):
            df = store.read(name, columns=["community_code", "seq"])
            if only:
                df = df[df["community_code"].isin(only)]
            for code, seqs in df.groupby("community_code")["seq"]:
                used.setdefault(str(code), set()).update(int(s) for s in seqs)
    return used


def _print_summary(fig: dict[str, Any], as_json: bool, extra: dict[str, Any] | None = None) -> None:
    from api.cli import console

    payload = {**fig, **(extra or {})}
    if as_json:
        sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
        return
    labels = {
        "communities": "社区/村",
        "grids": "网格",
        "households": "户数",
        "communities_reachable": "可达标社区 (band reachable)",
        "grids_in_reachable": "其中网格",
        "share_in_band_where_reachable": "达标网格占比 (where reachable)",
        "share_in_band_all": "达标网格占比 (all)",
        "median_polsby_popper": "紧凑度中位数 (Polsby–Popper)",
    }
    for k, v in payload.items():
        text = (
            f"{v:.1%}"
            if k.startswith("share")
            else f"{v:.3f}"
            if isinstance(v, float)
            else f"{v:,}"
            if isinstance(v, int)
            else str(v)
        )
        console.print(f"{labels.get(k, k):<34} {text}")


@app.command()
def build(
    community: Annotated[
        list[str] | None,
        typer.Option("--community", help="Only these communities (12-digit codes); repeatable."),
    ] = None,
    target: TargetOpt = 350,
    lo: MinOpt = 300,
    hi: MaxOpt = 400,
    rural: RuralOpt = None,
    communities: Annotated[
        Path | None, typer.Option(help="File mode: community polygons (no store).")
    ] = None,
    buildings: Annotated[Path | None, typer.Option(help="File mode: buildings.")] = None,
    roads: Annotated[
        Path | None, typer.Option(help="File mode: roads (grid borders prefer them).")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="File mode: where to write the grids (.geojson/.gpkg/.shp/.csv/.xlsx)."),
    ] = None,
    crs: Annotated[
        str,
        typer.Option(help="File mode: coordinates of the inputs (wgs84, cgcs2000, gcj02, bd09)."),
    ] = "wgs84",
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Divide communities into grids (default: all; households per grid 300–400, target 350).

    Grid codes are the community code plus a 3-digit sequence numbered west→east,
    north→south; a community divided again is numbered on, so no code is reused.
    """
    from api.cli import file_inputs, store_spec

    rules = rules_from(target, lo, hi, rural)
    files = file_inputs(
        "grids build", {"communities": communities, "buildings": buildings}, {"roads": roads}, out
    )
    if files is not None:
        assert out is not None
        layers = gio.load(files, crs=crs)
        with community_progress(not as_json, "网格划分") as tick:
            div = divide(
                layers["communities"],
                layers["buildings"],
                layers.get("roads"),
                rules=rules,
                only=community,
                progress=tick,
            )
        gexport.write(div.grids, out, layer="grids")
        q = grid_quality(div.grids, rules, layers["communities"].set_index("code")["kind"])
        _print_summary(summary(div.communities, div.grids, q), as_json, {"out": str(out)})
        return
    target_store = open_store(store_spec(store))
    comms = target_store.read("communities")
    blds = target_store.read("buildings")
    with community_progress(not as_json, "网格划分") as tick:
        div = divide(
            comms,
            blds,
            _optional(target_store, "roads"),
            rules=rules,
            only=community,
            used=_used_sequences(target_store, community),
            progress=tick,
        )
    grids, history = div.grids, _optional(target_store, "grid_history")
    old = _optional(target_store, "grids")
    if old is not None and len(old):
        redone = old["community_code"].isin(set(div.grids["community_code"]))
        retired = (
            old[redone]
            .drop(columns="geometry")
            .assign(retired=pd.Timestamp.today().date().isoformat(), replaced_by=None)
        )
        history = (
            pd.concat([history, retired], ignore_index=True) if history is not None else retired
        )
        grids = pd.concat([old[~redone], div.grids], ignore_index=True).sort_values("code")
    layers_out: dict[str, pd.DataFrame] = {"grids": grids}
    if history is not None:
        layers_out["grid_history"] = history
    target_store.write(layers_out)
    q = grid_quality(div.grids, rules, comms.set_index("code")["kind"])
    _print_summary(summary(div.communities, div.grids, q), as_json, {"store": target_store.url})


@app.command("update")
def update_cmd(
    target: TargetOpt = 350,
    lo: MinOpt = 300,
    hi: MaxOpt = 400,
    rural: RuralOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-divide only where this year's households pushed grids out of the band.

    Grids still in the band keep code and boundary; replaced codes are retired to the
    layer grid_history and never reused.
    """
    from api.cli import store_spec

    rules = rules_from(target, lo, hi, rural)
    s = open_store(store_spec(store))
    if not s.has("grids"):
        raise InputFileError(f"{s.url} has no grids yet; run `gridgis grids build` first")
    comms = s.read("communities")
    u = update(
        s.read("grids"),
        comms,
        s.read("buildings"),
        _optional(s, "roads"),
        rules=rules,
        history=_optional(s, "grid_history"),
    )
    history = _optional(s, "grid_history")
    history = (
        pd.concat([history, u.history], ignore_index=True) if history is not None else u.history
    )
    s.write({"grids": u.grids, "grid_history": history})
    q = grid_quality(u.grids, rules, comms.set_index("code")["kind"])
    fig = summary(
        report_communities(
            u.grids,
            comms,
            s.read("buildings"),
            rules,
        ),
        u.grids,
        q,
    )
    _print_summary(
        fig,
        as_json,
        {
            "kept": u.kept,
            "retired": u.retired,
            "created": u.created,
            "stable_share": round(u.stable_share, 4),
        },
    )


REPORT_COLUMNS = {
    "community_code": "社区代码",
    "name": "社区/村",
    "kind": "类型",
    "households": "户数",
    "grids": "网格数",
    "band": "户数区间",
    "reachable": "区间可达",
    "k_range": "可行网格数",
    "in_band": "达标网格",
    "min_households": "最少户数",
    "max_households": "最多户数",
    "huge_buildings": "超大楼栋",
    "median_pp": "紧凑度中位数",
}


@app.command()
def report(
    target: TargetOpt = 350,
    lo: MinOpt = 300,
    hi: MaxOpt = 400,
    rural: RuralOpt = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Also write the report as XLSX.")
    ] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Grid quality: households, area, compactness and band per grid and per community."""
    from api.cli import _table, console, store_spec

    rules = rules_from(target, lo, hi, rural)
    s = open_store(store_spec(store))
    if not s.has("grids"):
        raise InputFileError(f"{s.url} has no grids yet; run `gridgis grids build` first")
    grids, comms, blds = s.read("grids"), s.read("communities"), s.read("buildings")
    kinds = comms.set_index("code")["kind"]
    q = grid_quality(grids, rules, kinds)
    per = report_communities(grids, comms, blds, rules)
    fig = summary(per, grids, q)
    if out is not None:
        table = pd.concat([grids.drop(columns="geometry"), q], axis=1)
        table = table.rename(
            columns={
                "code": "网格代码",
                "community_code": "社区代码",
                "seq": "序号",
                "households": "户数",
                "residents": "人口",
                "area_m2": "面积(m²)",
                "polsby_popper": "紧凑度",
                "in_band": "户数达标",
            }
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        with pd.ExcelWriter(out) as xl:
            pd.DataFrame({"指标": list(fig), "数值": list(fig.values())}).to_excel(
                xl, sheet_name="汇总", index=False
            )
            per.rename(columns=REPORT_COLUMNS).to_excel(xl, sheet_name="社区", index=False)
            table.to_excel(xl, sheet_name="网格", index=False)
    if as_json:
        _print_summary(fig, True, {"communities_report": per.to_dict("records")})
        return
    _print_summary(fig, False, {"xlsx": str(out)} if out else None)
    bad = per[per["reachable"] & (per["in_band"] < per["grids"])]
    if len(bad):
        console.print(
            _table(
                "区间可达但有网格未达标的社区 (reachable, some grids outside the band)",
                bad.rename(columns=REPORT_COLUMNS).head(20),
            )
        )


__all__ = ["app", "rules_from"]
