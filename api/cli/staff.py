"""``gridgis staff``: quotas under the city cap, workers sunk into grids, edits, payroll."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

from api.cli.output import JsonOpt, OutXlsx, StoreOpt, actor, emit, file_inputs, lines, open_, xlsx
from gis.workflows import staff as wstaff

app = typer.Typer(
    help="社区工作者配备 — quotas, sinking workers into grids, 三岗十八级 payroll.",
    no_args_is_help=True,
)

RatioOpt = Annotated[
    float | None, typer.Option("--ratio", help="Households per worker for the rule quota (350).")
]
MinOpt = Annotated[
    int | None, typer.Option("--min-urban", help="Fewest workers in an urban community (5).")
]
CapOpt = Annotated[
    int | None,
    typer.Option(
        "--cap", help="Approved total for urban communities (核定总量, 1540); 0 = no cap."
    ),
]
WindowOpt = Annotated[
    int | None, typer.Option("--window", help="Window staff per community (一窗受理, 1).")
]
QUOTA_COLUMNS = {
    "code": "社区代码", "name": "社区/村", "kind": "类型", "households": "户数",
    "policy_min": "政策下限(1:400)", "policy_max": "政策上限(1:300)", "rule_quota": "规则定额",
    "quota": "核定后定额", "window": "窗口人员", "grid_workers": "网格员", "roster": "在岗",
    "gap": "缺编",
}  # fmt: skip
RULES_HELP = (
    "Rules given here are kept in the store and used by every later command, the API and the maps."
)


def _rules(
    ratio: float | None, min_urban: int | None, cap: int | None, window: int | None
) -> dict[str, Any]:
    return {"ratio": ratio, "urban_min": min_urban, "cap": cap, "window": window}


@app.command()
def quota(
    ratio: RatioOpt = None,
    min_urban: MinOpt = None,
    cap: CapOpt = None,
    window: WindowOpt = None,
    communities: Annotated[Path | None, typer.Option(help="File mode: community polygons.")] = None,
    buildings: Annotated[
        Path | None, typer.Option(help="File mode: buildings with households.")
    ] = None,
    out: OutXlsx = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Worker quota per community: max(minimum, ⌈households / ratio⌉), apportioned to the cap.

    The policy range ⌈H/400⌉–⌈H/300⌉ is reported beside it. When the urban rule quotas add
    up to more than the cap, the cap is shared in proportion to households (largest
    remainder) without taking any urban community under its minimum. The quotas and the
    rules are kept in the store (the API's staffing table and the maps show them).
    """
    files = file_inputs("staff quota", {"communities": communities, "buildings": buildings})
    given = _rules(ratio, min_urban, cap, window)
    r = (
        wstaff.quotas_from_files(files, **given)
        if files
        else wstaff.set_quotas(open_(store), actor(), **given)
    )
    q, totals = r.table, r.totals()
    urban = q["kind"] == "urban"
    payload = {
        "communities": q[["code", "kind", "households", "rule_quota", "quota"]].to_dict("records"),
        **totals,
    }
    if out is not None:
        xlsx(out, {"定额": q.rename(columns=QUOTA_COLUMNS)})
    text = [
        f"城市社区 {int(urban.sum())} 个: 规则定额 {totals['rule_total']:,}, 核定总量 {r.rules.cap or '—'}, "
        f"核定后 {totals['total']:,} (最少 {int(q.loc[urban, 'quota'].min()) if urban.any() else 0})",
        f"农村社区 {int((~urban).sum())} 个: 定额 {totals['rural_total']:,}",
        f"城市社区在岗 {int(q.loc[urban, 'roster'].sum()):,} 人, 缺编 {int(q.loc[urban, 'gap'].clip(lower=0).sum()):,} 人"
        if r.roster_known
        else "",
        f"XLSX: {out}" if out else "",
    ]
    emit(as_json, payload, lines(text))


