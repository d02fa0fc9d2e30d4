"""Every word the maps show, in Chinese and English, in one table.

``text(key, lang, **values)`` formats the entry; a key missing from the table is a bug and
fails loudly (no silent fallback to the key).
"""

from __future__ import annotations

LABELS: dict[str, tuple[str, str]] = {
    # shared
    "code": ("代码", "code"),
    "community": ("社区", "community"),
    "communities": ("社区边界", "community boundaries"),
    "served": ("服务对象", "served"),
    "covered": ("覆盖率", "covered"),
    "covered share": ("覆盖率", "covered share"),
    "not applicable": ("不适用", "does not apply"),
    "worker": ("责任网格员", "worker"),
    "roads": ("道路", "roads"),
    "walk": ("步行", "walk"),
    "straight": ("直线", "straight"),
    "nobody": ("无服务对象", "no one to serve"),
    # coverage
    "coverage title": (
        "{scope} · {type}覆盖 ({radius} m {how})",
        "{scope} · {type} coverage ({radius} m {how})",
    ),
    "grid share": ("网格覆盖率", "grid covered share"),
    "community share": ("社区覆盖率", "community covered share"),
    "uncovered": ("未覆盖户数密度", "uncovered households"),
    "uncovered households": ("未覆盖户数", "uncovered households"),
    "gaps": ("覆盖缺口", "gap areas"),
    "gap": ("覆盖缺口", "gap"),
    "served in gap": ("缺口内服务对象", "served in gap"),
    "service areas": ("服务范围 (步行)", "service areas (walking)"),
    "no grids, by community": ("该范围尚无网格，按社区着色", "no grids here: shaded by community"),
    "no facility": ("该范围无{type}", "no {type} here"),
    "no gaps": ("无覆盖缺口", "no gap areas"),
    "facilities and gaps": ("设施与缺口", "facilities and gaps"),
    "overview title": ("{city} · 社区服务设施覆盖总览", "{city} — community service coverage"),
    "type title": ("{city} · {type}覆盖", "{city} — {type} coverage"),
    "community code": ("社区代码", "code"),
    "streets": ("街道/镇", "streets"),
    "street": ("街道/镇", "street"),
    "districts": ("区县", "districts"),
    "detail map": ("{name} 详细图", "{name}: detailed map"),
    "not computed": ("未计算覆盖: {types}", "not computed: {types}"),
    # staffing
    "staffing title": ("{scope} · 社区工作者配备", "{scope} staffing"),
    "ok": ("达标", "as quota"),
    "below_minimum": ("低于最低配备", "below minimum"),
    "under_quota": ("缺编", "under quota"),
    "over_quota": ("超编", "over quota"),
    "households": ("户数", "households"),
    "quota": ("定额", "quota"),
    "roster": ("在册", "roster"),
    "flag": ("提示", "flag"),
    "community staffing": ("社区配备", "community staffing"),
    "unassigned": ("未分配", "unassigned"),
    "in band": ("✓", "✓"),
    "out of band": ("超出 {lo}–{hi}", "out of band"),
    "grids by worker": ("网格（按责任网格员着色）", "grids by worker"),
    "grid": ("网格代码", "grid"),
    "grid households": ("网格户数", "grid households"),
    "worker load": ("网格员总户数", "worker load"),
    "band": ("{lo}–{hi} 户", "{lo}–{hi} band"),
    "load out of band": ("负荷超出范围的网格", "worker load out of band"),
    "communities (flags)": ("社区（配备提示）", "communities (flags)"),
    "flagged": ("需关注的社区", "flagged communities"),
    "no grids": ("该范围尚无网格", "no grids here"),
    "workers": ("网格员", "workers"),
    "one colour per worker": ("每种颜色一名网格员，相邻不同色", "one colour per worker"),
    "load legend": ("负荷超出 {lo}–{hi} 户", "load out of band"),
    # scenario
    "scenario title": ("方案 {name} · {type} · {scope}", "Scenario {name} · {type} · {scope}"),
    "share before": ("覆盖率（建设前）", "covered share (before)"),
    "share after": ("覆盖率（建设后）", "covered share (after)"),
    "newly covered": ("新增覆盖的网格", "newly covered grids"),
    "change": ("覆盖率变化", "change"),
    "scenario communities": ("社区边界", "communities"),
    "existing type": ("现有{type}", "existing {type}"),
    "sites": ("候选/选中站点", "candidate sites"),
    "rank": ("排名", "rank"),
    "site": ("候选点", "site"),
    "gain": ("新增覆盖", "newly covered"),
    "share after short": ("覆盖率(后)", "share after"),
    "item": ("指标", "item"),
    "value": ("值", "value"),
    "objective": ("目标", "objective"),
    "objective value": ("目标值", "value"),
    "optimality gap": ("最优性差距", "gap"),
    "results": ("方案结果 — {name}", "results — {name}"),
    "no gain": ("无新增覆盖的网格", "no grid gains coverage"),
    "site legend": ("站点", "sites"),
    "candidate": ("候选/选中站点", "candidate"),
    "existing": ("现有设施", "existing"),
    "newly covered legend": ("新增覆盖网格", "newly covered"),
    "orders title": ("{scope} · 工单", "{scope} work orders"),
    "grids by order rate": ("网格（每千户工单数）", "grids by orders per 1,000 households"),
    "orders": ("工单数", "orders"),
    "per 1000": ("每千户工单", "per 1,000 households"),
    "open orders": ("未办结", "open"),
    "overdue orders": ("超时工单", "overdue orders"),
    "open in time": ("办理中工单", "open orders in time"),
    "hot spots": (
        "重复诉求热点（同一地点同类≥{n}次）",
        "hot spots (same category ≥{n} times at one place)",
    ),
    "order type": ("类别", "category"),
    "order state": ("状态", "state"),
    "order id": ("工单编号", "order"),
    "city title": ("{scope} · 楼栋与社区", "{scope} buildings and communities"),
    "cells note": (
        "放大到14级以前，每个点是一格（8像素）内同一社区楼栋的户数合计；点击查看",
        "below zoom 14 a dot sums the households of one community's buildings in an 8 px cell; click one",
    ),
    "buildings n": ("楼栋数", "buildings"),
    "street boundaries": ("街道/乡镇边界", "street boundaries"),
    "buildings by households": ("楼栋（户数）", "buildings (households)"),
    "residents": ("人口", "residents"),
    "elderly": ("60岁以上", "aged 60+"),
    "building": ("楼栋编号", "building"),
    "rate legend": ("每千户工单：浅 → 深", "orders per 1,000 households: light → dark"),
    "province title": (
        "{province} · 各市县社区服务覆盖",
        "{province}: community service coverage by county",
    ),
    "cities": ("地级市", "cities"),
    "counties": ("县区", "counties"),
    "county": ("县区", "county"),
    "city": ("城市", "city"),
    "grids n": ("网格数", "grids"),
    "grid workers": ("网格员", "grid workers"),
    "county share": ("县区覆盖率", "county covered share"),
}


def text(key: str, lang: str, **values: object) -> str:
    """The label ``key`` in ``lang`` (zh or en), with ``values`` filled in."""
    zh, en = LABELS[key]
    return (zh if lang == "zh" else en).format(**values)


def sep(lang: str) -> str:
    """The separator between notes."""
    return "；" if lang == "zh" else "; "
