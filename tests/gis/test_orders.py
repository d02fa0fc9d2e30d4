"""The work-order model: every transition per role and state, deadlines, escalation."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from gis import orders as om
from gis.errors import AccessError, ConflictError, ValidationError
from gis.store.base import TIMEZONE

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=TIMEZONE)
#: (role, is_assignee, is_creator, in_scope) → who the caller counts as
CALLERS = {
    ("worker", True, False, True): {"worker"},
    ("worker", False, False, True): set(),  # another worker of the same community
    ("supervisor", False, False, True): {"supervisor"},
    ("supervisor", False, False, False): set(),  # a supervisor of another street
    ("admin", False, False, True): {"supervisor"},
    ("dispatcher", False, True, False): {"creator"},
    ("dispatcher", False, False, False): set(),  # another calling system
    ("viewer", False, False, True): set(),
}


@pytest.mark.parametrize("caller", list(CALLERS), ids=lambda c: "-".join(map(str, c)))
def test_every_transition_from_every_state_is_allowed_exactly_for_its_roles(caller):
    role, assignee, creator, scope = caller
    for name, state in itertools.product(om.MOVES, om.STATES):
        m = om.MOVES[name]
        allowed_role = bool(CALLERS[caller] & set(m.who))
        try:
            got = om.check_move(name, state, role=role, is_assignee=assignee, is_creator=creator,
                                in_scope=scope)  # fmt: skip
        except AccessError:
            assert not allowed_role, (name, state)
            continue
        except ConflictError:
            assert allowed_role and state not in m.sources, (name, state)
            continue
        assert allowed_role and state in m.sources, (name, state)
        assert got is m


def test_an_unknown_transition_is_one_clear_error():
    with pytest.raises(ValidationError, match="unknown transition 'fly'"):
        om.check_move("fly", "dispatched", role="admin", is_assignee=False, is_creator=False,
                      in_scope=True)  # fmt: skip


def test_the_loop_reaches_closed_and_every_state_is_reachable():
    # from reported, following the moves' targets, every state can be reached
    seen, todo = {"reported"}, ["reported"]
    while todo:
        s = todo.pop()
        for m in om.MOVES.values():
            t = m.target or s
            if s in m.sources and t not in seen:
                seen.add(t)
                todo.append(t)
    assert seen == set(om.STATES)


def _orders(*rows: tuple[str, datetime, datetime, str | None]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "state": [r[0] for r in rows],
            "stage_start": [om.stamp(r[1]) for r in rows],
            "deadline": [om.stamp(r[2]) for r in rows],
            "escalated_at": [r[3] for r in rows],
        }
    )


def test_deadline_colours_at_75_percent_and_past_the_deadline():
    t = om.catalogue()["repair"]  # accept within 2 h
    due = om.deadline(t, "accept", T0)
    assert due == T0 + timedelta(hours=2)
    for after, want in (
        (1.0, "green"),
        (1.49, "green"),
        (1.5, "yellow"),
        (2.0, "yellow"),
        (2.01, "red"),
    ):
        at = T0 + timedelta(hours=after)
        assert om.colour(om.stamp(T0), om.stamp(due), at) == want, after
        assert om.colours(_orders(("dispatched", T0, due, None)), at)[0] == want
    # a delay granted moves the deadline
    assert om.deadline(t, "accept", T0, extra_h=3) == T0 + timedelta(hours=5)


def test_overdue_orders_escalate_once_per_stage_and_closed_ones_never():
    t = om.catalogue()["repair"]
    due = om.deadline(t, "accept", T0)
    df = _orders(
        ("dispatched", T0, due, None),  # red: escalates
        ("dispatched", T0, due, om.stamp(T0)),  # already escalated for this stage
        ("closed", T0, due, None),  # not running
        ("accepted", T0, T0 + timedelta(hours=72), None),  # in time
    )
    late = om.overdue(df, T0 + timedelta(hours=3))
    assert list(late.index) == [0]
    assert om.next_level("community") == "street" and om.next_level("street") == "district"
    assert om.next_level("district") == "district"


def test_a_malformed_catalogue_is_one_error_listing_every_entry(tmp_path):
    p = tmp_path / "types.toml"
    p.write_text('[[type]]\ncode = "a"\nname_zh = "甲"\naccept_h = 0\nhandle_h = 1\n'
                 'verify_h = 1\nhandler = "moon"\n[[type]]\ncode = "b"\n')  # fmt: skip
    with pytest.raises(ValidationError) as exc:
        om.catalogue(p)
    text = str(exc.value)
    assert "handler 'moon'" in text and "positive" in text and "entry 2" in text


def test_a_synthetic_month_goes_through_the_loop_and_the_map_shows_it(map_frames):
    from gis import mapdata
    from gis.synth.orders import month_of_orders

    start = datetime(2026, 10, 1, tzinfo=TIMEZONE)
    f = {**map_frames, **month_of_orders(map_frames, start, seed=3)}
    o, ev = f["orders"], f["order_events"]
    assert len(o) > 100 and set(o["state"]) <= set(om.STATES)
    assert sorted(ev["seq"]) == list(range(1, len(ev) + 1))
    for oid, h in ev.groupby("order_id"):
        h = h.sort_values("seq")
        assert list(h["action"][:2]) == ["report", "dispatch"]
        assert h["to_state"].iloc[-1] == o.set_index("id").at[oid, "state"]
    # the day after the month: open orders run late (red), closed ones have no colour
    at = start + timedelta(days=31)
    col = om.colours(o, at)
    assert (col[o["state"].eq("closed").to_numpy()] == "").all()
    v = mapdata.orders(f, mapdata.scope(f, "370405001"), at)
    mine = o[o["street_code"] == "370405001"]
    assert int(v.grids["orders"].sum()) == len(mine)
    assert int(v.grids["overdue"].sum()) == int((om.colours(mine, at) == "red").sum())
    assert len(v.open) == int(mine["state"].isin(om.OPEN).sum())
    repeats = mine.groupby(["building_id", "type"]).size()
    assert len(v.hot_spots) == int((repeats >= mapdata.HOT_SPOT).sum())
    assert "reporter" not in v.open.columns


def test_synthetic_orders_come_more_often_from_grids_facilities_leave_uncovered(map_frames):
    from gis.synth.orders import gap_of_buildings, month_of_orders

    gap = gap_of_buildings(map_frames)
    b = map_frames["buildings"]
    assert gap.shape == (len(b),) and 0 < gap.max() <= 1 and gap.min() >= 0
    o = month_of_orders(map_frames, datetime(2026, 10, 1, tzinfo=TIMEZONE), seed=5)["orders"]
    per_building = o.groupby("building_id").size().reindex(b["id"]).fillna(0).to_numpy()
    hh = b["households"].to_numpy(dtype=float)
    worse = gap >= np.quantile(gap, 0.75)
    better = gap <= np.quantile(gap, 0.25)
    rate = lambda m: per_building[m].sum() / hh[m].sum()  # noqa: E731
    # orders per household: the least covered quarter of buildings calls more than the best
    assert rate(worse) > 1.15 * rate(better), (rate(worse), rate(better))
    # without a coverage table the weights are households alone
    bare = {k: v for k, v in map_frames.items() if k != "coverage"}
    assert not gap_of_buildings(bare).any()
