"""Work orders (工单闭环): the catalogue, the state machine, deadlines and escalation.

Pure functions and tables; :mod:`gis.workflows.orders` reads and writes the store.

An order is **reported**, located and **dispatched** to the responsible worker of its grid
(or, for a category handled by a department, to its street), **accepted**, **handled**,
**verified** by a supervisor and **closed** with the resident's satisfaction. A worker may
**return** an order that is not theirs (a supervisor dispatches it again), ask for more time
(a supervisor grants it), a supervisor may **transfer** it to another worker or **escalate**
it beyond the community (street, then district), and a closed or verified one may be
**reopened**. Each stage — accept, handle, verify — runs on the category's deadline: yellow
once 75 % of its time is used, red when it is over; :func:`overdue` finds the red ones,
which escalate one level automatically.

Times are Asia/Shanghai, ISO 8601 with offset.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from gis.errors import ValidationError
from gis.reference import DATA_DIR, load_toml
from gis.store.base import TIMEZONE

SOURCES = ("hotline", "patrol", "app", "system")
STATES = (
    "reported", "dispatched", "accepted", "handled", "verified", "closed", "returned", "escalated",
)  # fmt: skip
#: states in which an order is still someone's work
OPEN = ("reported", "dispatched", "accepted", "handled", "returned", "escalated")
#: the stage (deadline) each state runs on
STAGE = {"dispatched": "accept", "accepted": "handle", "handled": "verify"}
LEVELS = ("community", "street", "district")
#: 75 % of a stage's time used: yellow
YELLOW = 0.75
STATE_ZH = {
    "reported": "已上报", "dispatched": "已派单", "accepted": "已签收", "handled": "已办结",
    "verified": "已核查", "closed": "已关闭", "returned": "已退回", "escalated": "已上报上级",
}  # fmt: skip


@dataclass(frozen=True)
class Move:
    """One transition: from which states, to which, and who may make it.

    ``who``: ``worker`` (the order's assigned worker), ``supervisor`` (a supervisor whose
    jurisdiction holds the order), ``creator`` (the dispatcher key that created it).
    """

    name: str
    sources: tuple[str, ...]
    target: str  # "" keeps the state (a delay asked or granted)
    who: tuple[str, ...]
    zh: str


MOVES: dict[str, Move] = {
    m.name: m
    for m in (
        Move("dispatch", ("reported", "returned", "escalated"), "dispatched", ("supervisor",), "派单"),
        Move("accept", ("dispatched",), "accepted", ("worker", "supervisor"), "签收"),
        Move("return", ("dispatched",), "returned", ("worker",), "退回"),
        Move("handle", ("accepted",), "handled", ("worker",), "办结"),
        Move("request_delay", ("accepted",), "", ("worker",), "申请延期"),
        Move("grant_delay", ("accepted",), "", ("supervisor",), "批准延期"),
        Move("transfer", ("dispatched", "accepted"), "dispatched", ("supervisor",), "转派"),
        Move("escalate", ("dispatched", "accepted", "returned"), "escalated", ("supervisor",), "上报上级"),
        Move("verify", ("handled",), "verified", ("supervisor",), "核查通过"),
        Move("reject", ("handled",), "accepted", ("supervisor",), "核查不通过"),
        Move("close", ("verified",), "closed", ("supervisor", "creator"), "回访关闭"),
        Move("reopen", ("verified", "closed"), "dispatched", ("supervisor", "creator"), "重新办理"),
    )
}  # fmt: skip


@dataclass(frozen=True)
class OrderType:
    """A category of the catalogue: its deadlines (hours) and who handles it."""

    code: str
    name_zh: str
    accept_h: float
    handle_h: float
    verify_h: float
    handler: str  # "grid" | "street"

    def hours(self, stage: str) -> float:
        """The time a stage may take."""
        return float(
            {"accept": self.accept_h, "handle": self.handle_h, "verify": self.verify_h}[stage]
        )


def catalogue(path: str | Path | None = None) -> dict[str, OrderType]:
    """The work-order categories (default: the shipped ``order_types.toml``; read again
    only when the file changes).
    """
    path = Path(path) if path is not None else DATA_DIR / "order_types.toml"
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = -1  # load_toml says what is wrong with the path
    return dict(_catalogue(path, stamp))


@functools.lru_cache(maxsize=8)
def _catalogue(path: Path, _stamp: int) -> dict[str, OrderType]:
    rows = load_toml(path, "work-order catalogue").get("type")
    if not isinstance(rows, list) or not rows:
        raise ValidationError(f"work-order catalogue {path}", ["no [[type]] entries"])
    out: dict[str, OrderType] = {}
    problems = []
    for i, r in enumerate(rows, start=1):
        try:
            t = OrderType(
                str(r["code"]), str(r["name_zh"]), float(r["accept_h"]), float(r["handle_h"]),
                float(r["verify_h"]), str(r["handler"]),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            problems.append(
                f"entry {i}: {exc!r} (needs code, name_zh, accept_h, handle_h, verify_h, handler)"
            )
            continue
        if t.handler not in ("grid", "street"):
            problems.append(f"entry {i} ({t.code}): handler {t.handler!r} is not grid or street")
        if min(t.accept_h, t.handle_h, t.verify_h) <= 0:
            problems.append(f"entry {i} ({t.code}): every deadline must be positive")
        out[t.code] = t
    if problems:
        raise ValidationError(f"work-order catalogue {path}", problems)
    return out


def stamp(at: datetime) -> str:
    """A time as stored: China Standard Time, ISO 8601 with offset."""
    return at.astimezone(TIMEZONE).isoformat(timespec="seconds")


def deadline(t: OrderType, stage: str, start: datetime, extra_h: float = 0.0) -> datetime:
    """When a stage begun at ``start`` is due (``extra_h``: delay granted)."""
    return start + timedelta(hours=t.hours(stage) + extra_h)


def colour(start: str, due: str, at: datetime) -> str:
    """``green``, ``yellow`` (75 % of the stage's time used) or ``red`` (over)."""
    s, d = datetime.fromisoformat(start), datetime.fromisoformat(due)
    used = (at - s) / max(d - s, timedelta(seconds=1))
    return "red" if used > 1 else "yellow" if used >= YELLOW else "green"


def colours(orders: pd.DataFrame, at: datetime) -> np.ndarray:
    """:func:`colour` of every order, vectorised (``""`` where no stage is running)."""
    if not len(orders):
        return np.array([], dtype=object)
    start = pd.to_datetime(orders["stage_start"], utc=True, format="ISO8601")
    due = pd.to_datetime(orders["deadline"], utc=True, format="ISO8601")
    now = pd.Timestamp(at).tz_convert("UTC")
    span = (due - start).dt.total_seconds().clip(lower=1).to_numpy()
    used = (now - start).dt.total_seconds().to_numpy() / span
    out = np.where(used > 1, "red", np.where(used >= YELLOW, "yellow", "green")).astype(object)
    running = orders["state"].isin(list(STAGE)).to_numpy() & orders["deadline"].notna().to_numpy()
    out[~running] = ""
    return out


def overdue(orders: pd.DataFrame, at: datetime) -> pd.DataFrame:
    """Open orders whose running stage is over its deadline and that have not yet been
    escalated for it (``escalated_stage`` differs from the stage's start): each escalates
    one level, or stays at the district, the top.
    """
    if not len(orders):
        return orders
    red = colours(orders, at) == "red"
    fresh = orders["escalated_at"].isna() | (orders["escalated_at"] != orders["stage_start"])
    return orders[red & fresh.to_numpy()]


def next_level(level: str) -> str:
    """One level up (the district is the top)."""
    i = LEVELS.index(level)
    return LEVELS[min(i + 1, len(LEVELS) - 1)]


def check_move(
    name: str, state: str, *, role: str, is_assignee: bool, is_creator: bool, in_scope: bool
) -> Move:
    """The move, if the caller may make it now; otherwise one clear error.

    ``role``: the caller's role; supervisors (and planners and admins, whose rights include
    theirs) act inside their jurisdiction (``in_scope``).
    """
    from gis.errors import AccessError, ConflictError

    move = MOVES.get(name)
    if move is None:
        raise ValidationError(
            "order transition", [f"unknown transition {name!r}; one of {', '.join(MOVES)}"]
        )
    who = set()
    if role == "worker" and is_assignee:
        who.add("worker")
    if role in ("supervisor", "planner", "admin") and in_scope:
        who.add("supervisor")
    if role == "dispatcher" and is_creator:
        who.add("creator")
    if not who & set(move.who):
        raise AccessError(
            f"{name} ({move.zh}) is for: {', '.join(move.who)}; not for this {role} key"
        )
    if state not in move.sources:
        raise ConflictError(
            f"{name} ({move.zh}) is not allowed from state {state} ({STATE_ZH.get(state, state)}); "
            f"only from {', '.join(move.sources)}"
        )
    return move


#: the state that ends each stage's clock, and the one that starts it
_STAGE_OF_STATE = {"dispatched": "accept", "accepted": "handle", "handled": "verify"}


def stage_times(
    events: pd.DataFrame, types: dict[str, OrderType], kinds: pd.Series
) -> pd.DataFrame:
    """One row per finished stage of every order: its hours, the hours it was allowed
    (with delays granted in it) and whether it ended in time.

    ``kinds``: order id → category code.
    """
    ev = events.sort_values("seq")
    rows = []
    for oid, g in ev.groupby("order_id", sort=False):
        t = types.get(str(kinds.get(oid)))
        if t is None:
            continue
        start, stage, extra = None, None, 0.0
        for r in g.itertuples():
            at = datetime.fromisoformat(str(r.at))
            if r.action == "grant_delay" and stage is not None:
                extra += float(str(r.detail).split(" ", 1)[0])
                continue
            if r.to_state == r.from_state:  # a delay asked, an escalation: the clock runs on
                continue
            if stage is not None and start is not None:
                hours = (at - start).total_seconds() / 3600
                allowed = t.hours(stage) + extra
                rows.append((oid, stage, hours, allowed, hours <= allowed))
            stage = _STAGE_OF_STATE.get(str(r.to_state))
            start, extra = at, 0.0
    return pd.DataFrame(rows, columns=["order_id", "stage", "hours", "allowed", "on_time"])


def assess(
    orders: pd.DataFrame,
    events: pd.DataFrame,
    households: pd.DataFrame,
    types: dict[str, OrderType],
    at: datetime,
    level: str = "community",
) -> pd.DataFrame:
    """Orders assessed per ``level`` (grid, worker, community, street): orders per 1,000
    households, on-time rate per stage, average hours to handle, overdue now, average
    satisfaction.

    ``households``: the level's codes (``code``) and their households.
    """
    key = {"grid": "grid_code", "worker": "worker_id", "community": "community_code",
           "street": "street_code"}[level]  # fmt: skip
    o = orders.assign(colour=colours(orders, at))
    st = (
        stage_times(events, types, o.set_index("id")["type"])
        if len(events)
        else stage_times(events.head(0), types, pd.Series(dtype=str))
    )
    st = st.merge(o[["id", key]], left_on="order_id", right_on="id")
    g = o.groupby(key)
    out = pd.DataFrame({
        "orders": g.size(),
        "open": g["state"].apply(lambda s: int(s.isin(OPEN).sum())),
        "overdue_now": g["colour"].apply(lambda c: int((c == "red").sum())),
        "satisfaction": g["satisfaction"].mean(),
    })  # fmt: skip
    for stage in ("accept", "handle", "verify"):
        s = st[st["stage"] == stage].groupby(key)["on_time"].mean()
        out[f"on_time_{stage}"] = s
    out["handle_hours"] = st[st["stage"] == "handle"].groupby(key)["hours"].mean()
    if level != "worker" and len(households):
        hh = households.set_index("code")["households"]
        out["per_1000_households"] = out["orders"] / out.index.map(hh).astype(float) * 1000
    out.index.name = "code"
    return out.reset_index()
