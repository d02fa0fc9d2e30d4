"""What every request handler reaches: the store, the layer cache, the settings, the jobs.

Layers the routes need often (communities, grids, keys…) are read once and kept while the
store is unchanged (its version is asked at most every half second); anything derived
from them (a locator, a siting planner, a map page) is memoised under the same version.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pandas as pd
from fastapi import Request

from api.http.errors import Outage
from api.settings import Settings
from gis import schema
from gis.store import Store
from gis.workflows.base import with_catalogue

T = TypeVar("T")


class Layers:
    """The store's layers, read on first use and again only when that layer changes
    (a :class:`gis.workflows.base.Inputs` for the read-only workflows).

    The store's per-layer write counters are asked at most every half second; a layer that
    changed is read again on its next use, and only what was derived from it is dropped
    (each :meth:`memo` names the layers it depends on).
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.lock = threading.Lock()
        self.versions: dict[str, int] = {}
        #: layer → (version, time of its last write): the caching headers' source
        self.stamps: dict[str, tuple[int, Any]] = {}
        self.checked = -1.0
        self.names: set[str] = set()
        self.frames: dict[str, pd.DataFrame] = {}
        self.cache: OrderedDict[tuple, tuple[frozenset[str], Any]] = OrderedDict()
        #: key → the lock of the one thread building it (see :meth:`memo`)
        self.building: dict[tuple, threading.Lock] = {}

    def refresh(self, force: bool = False) -> None:
        """Drop what was read from layers that changed (asked at most every half second)."""
        now = time.monotonic()
        with self.lock:
            if not force and now - self.checked < 0.5:
                return
            self.stamps = self.store.stamps()
            vs = {n: v for n, (v, _) in self.stamps.items()}
            self.checked = now
            changed = {n for n in set(vs) | set(self.versions) if vs.get(n) != self.versions.get(n)}
            if not changed:
                return
            if "*" in changed:  # a store without per-layer counters: everything may have changed
                changed |= set(self.frames) | {"*"}
            for n in changed:
                self.frames.pop(n, None)
            self.cache = OrderedDict(
                (k, v) for k, v in self.cache.items() if not (v[0] & changed or "*" in changed)
            )
            self.versions = vs
            self.names = self.store.names()

    def has(self, name: str) -> bool:
        """Whether the store holds layer ``name``."""
        self.refresh()
        return name in self.names

    def get(self, names: tuple[str, ...]) -> dict[str, pd.DataFrame]:
        """The layers of ``names`` the store holds (the catalogue for facility types)."""
        self.refresh()
        live = {n for n in names if n in schema.LAYERS and schema.layer(n).live}
        with self.lock:
            todo = [n for n in names if n not in self.frames and n in self.names and n not in live]
            if todo:
                self.frames.update(self.store.read_many(todo))
            out = {n: self.frames[n] for n in names if n in self.frames}
        # live layers (work orders…) are read each time, never kept: their rows change
        # without a version to tell (see gis.schema.Layer.live)
        fresh = [n for n in names if n in live and n in self.names]
        if fresh:
            out.update(self.store.read_many(fresh))
        out = {n: out[n] for n in names if n in out}
        return with_catalogue(out, names)

    def peek(self, key: tuple) -> Any:
        """What :meth:`memo` holds for ``key`` when that needs no trip to the store (no
        version check due, value present), else ``None`` — for callers on the event loop.
        """
        with self.lock:
            if time.monotonic() - self.checked >= 0.5:
                return None
            hit = self.cache.get(key)
            return None if hit is None else hit[1]

    def memo(self, key: tuple, deps: tuple[str, ...], make: Callable[[], T], size: int = 32) -> T:
        """``make()`` computed once per key while none of the layers ``deps`` changes (the
        last ``size`` results kept). One thread builds a missing key and the others wait
        for it: eight threads building the same locator at once, under one GIL, made the
        first look-ups after a start or a change wait seconds.
        """
        self.refresh()
        with self.lock:
            if key in self.cache:
                self.cache.move_to_end(key)
                return self.cache[key][1]  # type: ignore[no-any-return]
            building = self.building.setdefault(key, threading.Lock())
        with building:
            with self.lock:
                if key in self.cache:  # built while this thread waited
                    return self.cache[key][1]  # type: ignore[no-any-return]
            try:
                value = make()
                with self.lock:
                    self.cache[key] = (frozenset(deps), value)
                    while len(self.cache) > size:
                        self.cache.popitem(last=False)
            finally:
                with self.lock:
                    if self.building.get(key) is building:
                        del self.building[key]
        return value


@dataclass
class Context:
    """The service's state, one per app."""

    store: Store
    settings: Settings
    layers: Layers
    outage: Outage = field(default_factory=Outage)
    jobs: Any = None  # api.http.jobs.Jobs, set by the app factory

    def changed(self) -> None:
        """Forget what this process cached (after a write it made)."""
        self.layers.refresh(force=True)


async def context(request: Request) -> Context:
    """The app's context (a FastAPI dependency)."""
    return request.app.state.ctx  # type: ignore[no-any-return]
