"""``gridgis orders``: work orders from the hotline to the grid worker and back (工单闭环)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer

from api.cli.output import JsonOpt, OutXlsx, StoreOpt, actor, console, emit, open_, table, xlsx
from gis import orders as om
from gis.access import Principal
from gis.workflows import orders as wo

app = typer.Typer(help="工单 — work orders: create, list, move, the change feed, deadlines, assessment.",
                  no_args_is_help=True)  # fmt: skip

AsWorker = Annotated[
    str | None, typer.Option("--as-worker", help="Act as this worker (its id), as its key would.")
]
LIST_COLUMNS = {"id": "工单编号", "type": "类别", "state_zh": "状态", "grid_code": "网格",
                "assignee": "责任人", "deadline": "本环节时限", "colour": "时限"}  # fmt: skip


def _who(as_worker: str | None) -> Principal:
    return Principal(as_worker, "worker") if as_worker else actor()


@app.command("create")
def create(
    type: Annotated[str, typer.Option("--type", help="Category code (see order_types.toml).")],
    description: Annotated[str, typer.Option(help="What the resident reported.")],
    lon: Annotated[float | None, typer.Option(help="Longitude (or easting in --crs).")] = None,
    lat: Annotated[float | None, typer.Option(help="Latitude (or northing in --crs).")] = None,
    crs: Annotated[
        str | None, typer.Option(help="CRS of lon/lat: CRS84 (default), gcj02, bd09 …")
    ] = None,
    building: Annotated[
        str | None, typer.Option("--building", help="A building id instead of a point.")
    ] = None,
    address: Annotated[
        str | None, typer.Option(help="A building address instead of a point.")
    ] = None,
    source: Annotated[str, typer.Option(help="hotline, patrol, app or system.")] = "patrol",
    external_id: Annotated[str | None, typer.Option(help="The caller's id (idempotent).")] = None,
    reporter: Annotated[str | None, typer.Option(help="Reporter contact (personal data).")] = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a work order: located and dispatched to the grid's responsible worker."""
    body: dict[str, Any] = {"source": source, "external_id": external_id, "type": type,
                            "description": description, "lon": lon, "lat": lat, "crs": crs,
                            "building_id": building, "address": address, "reporter": reporter}  # fmt: skip
    o, new = wo.create(open_(store), actor(), body)
    emit(as_json, o, lambda: console.print(
        f"{'created' if new else 'already there'}: {o['id']} {o['type']} → grid {o['grid_code']}, "
        f"{o['assignee']} ({o['state_zh']}, accept by {o['deadline']})", highlight=False))  # fmt: skip


@app.command("list")
def list_(
    state: Annotated[str | None, typer.Option(help="Only orders in this state.")] = None,
    grid: Annotated[str | None, typer.Option(help="Only orders of this grid.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
    as_worker: AsWorker = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Orders with their deadline colour now (green / yellow at 75 % / red when over)."""
    where = {k: v for k, v in (("state", state), ("grid_code", grid)) if v}
    rows, total = wo.listing(open_(store), _who(as_worker), where=where, limit=limit)
    df = (
        pd.DataFrame(rows, columns=list(LIST_COLUMNS))
        if rows
        else pd.DataFrame(columns=list(LIST_COLUMNS))
    )
    emit(as_json, {"orders": rows, "matched": total}, lambda: console.print(
        table(f"工单 ({len(rows)} of {total})", df.rename(columns=LIST_COLUMNS).fillna("—"))))  # fmt: skip


@app.command("show")
def show(
    order_id: Annotated[str, typer.Argument()], store: StoreOpt = None, as_json: JsonOpt = False
) -> None:
    """One order with its history."""
    o = wo.get(open_(store), actor(), order_id)
    hist = pd.DataFrame(o["history"])[
        ["seq", "at", "who", "action", "from_state", "to_state", "detail"]
    ]

    def render() -> None:
        console.print(
            f"{o['id']} {o['type']} {o['state_zh']} v{o['version']} — {o['description']} — "
            f"grid {o['grid_code']}, {o['assignee']}",
            highlight=False,
        )
        console.print(table("history", hist.fillna("—")))

    emit(as_json, o, render)


@app.command("move")
def move(
    order_id: Annotated[str, typer.Argument()],
    action: Annotated[str, typer.Argument(help=", ".join(om.MOVES))],
    version: Annotated[int, typer.Option(help="The version the order was read at.")],
    note: Annotated[str | None, typer.Option(help="A note for the history.")] = None,
    worker: Annotated[
        str | None, typer.Option(help="dispatch/transfer/reopen: to this worker.")
    ] = None,
    hours: Annotated[float | None, typer.Option(help="request_delay/grant_delay: hours.")] = None,
    satisfaction: Annotated[int | None, typer.Option(help="close: the resident's 1–5.")] = None,
    as_worker: AsWorker = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move an order one step (a stale --version is refused: read it again)."""
    o = wo.move(open_(store), _who(as_worker), order_id, action, version=version, note=note,
                worker_id=worker, hours=hours, satisfaction=satisfaction)  # fmt: skip
    emit(
        as_json,
        o,
        lambda: console.print(
            f"{o['id']}: {o['state_zh']} (version {o['version']})", highlight=False
        ),
    )


@app.command("changes")
def changes(
    after: Annotated[int, typer.Option(help="The cursor of the last change seen.")] = 0,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 1000,
    store: StoreOpt = None,
) -> None:
    """The change feed as JSON lines, then the next cursor on stderr."""
    ev, cursor = wo.changes(open_(store), actor(), after, limit)
    for e in ev:
        typer.echo(json.dumps(e, ensure_ascii=False, default=str))
    typer.echo(f"next cursor: {cursor}", err=True)


@app.command("sweep")
def sweep(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """Escalate every order over its stage's deadline one level (run it every few minutes)."""
    ids = wo.sweep(open_(store))
    emit(
        as_json, ids, lambda: console.print(f"{len(ids)} overdue orders escalated", highlight=False)
    )


@app.command("report")
def report(
    level: Annotated[str, typer.Option(help="grid, worker, community or street.")] = "community",
    month: Annotated[
        str | None, typer.Option(help="Orders created in this month (YYYY-MM).")
    ] = None,
    out: OutXlsx = None,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Assessment: on-time rate per stage, handling time, overdue now, satisfaction, orders
    per 1,000 households.
    """
    df = wo.assessment(open_(store), actor(), level, month=month)
    shown = df.rename(columns=wo.ASSESS_COLUMNS)
    if out is not None:
        xlsx(Path(out), {f"工单考核-{level}": shown})
    emit(as_json, df.to_dict("records"), lambda: console.print(
        table(f"工单考核 ({level}{', ' + month if month else ''})", shown.round(3).fillna("—"))))  # fmt: skip
