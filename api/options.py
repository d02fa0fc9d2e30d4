"""Command-line options shared by every ``gridgis`` command."""

from __future__ import annotations

from typing import Annotated

import typer

StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        "-s",
        help="A .gpkg path or a postgresql+psycopg:// URL. Default: $GRIDGIS_STORE, else out/zaozhuang.gpkg.",
        show_default=False,
    ),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print machine-readable JSON instead of tables.")
]