@app.command("assign")
def assign_cmd(
    ratio: RatioOpt = None, min_urban: MinOpt = None, cap: CapOpt = None, window: WindowOpt = None,
    out: OutXlsx = None, store: StoreOpt = None, as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Sink grid workers into grids: one responsible worker per grid, connected grid sets,
    loads balanced by households; earlier assignments are kept where they still work.
    """
    a, rules = wstaff.assign_workers(open_(store), actor(), **_rules(ratio, min_urban, cap, window))
    lo, hi = (int(x) for x in rules.policy_range)
    share_all = round(float(a.loads["in_band"].mean()), 4) if len(a.loads) else None
    payload = {
        "grids": int(len(a.assignments)), "grid_workers": int(len(a.loads)),
        "share_in_band_where_possible": round(a.share_in_band_where_possible, 4),
        "share_in_band_all": share_all, "moved": a.moved,
        "not_in_band": a.loads[~a.loads["in_band"]][["worker_id", "community_code", "households", "note"]].to_dict("records"),
    }  # fmt: skip
    if out is not None:
        loads = a.loads.rename(columns={"worker_id": "工号", "community_code": "社区代码", "grids": "网格数",
                                        "households": "户数", "in_band": f"{lo}-{hi}户", "possible": "可达",
                                        "note": "说明"})  # fmt: skip
        xlsx(out, {"网格责任人": a.assignments.rename(columns={"grid_code": "网格代码", "worker_id": "工号"}),
                   "工作量": loads})  # fmt: skip
    text = [
        f"网格 {payload['grids']:,} 个, 网格员 {payload['grid_workers']:,} 人",
        f"负担 {lo}–{hi} 户 (可达处) {a.share_in_band_where_possible:.1%}; 全部 {share_all:.1%}"
        if share_all is not None else "",
        f"与上次相比调整 {a.moved} 人",
        f"XLSX: {out}" if out else "",
    ]  # fmt: skip
    emit(as_json, payload, lines(text))


@app.command("set")
def set_cmd(
    grid: Annotated[str, typer.Argument(help="The grid (15-digit code).")],
    worker: Annotated[str, typer.Argument(help="The worker's id (工号) to make responsible.")],
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Make a worker responsible for a grid (the same edit as PUT /assignments/{grid}; audited)."""
    before = wstaff.edit_assignment(open_(store), actor(), grid, worker)
    emit(as_json, {"grid_code": grid, "worker_id": worker, "before": before},
         lines([f"网格 {grid} 责任网格员: {before} → {worker}"]))  # fmt: skip


@app.command("payroll")
def payroll_cmd(
    salary: Annotated[Path | None, typer.Option(help="Salary table TOML (default: the shipped example).")] = None,
    on: Annotated[str | None, typer.Option(help="Date the grades are computed for (YYYY-MM-DD; default today).")] = None,
    ratio: RatioOpt = None, min_urban: MinOpt = None, cap: CapOpt = None, window: WindowOpt = None,
    out: OutXlsx = None, store: StoreOpt = None, as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """三岗十八级: each worker's grade (post, service years, degree credit) and monthly pay;
    the cost of the roster and of the full quota (vacancies at the entry grade).
    """
    when = date.fromisoformat(on) if on else date.today()
    workers, totals = wstaff.run_payroll(open_(store), actor(), salary=salary, on=when,
                                         **_rules(ratio, min_urban, cap, window))  # fmt: skip
    if out is not None:
        names = {"id": "工号", "name": "姓名", "community_code": "社区代码", "post": "岗位", "hired": "入职日期",
                 "education": "学历", "grade": "等级", "monthly_yuan": "月薪(元)"}  # fmt: skip
        xlsx(out, {"工资": workers.rename(columns=names)[list(names.values())],
                   "汇总": pd.DataFrame({"项目": list(totals), "数值": list(totals.values())})})  # fmt: skip
    text = [f"{k}: {v:,.0f}" if isinstance(v, float) else f"{k}: {v:,}" for k, v in totals.items()]
    emit(as_json, {**totals, "on": when.isoformat()}, lines([*text, f"XLSX: {out}" if out else ""]))
