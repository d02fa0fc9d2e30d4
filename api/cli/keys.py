"""``gridgis keys``: API keys for the HTTP service (shown once, stored hashed)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from api.cli.output import JsonOpt, StoreOpt, actor, console, emit, open_, table
from gis import access

app = typer.Typer(help="接口密钥 — API keys and their roles.", no_args_is_help=True)


@app.command("create")
def create(
    role: Annotated[
        str, typer.Option(help="viewer, supervisor, planner, admin, dispatcher or worker.")
    ],
    scope: Annotated[
        str | None,
        typer.Option(help="Jurisdiction: a district, street or community code (default: all)."),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Who or what uses the key.")] = None,
    worker: Annotated[
        str | None, typer.Option(help="For a worker key: the worker's id (workers layer).")
    ] = None,
    store: StoreOpt = None,
) -> None:
    """Create a key; it is printed once, alone on the last line, and stored only hashed."""
    key, row = access.create_key(open_(store), role, scope, name, who=actor().name, worker=worker)
    console.print(
        f"key {row['id']} ({row['name']}): role {role}, scope {scope or 'all'}; "
        "send it as the X-API-Key header. It is shown only now:",
        highlight=False,
    )
    sys.stdout.write(key + "\n")


@app.command("list")
def list_keys(store: StoreOpt = None, as_json: JsonOpt = False) -> None:
    """List the keys (never the keys themselves)."""
    df = access.keys(open_(store))
    emit(as_json, df.to_dict("records"), lambda: console.print(table("API keys", df.fillna("—"))))


@app.command("revoke")
def revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (see keys list).")],
    store: StoreOpt = None,
) -> None:
    """Revoke a key."""
    access.revoke(open_(store), key_id, who=actor().name)
    console.print(f"revoked {key_id}")
