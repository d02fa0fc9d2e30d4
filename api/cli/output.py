"""What every command shares: options, the console, tables, JSON output, progress, the
store to open and who acts.
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from api.settings import Settings
from gis.access import Principal
from gis.errors import ValidationError
from gis.store import Store, open_store

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
OutXlsx = Annotated[Path | None, typer.Option("--out", "-o", help="Also write the table as XLSX.")]

# wide enough for the summary tables when output goes to a file or a pipe
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)
state: dict[str, Any] = {"debug": False, "settings": None}


def settings() -> Settings:
    """The settings, read from the environment once per run."""
    if state["settings"] is None:
        state["settings"] = Settings()
    return state["settings"]  # type: ignore[no-any-return]


def store_spec(store: str | None) -> str:
    """The store to use: the option, else ``$GRIDGIS_STORE``, else the demo file."""
    return settings().store_spec(store)


def open_(store: str | None) -> Store:
    """The store of ``--store`` (or the default one)."""
    return open_store(store_spec(store))


def actor(name: str | None = None) -> Principal:
    """Who acts from the command line: ``name`` or the login name (all rights)."""
    return Principal(name or getpass.getuser(), "admin")


def file_inputs(
    command: str,
    required: dict[str, Path | None],
    optional: dict[str, Path | None] | None = None,
    out: Path | None | bool = True,
) -> dict[str, Path] | None:
    """File mode (no store) when any required input file is given: then all of them (and
    ``--out`` unless ``out`` is ``True``) must be; returns layer → path, else ``None``.
    """
    if all(v is None for v in required.values()):
        return None
    missing = [f"--{k}" for k, v in required.items() if v is None]
    if out is None:
        missing.append("--out")
    if missing:
        raise ValidationError(command, [f"file mode also needs {', '.join(missing)}"])
    return {k: v for k, v in {**required, **(optional or {})}.items() if v is not None}


def cell(v: Any) -> str:
    """A value as a table shows it (是/否, thousands separators)."""
    if isinstance(v, bool | np.bool_):
        return "是" if v else "否"
    if isinstance(v, int | np.integer):
        return f"{v:,}"
    if isinstance(v, float | np.floating):
        return f"{v:,.3f}"
    return str(v)


def table(title: str, df: pd.DataFrame) -> Table:
    """A rich table of a frame (numbers right-aligned)."""
    t = Table(title=title)
    for c in df.columns:
        t.add_column(str(c), justify="right" if pd.api.types.is_numeric_dtype(df[c]) else "left")
    for row in df.itertuples(index=False):
        t.add_row(*[cell(v) for v in row])
    return t


def emit(as_json: bool, payload: Any, render: Callable[[], None]) -> None:
    """JSON on stdout, or the human rendering."""
    if as_json:
        sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2, default=str) + "\n")
    else:
        render()


def lines(text: list[str]) -> Callable[[], None]:
    """A rendering that prints the non-empty lines of ``text``."""

    def render() -> None:
        for t in text:
            if t:
                console.print(t, highlight=False)

    return render


def xlsx(out: Path, sheets: dict[str, pd.DataFrame]) -> None:
    """Write sheets to an XLSX file (through a partial file, so a failure leaves none)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.partial.xlsx")
    with pd.ExcelWriter(tmp) as xl:
        for name, df in sheets.items():
            df.to_excel(xl, sheet_name=name, index=False)
    tmp.replace(out)


@contextmanager
def steps(enabled: bool = True) -> Iterator[Callable[[str], None]]:
    """A progress display fed by step descriptions (silent when disabled)."""
    with progress(enabled) as (say, _tick):
        yield say


@contextmanager
def community_progress(enabled: bool, label: str) -> Iterator[Callable[[int, int], None]]:
    """A progress count over communities (silent when disabled)."""
    with progress(enabled, label) as (_say, tick):
        yield tick


@contextmanager
def progress(
    enabled: bool = True, label: str = "社区 communities"
) -> Iterator[tuple[Callable[[str], None], Callable[[int, int], None]]]:
    """One live display for a long command: ``say(step)`` starts a step, ``tick(done,
    total)`` counts communities within it (both silent when disabled).
    """
    if not enabled:
        yield (lambda _msg: None), (lambda _d, _t: None)
        return
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.fields[count]}"),
               TimeElapsedColumn())  # fmt: skip
    with Progress(*columns, console=err_console, transient=True) as bar:
        task: list[Any] = []

        def say(msg: str) -> None:
            if task:
                bar.stop_task(task[0])
                bar.update(task[0], visible=False)
            task[:] = [bar.add_task(msg, total=None, count="")]

        def tick(done: int, total: int) -> None:
            if not task:
                say(label)
            bar.update(task[0], count=f"{label} {done:,}/{total:,}")

        yield say, tick
