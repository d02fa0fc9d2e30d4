"""What every workflow shares: who acts, where inputs come from, progress callbacks.

Write workflows take a :class:`~gis.store.Store` and do all their reading inside the write
transaction they commit (so what they read is still true when they write). Read-only
workflows take :class:`Inputs`: the layers they need, read once — from a store snapshot
(:class:`StoreInputs`), or from the HTTP service's cache, which keeps layers while the store
is unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol

import pandas as pd

from gis.access import Principal
from gis.errors import InputFileError
from gis.reference import facility_types
from gis.store import Store, Tx

#: layer name → input file
Files = Mapping[str, str | os.PathLike[str]]
#: called with a short description as each step of a long workflow starts
Say = Callable[[str], None]
#: called as ``tick(done, total)`` while a workflow goes through communities
Tick = Callable[[int, int], None]


def quiet(_msg: str) -> None:
    """A progress callback that says nothing."""


def system(name: str) -> Principal:
    """The actor of a command-line or internal workflow (may do everything)."""
    return Principal(name, "admin")


class Inputs(Protocol):
    """Where read-only workflows get layers from."""

    def get(self, names: tuple[str, ...]) -> dict[str, pd.DataFrame]:
        """The layers of ``names`` the store holds (``facility_types``: the catalogue when
        the store has none).
        """
        ...


class StoreInputs:
    """Layers read from one snapshot of a store, each at most once."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.frames: dict[str, pd.DataFrame] = {}

    def get(self, names: tuple[str, ...]) -> dict[str, pd.DataFrame]:
        """See :class:`Inputs`."""
        todo = [n for n in names if n not in self.frames]
        if todo:
            self.frames.update(self.store.read_many(todo))
        return with_catalogue({n: self.frames[n] for n in names if n in self.frames}, names)


def with_catalogue(
    frames: dict[str, pd.DataFrame], names: Iterable[str]
) -> dict[str, pd.DataFrame]:
    """``frames`` with the shipped facility catalogue where one was asked for and the
    store holds none.
    """
    if "facility_types" in names and "facility_types" not in frames:
        frames["facility_types"] = facility_types()
    return frames


def need(frames: dict[str, pd.DataFrame], *names: str, where: str = "the store") -> None:
    """One clear error naming every required layer that is missing."""
    missing = [n for n in names if n not in frames]
    if missing:
        raise InputFileError(
            f"{where} has no {', '.join(missing)} yet; import or build "
            f"{'them' if len(missing) > 1 else 'it'} first (gridgis import, grids build, staff assign)"
        )


def read(tx: Tx, required: Iterable[str], optional: Iterable[str] = ()) -> dict[str, pd.DataFrame]:
    """Layers read inside a write transaction: every required one (one error for all that
    are missing) and the optional ones the store holds.
    """
    required, optional = list(required), list(optional)
    held = tx.names()
    frames = {n: tx.read(n) for n in [*required, *optional] if n in held}
    with_catalogue(frames, [*required, *optional])
    need(frames, *required, where=getattr(getattr(tx, "store", None), "url", "the store"))
    return frames


def clear_stale(tx: Tx, results: Iterable[str]) -> None:
    """Drop the marks of ``results`` (``coverage:<type>``, ``grids``, ``quotas``,
    ``assignments``) that edits left in the ``stale`` layer: they were just computed again.
    """
    results = sorted(set(results))
    if not results or not tx.has("stale"):
        return
    ids = [r["id"] for r in tx.rows("stale", {"result": results}, columns=["id"])]
    if ids:
        tx.delete("stale", ids)
