"""The ``gridgis`` command line (Typer): one module per command group; every command
parses its options, calls one workflow (:mod:`gis.workflows`) and renders the result.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.markup import escape

from api.cli import coverage, data, grids, keys, maps, orders, province, sites, staff
from api.cli.output import err_console, state
from gis.errors import GridError, InputFileError, ValidationError

app = typer.Typer(
    name="gridgis",
    help="社区网格化服务管理 GIS — grids, workers and facility coverage for community governance.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
) -> None:
    state["debug"] = debug


for command in (data.demo, data.import_, data.export, data.info, data.serve, coverage.coverage):
    app.command(command.__name__.rstrip("_").replace("_", "-"))(command)
app.add_typer(grids.app, name="grids")
app.add_typer(staff.app, name="staff")
app.add_typer(sites.app, name="sites")
app.add_typer(sites.scenarios_app, name="scenarios")
app.add_typer(maps.app, name="map")
app.add_typer(keys.app, name="keys")
app.add_typer(orders.app, name="orders")
app.add_typer(province.app, name="province")


def _exit_code(exc: GridError) -> int:
    return 2 if isinstance(exc, ValidationError | InputFileError | ValueError) else 1


def main() -> None:
    """Console-script entry point: errors as one clear message and a meaningful exit code."""
    try:
        app(standalone_mode=False)
    except GridError as exc:
        if state["debug"]:
            raise
        err_console.print(
            f"[bold red]error:[/bold red] {escape(str(exc))}", highlight=False, soft_wrap=True
        )
        sys.exit(_exit_code(exc))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except Exception as exc:  # click usage errors and the unexpected
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if state["debug"]:
            raise
        err_console.print(
            f"[bold red]error:[/bold red] unexpected {type(exc).__name__}: {escape(str(exc))} (rerun with --debug)"
        )
        sys.exit(1)


__all__ = ["app", "main"]
