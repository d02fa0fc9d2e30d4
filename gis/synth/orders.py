"""A month of synthetic work orders for the demo city, so every figure and map of the
service loop has something to show.

Orders arrive by time of day (few at night, peaks mid-morning and after work), at
buildings weighted by their households and by the facility gaps of their grid (where
services are out of walking reach, residents call the hotline more: a grid no facility
covers draws up to twice the orders per household); each goes through the loop with stage
times drawn around the category's deadlines, so a realistic share runs late, and the
newest are still open at the month's end.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

import geopandas as gpd
import shapely

from gis import orders as om
from gis import schema
from gis.locate import LAYERS as LOCATE_LAYERS
from gis.locate import Locator
from gis.store.base import TIMEZONE

#: orders per 1,000 households in a month (12345 hotline and patrol findings together)
PER_1000 = 5.0
TYPE_P = {"sanitation": 0.28, "repair": 0.24, "dispute": 0.10, "hazard": 0.10, "livelihood": 0.18,
          "care": 0.10}  # fmt: skip
#: how much more a household in a grid no facility covers calls than one fully covered
GAP_WEIGHT = 1.0
#: arrivals per hour of day (relative)
HOURLY = np.array(
    [1, 0.5, 0.3, 0.3, 0.4, 0.8, 2, 4, 7, 9, 9, 8, 6, 6, 7, 8, 8, 7, 6, 5, 4, 3, 2, 1.5]
)
DESCRIPTIONS = {
    "sanitation": ("楼道堆放杂物", "垃圾清运不及时", "小区绿化带有垃圾"),
    "repair": ("楼道灯不亮", "单元门禁损坏", "路面井盖松动", "健身器材损坏"),
    "dispute": ("邻里噪音纠纷", "停车位纠纷", "漏水引起邻里矛盾"),
    "hazard": ("飞线充电", "消防通道被占", "外墙脱落隐患"),
    "livelihood": ("咨询养老补贴办理", "申请临时救助", "办理居住证明"),
    "care": ("独居老人需要探访", "残疾人家庭需要帮扶", "留守儿童需要关爱"),
}


def gap_of_buildings(frames: dict[str, pd.DataFrame]) -> np.ndarray:
    """Per building, the share of its grid's households out of reach of a facility,
    averaged over the facility types (0 where there is no coverage table or grid).
    """
    b = frames["buildings"]
    cov, grids = frames.get("coverage"), frames.get("grids")
    out = np.zeros(len(b))
    if cov is None or grids is None or not len(cov) or not len(grids):
        return out
    g = cov[cov["level"] == "grid"]
    share = 1 - g["covered"] / g["served"].where(g["served"] > 0)
    gap = share.groupby(g["code"]).mean().fillna(0.0).clip(0, 1)
    inside, grid = shapely.STRtree(grids.geometry.values).query(
        b.geometry.values, predicate="intersects"
    )
    first = pd.Series(grid, index=inside).groupby(level=0).min()  # a point on a border: one grid
    codes = grids["code"].to_numpy()[first.to_numpy()]
    out[first.index.to_numpy()] = gap.reindex(codes).fillna(0.0).to_numpy()
    return out


def month_of_orders(
    frames: dict[str, pd.DataFrame], start: datetime, *, days: int = 30, seed: int = 0
) -> dict[str, pd.DataFrame]:
    """Layers ``orders`` and ``order_events`` for ``days`` from ``start``."""
    from gis.workflows.orders import route

    rng = np.random.default_rng(seed)
    types = om.catalogue()
    b = frames["buildings"]
    hh = b["households"].to_numpy(dtype=float)
    n = int(round(hh.sum() / 1000 * PER_1000 * days / 30))
    weight = hh * (1 + GAP_WEIGHT * gap_of_buildings(frames))
    pick = rng.choice(len(b), size=n, p=weight / weight.sum())
    pts = b.geometry.values[pick]
    loc = Locator({k: frames[k] for k in LOCATE_LAYERS if k in frames})
    hits = loc.locate(np.array([p.x for p in pts]), np.array([p.y for p in pts]))
    codes = list(TYPE_P)
    kinds = rng.choice(codes, size=n, p=np.array(list(TYPE_P.values())))
    day = rng.integers(0, days, size=n)
    hour = rng.choice(24, size=n, p=HOURLY / HOURLY.sum())
    minute = rng.integers(0, 60, size=n)
    end = start + timedelta(days=days)
    staff = frames["workers"].groupby("community_code") if "workers" in frames else None
    orders: list[dict[str, Any]] = []
    events: list[tuple[Any, ...]] = []
    geoms = []
    for i in np.argsort(day * 1440 + hour * 60 + minute, kind="stable"):
        hit = hits[i]
        if hit is None:
            continue
        t = types[str(kinds[i])]
        at = start + timedelta(days=int(day[i]), hours=int(hour[i]), minutes=int(minute[i]))
        code = hit["community"]["code"]
        mine = (
            staff.get_group(code).to_dict("records")
            if staff is not None and code in staff.groups
            else []
        )
        level, worker, assignee = route(mine, hit, t)
        oid = f"GD{at.strftime('%Y%m%d')}{i:06d}"
        who = worker or "街道"
        steps: list[tuple[str, str | None, str, datetime, str | None]] = [
            ("report", None, "reported", at, t.name_zh),
            ("dispatch", "reported", "dispatched", at, assignee),
        ]
        state, stage_start, now = "dispatched", at, at
        # each stage takes a share of its time: mostly well inside, about one in ten over
        for action, stage, nxt in (("accept", "accept", "accepted"), ("handle", "handle", "handled"),
                                   ("verify", "verify", "verified")):  # fmt: skip
            share = rng.lognormal(np.log(0.35), 0.6)
            done = now + timedelta(hours=t.hours(stage) * share)
            if done > end:
                break
            steps.append((action, state, nxt, done, None))
            state, stage_start, now = nxt, done, done
        satisfaction = None
        if state == "verified":
            done = now + timedelta(hours=float(rng.uniform(1, 24)))
            if done <= end:
                satisfaction = int(rng.choice([3, 4, 5], p=[0.1, 0.35, 0.55]))
                steps.append(("close", "verified", "closed", done, None))
                state, now = "closed", done
        running = om.STAGE.get(state)
        orders.append({
            "id": oid, "source": "hotline" if rng.random() < 0.7 else "patrol", "external_id": f"12345-{i:06d}",
            "type": t.code, "description": str(rng.choice(DESCRIPTIONS[t.code])), "state": state,
            "version": len(steps) - 1, "level": level, "district_code": hit["district"]["code"],
            "street_code": hit["street"]["code"], "community_code": code, "grid_code": hit["grid"]["code"],
            "worker_id": worker, "assignee": assignee, "building_id": str(b["id"].iloc[pick[i]]),
            "reporter": None, "attachments": "[]", "creator": "12345热线", "created": om.stamp(at),
            "updated": om.stamp(now), "stage_start": om.stamp(stage_start) if running else None,
            "deadline": om.stamp(om.deadline(t, running, stage_start)) if running else None,
            "delay_h": 0.0, "delay_requested": False, "escalated_at": None, "satisfaction": satisfaction,
        })  # fmt: skip
        geoms.append(pts[i])
        for v, (action, frm, to, when, detail) in enumerate(steps):
            events.append((oid, om.stamp(when), "12345热线" if v < 2 else (who if action != "verify" else "supervisor"),
                           action, frm, to, max(1, v), detail))  # fmt: skip
    ev = pd.DataFrame(
        events,
        columns=["order_id", "at", "who", "action", "from_state", "to_state", "version", "detail"],
    )
    ev = ev.sort_values("at", kind="stable").reset_index(drop=True)
    ev.insert(0, "seq", np.arange(1, len(ev) + 1, dtype=np.int64))
    o = gpd.GeoDataFrame(orders, geometry=geoms, crs=schema.STORAGE_CRS)
    return {
        "orders": schema.conform("orders", o),
        "order_events": schema.conform("order_events", ev),
    }


def last_month(today: datetime | None = None) -> datetime:
    """The start of the 30 days that end now (China Standard Time, at midnight)."""
    now = (today or datetime.now(TIMEZONE)).astimezone(TIMEZONE)
    return (now - timedelta(days=30)).replace(hour=0, minute=0, second=0, microsecond=0)
