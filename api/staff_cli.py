"""``gridgis staff``: quotas under the city cap, workers sunk into grids, payroll."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

from api.options import JsonOpt, StoreOpt
from gis import io as gio
from gis import schema
from gis.assign import assign
from gis.errors import InputFileError
from gis.staffing import GradeRules, StaffRules, payroll, quotas, salary_table
from gis.store import Store, open_store

app = typer.Typer(
    help="社区工作者配备 — quotas, sinking workers into grids, 三岗十八级 payroll.",
    no_args_is_help=True,
)

OutOpt = Annotated[Path | None, typer.Option("--out", "-o", help="Also write the table as XLSX.")]
RatioOpt = Annotated[
    float, typer.Option("--ratio", help="Households per worker for the rule quota.")
]
MinOpt = Annotated[int, typer.Option("--min-urban", help="Fewest workers in an urban community.")]
CapOpt = Annotated[
    int, typer.Option("--cap", help="Approved total for urban communities (核定总量); 0 = no cap.")
]
WindowOpt = Annotated[int, typer.Option("--window", help="Window staff per community (一窗受理).")]

QUOTA_COLUMNS = {
    "code": "社区代码",
    "name": "社区/村",
    "kind": "类型",
    "households": "户数",
    "policy_min": "政策下限(1:400)",
    "policy_max": "政策上限(1:300)",
    "rule_quota": "规则定额",
    "quota": "核定后定额",
    "window": "窗口人员",
    "grid_workers": "网格员",
    "roster": "在册人数",
    "gap": "缺口",
}


def _rules(ratio: float, min_urban: int, cap: int, window: int) -> StaffRules:
    return StaffRules(ratio=ratio, urban_min=min_urban, cap=cap or None, window=window)


def _quota_table(
    store: Store | None, files: dict[str, Path] | None, rules: StaffRules
) -> pd.DataFrame:
    if files is not None:
        layers = gio.load(files)
        comms, blds = layers["communities"], layers["buildings"]
        roster = None
    else:
        assert store is not None
        comms, blds = (
            store.read("communities"),
            store.read("buildings", columns=["community_code", "households"]),
        )
        roster = store.read("workers") if store.has("workers") else None
    q = quotas(comms, blds.groupby("community_code")["households"].sum(), rules)
    have = roster.groupby("community_code").size() if roster is not None else pd.Series(dtype=int)
    q["roster"] = q["code"].map(have).fillna(0).astype(int)
    q["gap"] = q["quota"] - q["roster"]
    return q


def _emit(payload: dict[str, Any], as_json: bool, lines: list[str]) -> None:
    from api.cli import console

    if as_json:
        sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2, default=str) + "\n")
    else:
        for line in lines:
            console.print(line, highlight=False)


def _xlsx(out: Path, sheets: dict[str, pd.DataFrame]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.partial.xlsx")
    with pd.ExcelWriter(tmp) as xl:
        for name, df in sheets.items():
            df.to_excel(xl, sheet_name=name, index=False)
    tmp.replace(out)


@app.command()
def quota(
    ratio: RatioOpt = 350,
    min_urban: MinOpt = 5,
    cap: CapOpt = 1540,
    window: WindowOpt = 1,
    communities: Annotated[Path | None, typer.Option(help="File mode: community polygons.")] = None,
    buildings: Annotated[
        Path | None, typer.Option(help="File mode: buildings with households.")
    ] = None,
    out: OutOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Worker quota per community: max(minimum, ⌈households / ratio⌉), apportioned to the cap.

    The policy range ⌈H/400⌉–⌈H/300⌉ is reported beside it. When the urban rule quotas add
    up to more than the cap, the cap is shared in proportion to households (largest
    remainder) without taking any urban community under its minimum.
    """
    from api.cli import file_inputs, store_spec

    rules = _rules(ratio, min_urban, cap, window)
    files = file_inputs("staff quota", {"communities": communities, "buildings": buildings})
    q = _quota_table(None if files else open_store(store_spec(store)), files, rules)
    urban = q["kind"] == "urban"
    payload = {
        "communities": q[["code", "kind", "households", "rule_quota", "quota"]].to_dict("records"),
        "cap": rules.cap,
        "total": int(q.loc[urban, "quota"].sum()),
        "rule_total": int(q.loc[urban, "rule_quota"].sum()),
        "rural_total": int(q.loc[~urban, "quota"].sum()),
    }
    if out is not None:
        _xlsx(out, {"定额": q.rename(columns=QUOTA_COLUMNS)})
    _emit(
        payload,
        as_json,
        [
            f"城市社区 {int(urban.sum())} 个: 规则定额 {payload['rule_total']:,}, 核定总量 {rules.cap or '—'}, "
            f"核定后 {payload['total']:,} (最少 {int(q.loc[urban, 'quota'].min()) if urban.any() else 0})",
            f"农村社区 {int((~urban).sum())} 个: 定额 {payload['rural_total']:,}",
            f"城市社区在册 {int(q.loc[urban, 'roster'].sum()):,} 人, "
            f"缺口 {int(q.loc[urban, 'gap'].clip(lower=0).sum()):,} 人"
            if files is None
            else "",
        ]
        + ([f"XLSX: {out}"] if out else []),
    )


