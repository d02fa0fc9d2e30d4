"""Work-order workflows: create (located, dispatched), move through the states, read, the
change feed and the deadline sweep.

Every write is one transaction with its event rows (the history, which is also the change
feed) and an audit row; a move holds its order's row from the read to the commit. Events
are appended to the ``order_events`` journal, which the store numbers; the feed reader
settles the journal first (waits for appenders in flight), so a consumer reading
``seq > cursor`` never misses a change and never sees one twice, while writers of
different orders never wait for each other.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

import geopandas as gpd
import shapely

from gis import crs as gcrs
from gis import orders as om
from gis import schema
from gis.access import Principal
from gis.errors import AccessError, ConflictError, NotFoundError, ValidationError
from gis.locate import LAYERS as LOCATE_LAYERS
from gis.locate import Locator
from gis.store import Store, Tx
from gis.store.base import TIMEZONE

LOCK = ("order_events", "orders")
Clock = Callable[[], datetime]
MAX_TEXT = 2000
MAX_ATTACHMENTS = 10
URL = re.compile(r"^https?://[^\s<>\"']{1,500}$")


def wall_clock() -> datetime:
    """Now, in China Standard Time."""
    return datetime.now(TIMEZONE)


def _events(order_id: str, at: str, who: str, steps: list[tuple[str, str | None, str, int, str | None]]) -> list[dict[str, Any]]:  # fmt: skip
    """The ``order_events`` rows of ``steps`` (action, from, to, version, detail); the
    store numbers them (:meth:`gis.store.Tx.append`).
    """
    return [
        {
            "order_id": order_id,
            "at": at,
            "who": who,
            "action": a,
            "from_state": f,
            "to_state": to,
            "version": v,
            "detail": d,
        }  # fmt: skip
        for a, f, to, v, d in steps
    ]


def _point(tx: Tx, body: Mapping[str, Any]) -> tuple[shapely.Point, str | None]:
    """Where the order is: a point (any supported CRS), a building id or an address."""
    problems: list[str] = []
    bid, addr = body.get("building_id"), body.get("address")
    if bid is not None or addr is not None:
        col, val = ("id", bid) if bid is not None else ("address", addr)
        found = tx.rows("buildings", {col: str(val)})
        if not found:
            raise ValidationError("work order", [f"no building with {col} {val!r}"])
        return found[0]["geometry"], str(found[0]["id"])
    lon, lat = body.get("lon"), body.get("lat")
    if lon is None or lat is None:
        raise ValidationError("work order", ["give lon and lat, or building_id, or address"])
    try:
        x, y = float(lon), float(lat)
    except (TypeError, ValueError):
        raise ValidationError("work order", ["lon and lat must be numbers"]) from None
    if not (np.isfinite(x) and np.isfinite(y)):
        problems.append("lon and lat must be finite numbers")
    if problems:
        raise ValidationError("work order", problems)
    crs = body.get("crs")
    metric = 4548
    if crs is not None and tx.has("districts"):
        metric = int(gcrs.metric_crs_of(tx.read("districts")).to_epsg() or 4548)
    uri = gcrs.resolve(None if crs is None else str(crs), metric)
    lo, la = gcrs.transformer(uri, inverse=True, axis_order=False)(np.array([x]), np.array([y]))
    return shapely.Point(float(np.asarray(lo)[0]), float(np.asarray(la)[0])), None


def _check_body(body: Mapping[str, Any], types: Mapping[str, om.OrderType]) -> list[str]:
    problems = []
    if body.get("source") not in om.SOURCES:
        problems.append(f"source {body.get('source')!r} is not one of {', '.join(om.SOURCES)}")
    if body.get("type") not in types:
        problems.append(f"unknown category {body.get('type')!r}; one of {', '.join(types)}")
    d = body.get("description")
    if not isinstance(d, str) or not d.strip() or len(d) > MAX_TEXT:
        problems.append(f"description: 1–{MAX_TEXT} characters")
    ext = body.get("external_id")
    if ext is not None and (not isinstance(ext, str) or not 1 <= len(ext) <= 100):
        problems.append("external_id: 1–100 characters")
    rep = body.get("reporter")
    if rep is not None and (not isinstance(rep, str) or len(rep) > 200):
        problems.append("reporter: at most 200 characters")
    att = body.get("attachments") or []
    if (
        not isinstance(att, list)
        or len(att) > MAX_ATTACHMENTS
        or not all(isinstance(a, str) and URL.match(a) for a in att)
    ):
        problems.append(f"attachments: at most {MAX_ATTACHMENTS} http(s) links")
    return problems


def route(
    staff: list[dict[str, Any]], hit: Mapping[str, Any], t: om.OrderType
) -> tuple[str, str | None, str]:
    """Level, worker id and the name of who takes an order located at ``hit``: the grid's
    worker; for a vacant post the community's window worker, then its head (``staff``:
    the community's workers); a category for a department goes to the street.
    """
    if t.handler == "street":
        return "street", None, f"{hit['street']['name'] or hit['street']['code']}（街道）"
    w = hit.get("worker")
    if w is not None and not w["vacant"]:
        return "community", str(w["id"]), str(w["name"])
    for col, value in (("role", "window"), ("post", "正职")):
        found = [s for s in staff if s.get(col) == value]
        if found:
            return "community", str(found[0]["id"]), str(found[0]["name"])
    return "community", None, str(w["name"]) if w is not None else f"{hit['community']['name']}"


def _visible(order: Mapping[str, Any], who: Principal) -> bool:
    if who.role == "worker":
        return order["worker_id"] == who.worker_id
    if who.role == "dispatcher":
        return order["creator"] == who.name
    return who.at_least("supervisor") and who.covers(str(order["community_code"]))


def _public(order: Mapping[str, Any], who: Principal) -> dict[str, Any]:
    """The order as the caller may see it (the reporter's contact only for the assigned
    worker and supervisors).
    """
    out = {k: (None if _na(v) else v) for k, v in order.items() if k != "geometry"}
    if not (
        who.at_least("supervisor") or (who.role == "worker" and order["worker_id"] == who.worker_id)
    ):
        out.pop("reporter", None)
    att = out.get("attachments")
    out["attachments"] = json.loads(att) if isinstance(att, str) and att else []
    out["state_zh"] = om.STATE_ZH.get(str(out["state"]), out["state"])
    g = order.get("geometry")
    if g is not None:
        out["lon"], out["lat"] = round(float(g.x), 7), round(float(g.y), 7)
    return out


def _na(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA or v is pd.NaT


def create(
    store: Store,
    who: Principal,
    body: Mapping[str, Any],
    *,
    clock: Clock = wall_clock,
    types: Mapping[str, om.OrderType] | None = None,
    locator: Locator | None = None,
) -> tuple[dict[str, Any], bool]:
    """Create a work order, located and dispatched; returns it and whether it is new.

    Idempotent on ``(source, external_id)``: a caller that retries gets the order it
    created the first time, never a second one.
    """
    if not (who.role == "dispatcher" or who.at_least("supervisor")):
        raise AccessError("creating work orders needs a dispatcher or supervisor key")
    types = types or om.catalogue()
    problems = _check_body(body, types)
    if problems:
        raise ValidationError("work order", problems)
    t = types[str(body["type"])]
    # rows, not layers, are locked: creates and moves of other orders go on side by side
    with store.transaction() as tx:
        tx.will_write("orders", "order_events", "audit")
        ext = body.get("external_id")
        if ext is not None:
            tx.lock_key(f"orders:{body['source']}:{ext}")  # the same order sent twice waits
            same = tx.rows("orders", {"source": str(body["source"]), "external_id": ext})
            if same:
                row = same[0]
                if not _visible(row, who) and row["creator"] != who.name:
                    raise ConflictError(
                        f"{body['source']} order {ext!r} exists, created by another caller"
                    )
                return _public(row, who), False
        point, building = _point(tx, body)
        loc = locator or Locator({n: tx.read(n) for n in LOCATE_LAYERS if tx.has(n)})
        hit = loc.locate(np.array([point.x]), np.array([point.y]), facilities=False)[0]
        if hit is None:
            raise ValidationError(
                "work order", [f"the point ({point.x:.6f}, {point.y:.6f}) is outside the city"]
            )
        if who.at_least("supervisor") and not who.covers(hit["community"]["code"]):
            raise AccessError("the point lies outside this key's jurisdiction")
        code = hit["community"]["code"]
        w = hit.get("worker")
        vacant = t.handler != "street" and (w is None or w["vacant"])
        # the community's staff only when the grid's post is vacant (one round trip less)
        staff = tx.rows("workers", {"community_code": code}) if vacant else []
        level, worker, assignee = route(staff, hit, t)
        at = clock()
        stamp = om.stamp(at)
        oid = f"GD{at.strftime('%Y%m%d')}{uuid.uuid4().hex[:8].upper()}"
        row = {
            "id": oid, "source": body["source"], "external_id": ext, "type": t.code,
            "description": str(body["description"]).strip(), "state": "dispatched", "version": 1,
            "level": level, "district_code": hit["district"]["code"], "street_code": hit["street"]["code"],
            "community_code": code, "grid_code": hit["grid"]["code"],
            "worker_id": worker, "assignee": assignee, "building_id": building,
            "reporter": body.get("reporter"), "attachments": json.dumps(body.get("attachments") or []),
            "creator": who.name, "created": stamp, "updated": stamp, "stage_start": stamp,
            "deadline": om.stamp(om.deadline(t, "accept", at)), "delay_h": 0.0,
            "delay_requested": False, "escalated_at": None, "satisfaction": None,
        }  # fmt: skip
        tx.add("orders", [row | {"geometry": point}])
        tx.append("order_events", _events(oid, stamp, who.name, [
            ("report", None, "reported", 1, t.name_zh),
            ("dispatch", "reported", "dispatched", 1, f"{level}: {assignee}"),
        ]))  # fmt: skip
        tx.audit(who.name, "orders.create", oid, f"{t.code} -> {assignee}")
    return _public(row | {"geometry": point}, who), True


#: what a CQL2 filter on orders may use: every property but the reporter's contact
#: (personal data, not a search key) — and the point
FILTERABLE = {
    **{
        f.name: schema.JSON_TYPES[f.kind]
        for f in schema.layer("orders").fields
        if f.name != "reporter"
    },
    "geometry": "geometry",
}


def _may_see_orders(who: Principal) -> bool:
    return who.role in ("worker", "dispatcher") or who.at_least("supervisor")


def _get(tx: Tx, order_id: str, who: Principal, *, for_update: bool = False) -> dict[str, Any]:
    if not _may_see_orders(who):
        raise AccessError("work orders are for supervisors, their workers and dispatchers")
    found = tx.rows("orders", {"id": order_id}, for_update=for_update)
    if not found or not _visible(found[0], who):
        raise NotFoundError("work order", [f"no work order {order_id!r}"])
    return found[0]


def move(
    store: Store,
    who: Principal,
    order_id: str,
    action: str,
    *,
    version: int,
    note: str | None = None,
    worker_id: str | None = None,
    hours: float | None = None,
    satisfaction: int | None = None,
    clock: Clock = wall_clock,
    types: Mapping[str, om.OrderType] | None = None,
) -> dict[str, Any]:
    """Move an order one step (see :data:`gis.orders.MOVES`), if ``version`` is still
    the order's (else 409: someone moved it first).
    """
    types = types or om.catalogue()
    if note is not None and len(note) > MAX_TEXT:
        raise ValidationError("order transition", [f"note: at most {MAX_TEXT} characters"])
    with store.transaction() as tx:
        tx.will_write("orders", "order_events", "audit")
        o = _get(tx, order_id, who, for_update=True)  # the order's row, locked to the commit
        if int(o["version"]) != int(version):
            raise ConflictError(
                f"work order {order_id} is at version {o['version']}, not {version}: "
                "it changed since it was read; read it again"
            )
        m = om.check_move(
            action, str(o["state"]), role=who.role, is_assignee=o["worker_id"] == who.worker_id
            and who.role == "worker", is_creator=o["creator"] == who.name,
            in_scope=who.covers(str(o["community_code"])),
        )  # fmt: skip
        at = clock()
        stamp = om.stamp(at)
        t = types.get(str(o["type"]))
        if t is None:
            raise ValidationError(
                "order transition", [f"category {o['type']!r} is no longer in the catalogue"]
            )
        new: dict[str, Any] = {"version": int(o["version"]) + 1, "updated": stamp}
        target = m.target or str(o["state"])
        detail = note
        if action in ("dispatch", "transfer", "reopen"):
            if worker_id is not None:
                w = tx.rows("workers", {"id": worker_id})
                if not w or not who.covers(str(w[0]["community_code"])):
                    raise ValidationError("order transition", [f"no worker {worker_id!r} here"])
                new |= {"worker_id": worker_id, "assignee": str(w[0]["name"])}
                detail = f"-> {w[0]['name']}" + (f"; {note}" if note else "")
        if action == "request_delay" or action == "grant_delay":
            if hours is None or not 0 < float(hours) <= 24 * 30:
                raise ValidationError("order transition", ["hours: more than 0, at most 720"])
            detail = f"{float(hours):g} h" + (f"; {note}" if note else "")
            if action == "request_delay":
                new["delay_requested"] = True
            else:
                new["delay_requested"] = False
                new["delay_h"] = float(o["delay_h"]) + float(hours)
                new["deadline"] = om.stamp(
                    datetime.fromisoformat(str(o["deadline"])) + pd.Timedelta(hours=float(hours))
                )
        if action == "close":
            if satisfaction is None or not 1 <= int(satisfaction) <= 5:
                raise ValidationError(
                    "order transition", ["satisfaction: 1 (very unhappy) to 5 (very happy)"]
                )
            new["satisfaction"] = int(satisfaction)
        if action == "escalate":
            new["level"] = om.next_level(str(o["level"]))
        if target != o["state"]:
            new["state"] = target
            stage = om.STAGE.get(target)
            new["stage_start"] = stamp if stage else None
            new["deadline"] = om.stamp(om.deadline(t, stage, at)) if stage else None
            new["delay_h"], new["delay_requested"] = 0.0, False
        # the row is locked and known to be there: the update goes with the commit
        tx.update_many("orders", [(order_id, new)])
        tx.append("order_events", _events(order_id, stamp, who.name, [
            (action, str(o["state"]), target, new["version"], detail),
        ]))  # fmt: skip
        tx.audit(who.name, f"orders.{action}", order_id, f"{o['state']} -> {target}")
    return _public(o | new, who)


def get(store: Store, who: Principal, order_id: str) -> dict[str, Any]:
    """An order with its history."""
    with store.snapshot() as tx:
        o = _public(_get(tx, order_id, who), who)
        h = tx.read("order_events", where={"order_id": order_id}).sort_values("seq")
    o["history"] = [
        {k: (None if _na(v) else v) for k, v in r.items()} for r in h.to_dict("records")
    ]
    return o


def listing(
    store: Store,
    who: Principal,
    *,
    where: Mapping[str, Any] | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    since: str | None = None,
    until: str | None = None,
    limit: int = 100,
    offset: int = 0,
    clock: Clock = wall_clock,
    cql: Any = None,
) -> tuple[list[dict[str, Any]], int]:
    """The orders the caller may see (filters on columns, a bbox, a creation time range,
    a CQL2 filter as parsed by :func:`api.http.ogc.parse_filter` over
    :data:`FILTERABLE`), with their deadline colour now; and how many match.
    """
    if not (who.role in ("worker", "dispatcher") or who.at_least("supervisor")):
        raise AccessError("work orders are for supervisors, their workers and dispatchers")
    if not store.has("orders"):
        return [], 0
    df = store.read("orders", bbox=bbox, where=dict(where or {}) or None)
    if who.role == "worker":
        df = df[df["worker_id"] == who.worker_id]
    elif who.role == "dispatcher":
        df = df[df["creator"] == who.name]
    elif who.scope:
        df = df[df["community_code"].str.startswith(who.scope)]
    if cql is not None and cql is not True and len(df):
        from pygeofilter.backends.geopandas.evaluate import to_filter

        mask = False if cql is False else to_filter(df, cql, {c: c for c in FILTERABLE})
        df = df[np.broadcast_to(np.asarray(mask, dtype=bool), (len(df),))]
    created = pd.to_datetime(df["created"], utc=True, format="ISO8601")
    for bound, keep in ((since, lambda c, b: c >= b), (until, lambda c, b: c <= b)):
        if bound is not None:
            df = df[
                keep(
                    created,
                    pd.Timestamp(bound).tz_convert("UTC")
                    if pd.Timestamp(bound).tzinfo
                    else pd.Timestamp(bound).tz_localize(TIMEZONE).tz_convert("UTC"),
                ).to_numpy()
            ]
            created = pd.to_datetime(df["created"], utc=True, format="ISO8601")
    df = df.sort_values("id")
    total = len(df)
    page = df.iloc[offset : offset + limit]
    col = om.colours(page, clock())
    rows = []
    for i, r in enumerate(page.to_dict("records")):
        out = _public(r, who)
        out["colour"] = col[i] or None
        rows.append(out)
    return rows, total


def changes(
    store: Store, who: Principal, after: int = 0, limit: int = 1000
) -> tuple[list[dict[str, Any]], int]:
    """Events after the cursor ``after``, in order, for orders the caller may see; and the
    cursor to ask from next (the last event's number, or ``after`` when none).
    """
    if not (who.role in ("worker", "dispatcher") or who.at_least("supervisor")):
        raise AccessError("the change feed is for supervisors, their workers and dispatchers")
    if not store.has("order_events"):
        return [], after
    with store.settled("order_events") as tx:  # no change can commit below the cursor
        events = tx.rows("order_events", {}, above={"seq": int(after)}, limit=limit)
        ids = sorted({e["order_id"] for e in events})
        orders = tx.read("orders", where={"id": ids}) if ids else tx.read("orders").head(0)
    ev = pd.DataFrame(events, columns=schema.layer("order_events").columns)
    ok = {r["id"] for r in orders.to_dict("records") if _visible(r, who)}
    cursor = int(ev["seq"].max()) if len(ev) else after
    out = [
        {k: (None if _na(v) else v) for k, v in r.items()}
        for r in ev.to_dict("records")
        if r["order_id"] in ok
    ]
    return out, cursor


def sweep(store: Store, *, clock: Clock = wall_clock, who: str = "deadline-sweep") -> list[str]:
    """Escalate every open order whose stage is over its deadline one level (once per
    stage); returns their ids.

    Only the orders past their deadline are read (deadlines are stored in one format, so
    the store compares them as text), and they change in one statement.
    """
    if not store.has("orders"):
        return []
    at = clock()
    stamp = om.stamp(at)
    cols = ["state", "level", "version", "stage_start", "deadline", "escalated_at"]
    with store.transaction(lock=LOCK) as tx:
        rows = tx.rows("orders", {"state": list(om.STAGE)}, below={"deadline": stamp}, columns=cols)
        late = om.overdue(pd.DataFrame(rows, columns=["id", *cols]), at)
        if not len(late):
            return []
        late = late.sort_values("id")
        level = late["level"].map(om.next_level)
        version = late["version"].astype(int) + 1
        tx.update_many("orders", [
            (oid, {"level": lv, "escalated_at": st, "version": int(v), "updated": stamp})
            for oid, lv, st, v in zip(late["id"], level, late["stage_start"], version, strict=True)
        ])  # fmt: skip
        ev = pd.DataFrame({
            "order_id": late["id"].to_numpy(),
            "at": stamp, "who": who, "action": "auto_escalate", "from_state": late["state"].to_numpy(),
            "to_state": late["state"].to_numpy(), "version": version.to_numpy(),
            "detail": (late["level"] + " -> " + level).to_numpy(),
        })  # fmt: skip
        tx.append("order_events", ev.to_dict("records"))
        tx.audit(who, "orders.sweep", "orders", f"{len(late)} overdue escalated")
    return list(late["id"])


ASSESS_COLUMNS = {
    "code": "代码", "orders": "工单数", "open": "未办结", "overdue_now": "当前超时",
    "on_time_accept": "签收及时率", "on_time_handle": "办理及时率", "on_time_verify": "核查及时率",
    "handle_hours": "平均办理时长(小时)", "satisfaction": "平均满意度", "per_1000_households": "每千户工单",
}  # fmt: skip


def assessment(
    store: Store,
    who: Principal,
    level: str = "community",
    *,
    month: str | None = None,
    clock: Clock = wall_clock,
) -> pd.DataFrame:
    """On-time rates, handling time, overdue orders and satisfaction per grid, worker,
    community or street, for the orders the caller may see (created in ``month``,
    ``YYYY-MM``, when given).
    """
    if level not in ("grid", "worker", "community", "street"):
        raise ValidationError("assessment", [f"level {level!r}: grid, worker, community or street"])
    if month is not None and not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        raise ValidationError("assessment", [f"month {month!r} is not YYYY-MM"])
    rows, _ = listing(store, who, limit=10**9, clock=clock)
    if not rows:
        return pd.DataFrame(columns=list(ASSESS_COLUMNS))
    orders = pd.DataFrame(rows)
    if month is not None:
        orders = orders[orders["created"].str.startswith(month)]
    with store.snapshot() as tx:
        ev = (
            tx.read("order_events", where={"order_id": list(orders["id"])}) if len(orders) else None
        )
        f = {n: tx.read(n) for n in ("buildings", "grids") if tx.has(n)}
    if ev is None:
        return pd.DataFrame(columns=list(ASSESS_COLUMNS))
    if level == "grid":
        hh = (
            f["grids"][["code", "households"]]
            if "grids" in f
            else pd.DataFrame(columns=["code", "households"])
        )
    elif level == "worker":
        hh = pd.DataFrame(columns=["code", "households"])
    else:
        col = {"community": "community_code", "street": "community_code"}[level]
        b = f["buildings"]
        codes = b[col].str[: 12 if level == "community" else 9]
        hh = b.groupby(codes)["households"].sum().rename_axis("code").reset_index()
    return om.assess(orders, ev, hh, om.catalogue(), clock(), level)


def reroute(tx: Tx, grids: gpd.GeoDataFrame, who: str, clock: Clock = wall_clock) -> int:
    """Inside a transaction that replaces the grids: every open order whose grid is gone
    goes to the new grid holding its point (and that grid's worker, where one is
    assigned), with an event in its history. Returns how many moved.
    """
    if not tx.has("orders"):
        return 0
    o = tx.read("orders", where={"state": list(om.OPEN)})
    gone = o[~o["grid_code"].isin(set(grids["code"])) & o["grid_code"].notna()]
    if not len(gone):
        return 0
    tree = shapely.STRtree(grids.geometry.values)
    hit = tree.query(gone.geometry.values, predicate="intersects")
    new_of = dict(zip(hit[0].tolist(), grids["code"].to_numpy()[hit[1]].tolist(), strict=True))
    a = tx.read("assignments") if tx.has("assignments") else None
    worker_of = dict(zip(a["grid_code"], a["worker_id"], strict=True)) if a is not None else {}
    names = (
        tx.read("workers").set_index("id")["name"] if tx.has("workers") else pd.Series(dtype=str)
    )
    stamp = om.stamp(clock())
    steps = []
    for i, r in enumerate(gone.to_dict("records")):
        code = new_of.get(i)
        if code is None:
            continue
        new: dict[str, Any] = {
            "grid_code": code,
            "version": int(r["version"]) + 1,
            "updated": stamp,
        }
        w = worker_of.get(code)
        if w is not None and w in names.index:
            new |= {"worker_id": w, "assignee": str(names[w])}
        tx.update("orders", r["id"], new)
        steps.append((r["id"], r["state"], new["version"], f"{r['grid_code']} -> {code}"))
    if steps:
        tx.append("order_events", [
            e for oid, st, v, d in steps for e in _events(oid, stamp, who, [("reroute", st, st, v, d)])
        ])  # fmt: skip
    return len(steps)
