"""``gridgis grids``: divide communities into grids, re-divide after changes, report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

from api.cli.output import (
    JsonOpt,
    StoreOpt,
    actor,
    community_progress,
    console,
    emit,
    file_inputs,
    open_,
    table,
    xlsx,
)
from gis import settings
from gis.errors import ValidationError
from gis.rules import Band
from gis.workflows import grids as wgrids

app = typer.Typer(
    help="网格划分 — divide communities into coded grids of 300–400 households.",
    no_args_is_help=True,
)

TargetOpt = Annotated[
    int | None, typer.Option("--target", help="Target households per grid (default: stored, 350).")
]
MinOpt = Annotated[
    int | None,
    typer.Option("--min", help="Fewest households a grid may hold (default: stored, 300)."),
]
MaxOpt = Annotated[
    int | None,
    typer.Option("--max", help="Most households a grid may hold (default: stored, 400)."),
]
RuralOpt = Annotated[
    str | None,
    typer.Option(
        "--rural", help="A different band for villages, as MIN-TARGET-MAX (e.g. 200-300-400)."
    ),
]
LABELS = {
    "communities": "社区/村", "grids": "网格", "households": "户数",
    "communities_reachable": "可达标社区 (band reachable)", "grids_in_reachable": "其中网格",
    "share_in_band_where_reachable": "达标网格占比 (where reachable)",
    "share_in_band_all": "达标网格占比 (all)", "median_polsby_popper": "紧凑度中位数 (Polsby–Popper)",
}  # fmt: skip
REPORT_COLUMNS = {
    "community_code": "社区代码", "name": "社区/村", "kind": "类型", "households": "户数",
    "grids": "网格数", "band": "户数区间", "reachable": "区间可达", "k_range": "可行网格数",
    "in_band": "达标网格", "min_households": "最少户数", "max_households": "最多户数",
    "huge_buildings": "超大楼栋", "median_pp": "紧凑度中位数", "bound": "装箱界(可达)",
    "empty_grids": "空网格", "multipart_grids": "多片网格", "units": "划分单元",
    "split_blocks": "拆分街坊", "snapped": "接合路端", "empty_joined": "并入空地块",
    "islands": "并入飞地", "exact": "精确求解", "exact_optimal": "已证最优",
}  # fmt: skip
ALIGN_COLUMNS = {"district_code": "区县代码", "inner_m": "网格内部边界(米)",
                 "along_roads_m": "沿道路10米内(米)", "share": "沿路比例"}  # fmt: skip
GRID_COLUMNS = {"code": "网格代码", "community_code": "社区代码", "seq": "序号", "households": "户数",
                "residents": "人口", "area_m2": "面积(m²)", "polsby_popper": "紧凑度",
                "in_band": "户数达标"}  # fmt: skip


def bands(target: int | None, lo: int | None, hi: int | None, rural: str | None) -> dict[str, Any]:
    """The band changes the options ask for (``{}`` when none)."""
    out: dict[str, Any] = {}
    if any(v is not None for v in (target, lo, hi)):
        out["urban"] = {"min": lo, "target": target, "max": hi}
    if rural is not None:
        try:
            a, t, b = (int(x) for x in rural.split("-"))
        except ValueError:
            raise ValidationError(
                "--rural", [f"{rural!r} is not MIN-TARGET-MAX, e.g. 200-300-400"]
            ) from None
        out["rural"] = Band(min=a, target=t, max=b)
    return out


def _render(fig: dict[str, Any], as_json: bool, extra: dict[str, Any] | None = None) -> None:
    payload = {**fig, **(extra or {})}

    def show() -> None:
        for k, v in payload.items():
            text = (
                f"{v:.1%}" if k.startswith("share") else f"{v:.3f}" if isinstance(v, float)
                else f"{v:,}" if isinstance(v, int) else str(v)
            )  # fmt: skip
            console.print(f"{LABELS.get(k, k):<34} {text}")

    emit(as_json, payload, show)


@app.command()
def build(
    community: Annotated[
        list[str] | None,
        typer.Option("--community", help="Only these communities (12-digit codes); repeatable."),
    ] = None,
    target: TargetOpt = None,
    lo: MinOpt = None,
    hi: MaxOpt = None,
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
    north→south; a community divided again is numbered on, so no code is reused. A band
    given here becomes the city's rule (kept in the store) for later runs and reports.
    """
    change = bands(target, lo, hi, rural)
    files = file_inputs(
        "grids build", {"communities": communities, "buildings": buildings}, {"roads": roads}, out
    )
    with community_progress(not as_json, "网格划分") as tick:
        if files is not None:
            assert out is not None
            rules = settings.with_grids(settings.CityRules(), **change).grids
            r = wgrids.from_files(files, out, crs=crs, rules=rules, only=community, tick=tick)
            where = {"out": str(out)}
        else:
            s = open_(store)
            r = wgrids.build(s, actor(), only=community, tick=tick, **change)
            where = {"store": s.url}
    _render(r.figures, as_json, where)


@app.command("update")
def update_cmd(
    target: TargetOpt = None, lo: MinOpt = None, hi: MaxOpt = None, rural: RuralOpt = None,
    store: StoreOpt = None, as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Re-divide only where this year's households pushed grids out of the band.

    Grids still in the band keep code and boundary; replaced codes are retired to the
    layer grid_history and never reused.
    """
    r = wgrids.regrid(open_(store), actor(), **bands(target, lo, hi, rural))
    u = r.update
    assert u is not None
    extra = {
        "kept": u.kept,
        "retired": u.retired,
        "created": u.created,
        "stable_share": round(u.stable_share, 4),
    }
    _render(r.figures, as_json, extra)


@app.command()
def report(
    target: TargetOpt = None, lo: MinOpt = None, hi: MaxOpt = None, rural: RuralOpt = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Also write the report as XLSX.")] = None,
    store: StoreOpt = None, as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Grid quality: households, area, compactness and band per grid and per community
    (against the stored band, or the one given here, which is not stored).
    """
    r, grid_table = wgrids.report(open_(store), **bands(target, lo, hi, rural))
    fig, per = r.figures, r.report
    if out is not None:
        xlsx(out, {"汇总": pd.DataFrame({"指标": list(fig), "数值": list(fig.values())}),
                   "社区": per.rename(columns=REPORT_COLUMNS),
                   "边界沿路": (r.alignment if r.alignment is not None else pd.DataFrame()).rename(columns=ALIGN_COLUMNS),
                   "网格": grid_table.rename(columns=GRID_COLUMNS)})  # fmt: skip
    if as_json:
        align = r.alignment.to_dict("records") if r.alignment is not None else []
        _render(
            fig, True, {"communities_report": per.to_dict("records"), "border_alignment": align}
        )
        return
    _render(fig, False, {"xlsx": str(out)} if out else None)
    if r.alignment is not None and len(r.alignment):
        al = r.alignment.assign(share=r.alignment["share"].map(lambda x: f"{x:.1%}"))
        console.print(table("网格边界沿道路 (inner grid border within 10 m of a road)",
                            al.rename(columns=ALIGN_COLUMNS)))  # fmt: skip
    bad = per[per["reachable"] & (per["in_band"] < per["grids"])]
    if len(bad):
        title = "区间可达但有网格未达标的社区 (reachable, some grids outside the band)"
        console.print(table(title, bad.rename(columns=REPORT_COLUMNS).head(20)))