@app.command("assign")
def assign_cmd(
    ratio: RatioOpt = 350,
    min_urban: MinOpt = 5,
    cap: CapOpt = 1540,
    window: WindowOpt = 1,
    out: OutOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Sink grid workers into grids: one responsible worker per grid, connected grid sets,
    loads balanced by households; earlier assignments are kept where they still work.
    """
    from api.cli import store_spec

    rules = _rules(ratio, min_urban, cap, window)
    s = open_store(store_spec(store))
    for need in ("grids", "workers"):
        if not s.has(need):
            raise InputFileError(
                f"{s.url} has no {need} yet (run `gridgis grids build` / `gridgis import --workers`)"
            )
    q = _quota_table(s, None, rules)
    previous = s.read("assignments") if s.has("assignments") else None
    a = assign(s.read("grids"), q, s.read("workers"), previous, rules=rules)
    s.write({"workers": a.workers, "assignments": a.assignments})
    payload = {
        "grids": int(len(a.assignments)),
        "grid_workers": int(len(a.loads)),
        "share_in_band_where_possible": round(a.share_in_band_where_possible, 4),
        "share_in_band_all": round(float(a.loads["in_band"].mean()), 4) if len(a.loads) else None,
        "moved": a.moved,
        "not_in_band": a.loads[~a.loads["in_band"]][
            ["worker_id", "community_code", "households", "note"]
        ].to_dict("records"),
    }
    if out is not None:
        _xlsx(
            out,
            {
                "网格责任人": a.assignments.rename(
                    columns={"grid_code": "网格代码", "worker_id": "工号"}
                ),
                "工作量": a.loads.rename(
                    columns={
                        "worker_id": "工号",
                        "community_code": "社区代码",
                        "grids": "网格数",
                        "households": "户数",
                        "in_band": "300-400户",
                        "possible": "可达",
                        "note": "说明",
                    }
                ),
            },
        )
    _emit(
        payload,
        as_json,
        [
            f"网格 {payload['grids']:,} 个, 网格员 {payload['grid_workers']:,} 人",
            f"负担 300–400 户 (可达处) {a.share_in_band_where_possible:.1%}; 全部 {payload['share_in_band_all']:.1%}",
            f"与上次相比调整 {a.moved} 人",
        ]
        + ([f"XLSX: {out}"] if out else []),
    )


@app.command("payroll")
def payroll_cmd(
    salary: Annotated[
        Path | None, typer.Option(help="Salary table TOML (default: the shipped example).")
    ] = None,
    on: Annotated[
        str | None,
        typer.Option(help="Date the grades are computed for (YYYY-MM-DD; default today)."),
    ] = None,
    ratio: RatioOpt = 350,
    min_urban: MinOpt = 5,
    cap: CapOpt = 1540,
    window: WindowOpt = 1,
    out: OutOpt = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """三岗十八级: each worker's grade (post, service years, degree credit) and monthly pay;
    the cost of the roster and of the full quota (vacancies at the entry grade).
    """
    from api.cli import store_spec

    s = open_store(store_spec(store))
    if not s.has("workers"):
        raise InputFileError(
            f"{s.url} has no workers; import a roster with `gridgis import --workers F`"
        )
    when = date.fromisoformat(on) if on else date.today()
    q = _quota_table(s, None, _rules(ratio, min_urban, cap, window))
    workers, totals = payroll(
        s.read("workers"),
        q[q["kind"] == "urban"],
        grades=GradeRules(),
        salaries=salary_table(salary),
        on=when,
    )
    s.write({"workers": workers[schema.layer("workers").columns]})
    if out is not None:
        _xlsx(
            out,
            {
                "工资": workers.rename(
                    columns={
                        "id": "工号",
                        "name": "姓名",
                        "community_code": "社区代码",
                        "post": "岗位",
                        "hired": "入职日期",
                        "education": "学历",
                        "grade": "等级",
                        "monthly_yuan": "月薪(元)",
                    }
                )[["工号", "姓名", "社区代码", "岗位", "入职日期", "学历", "等级", "月薪(元)"]],
                "汇总": pd.DataFrame({"项目": list(totals), "数值": list(totals.values())}),
            },
        )
    _emit(
        {**totals, "on": when.isoformat()},
        as_json,
        [f"{k}: {v:,.0f}" if isinstance(v, float) else f"{k}: {v:,}" for k, v in totals.items()]
        + ([f"XLSX: {out}"] if out else []),
    )
