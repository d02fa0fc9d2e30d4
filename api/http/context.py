"""What every request handler reaches: the store, the layer cache, the settings, the jobs.

Layers the routes need often (communities, grids, keys…) are read once and kept while the
store is unchanged (its version is asked at most every half second); anything derived
from them (a locator, a siting planner, a map page) is memoised under the same version.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
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


#: seconds a check of the store's layer versions holds: what was read or derived is served
#: without asking the store again for this long (a write through another process is seen
#: within it)
FRESH = 0.5
#: from this age of the last check on, a request served from memory on the event loop
#: starts the next check in the background, so under load a check is never due on a
#: request's path (see :meth:`Layers.peek`)
AHEAD = 0.25
#: seconds the thread running those checks waits for the next before it ends
IDLE = 5.0


class _Build:
    """One thread's build of a memo: the others wanting the key wait on ``lock`` and take
    ``value`` (see :meth:`Layers.memo`).
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.value: Any = _MISSING


_MISSING = object()


class Layers:
    """The store's layers, read on first use and again only when that layer changes
    (a :class:`gis.workflows.base.Inputs` for the read-only workflows).

    The store's per-layer write counters are asked at most every :data:`FRESH` seconds; a
    layer that changed is read again on its next use, and only what was derived from it
    is dropped (each :meth:`memo` names the layers it depends on).

    Locks: ``lock`` guards the dictionaries and is held for no I/O, so the event loop may
    take it (:meth:`peek`); ``checking`` lets one thread at a time ask the store for its
    versions, ``reading`` one thread at a time read layers. A value read or built while a
    layer it comes from changed is handed out but not kept.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.lock = threading.Lock()
        self.checking = threading.Lock()
        self.reading = threading.Lock()
        self.versions: dict[str, int] = {}
        #: layer → (version, time of its last write): the caching headers' source
        self.stamps: dict[str, tuple[int, Any]] = {}
        self.checked = -1.0
        self.names: set[str] = set()
        self.frames: dict[str, pd.DataFrame] = {}
        self.cache: OrderedDict[tuple, tuple[frozenset[str], Any]] = OrderedDict()
        #: key → the one build of it under way (see :meth:`memo`)
        self.building: dict[tuple, _Build] = {}
        #: the checks ahead of time (see :meth:`peek`): one asked for and not yet done; the
        #: thread that runs them (None while idle); no new one before this time (after a
        #: check failed)
        self.ahead = False
        self.checker: threading.Thread | None = None
        self.wake = threading.Event()
        self.retry_at = 0.0

    def refresh(self, force: bool = False) -> None:
        """Drop what was read from layers that changed (asked at most every
        :data:`FRESH` seconds; ``force``: now, after this process wrote).
        """
        if not force and time.monotonic() - self.checked < FRESH:
            return
        with self.checking:
            started = time.monotonic()
            if not force and started - self.checked < FRESH:
                return  # another thread checked while this one waited
            try:
                self._check(started)
            except BaseException:
                if force:  # the write is not known to be seen: the next request asks again
                    with self.lock:
                        self.checked = -1.0
                raise

    def _check(self, started: float) -> None:
        """Ask the store for its versions (the caller holds ``checking``) and drop what
        changed. The store is asked outside ``lock``: the event loop never waits on it.
        """
        stamps = self.store.stamps()
        vs = {n: v for n, (v, _) in stamps.items()}
        changed = {n for n in set(vs) | set(self.versions) if vs.get(n) != self.versions.get(n)}
        names = self.store.names() if changed else self.names
        with self.lock:
            self.stamps = stamps
            self.checked = started  # what the store held no earlier than this
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
            self.names = names

    def _checks_ahead(self) -> None:
        """The checker thread: one check each time :meth:`peek` asks; ends after
        :data:`IDLE` seconds without one (the next peek starts another).
        """
        while True:
            if not self.wake.wait(IDLE):
                with self.lock:
                    if not self.wake.is_set():
                        self.checker = None
                        return
            self.wake.clear()
            try:
                with self.checking:
                    if time.monotonic() - self.checked >= AHEAD:  # not done meanwhile
                        self._check(time.monotonic())
            except Exception:  # noqa: BLE001 - the store unreachable: a request's own check reports it
                self.retry_at = time.monotonic() + FRESH  # not one thread per request meanwhile
            finally:
                self.ahead = False

    def _same(self, deps: Iterable[str], seen: dict[str, int | None]) -> bool:
        """Whether none of ``deps`` changed since their versions were ``seen`` (under ``lock``)."""
        return all(self.versions.get(n) == seen.get(n) for n in (*deps, "*"))

    def _seen(self, deps: Iterable[str]) -> dict[str, int | None]:
        return {n: self.versions.get(n) for n in (*deps, "*")}

    def has(self, name: str) -> bool:
        """Whether the store holds layer ``name``."""
        self.refresh()
        return name in self.names

    def get(self, names: tuple[str, ...]) -> dict[str, pd.DataFrame]:
        """The layers of ``names`` the store holds (the catalogue for facility types)."""
        self.refresh()
        live = {n for n in names if n in schema.LAYERS and schema.layer(n).live}
        with self.lock:
            out = {n: self.frames[n] for n in names if n in self.frames}
            todo = [n for n in names if n not in out and n in self.names and n not in live]
        if todo:
            with self.reading:
                with self.lock:  # read by another thread while this one waited
                    out.update({n: self.frames[n] for n in todo if n in self.frames})
                    todo = [n for n in todo if n not in out]
                    seen = self._seen(todo)
                if todo:
                    read = self.store.read_many(todo)
                    out.update(read)
                    with self.lock:
                        if self._same(todo, seen):
                            self.frames.update(read)
        # live layers (work orders…) are read each time, never kept: their rows change
        # without a version to tell (see gis.schema.Layer.live)
        fresh = [n for n in names if n in live and n in self.names]
        if fresh:
            out.update(self.store.read_many(fresh))
        out = {n: out[n] for n in names if n in out}
        return with_catalogue(out, names)

    def peek(self, key: tuple) -> Any:
        """What :meth:`memo` holds for ``key`` when that needs no trip to the store (the
        last check younger than :data:`FRESH`, value present), else ``None`` — for callers
        on the event loop, which hold no lock for I/O.

        Stale-while-revalidate, ahead of time: a peek that finds the last check older than
        :data:`AHEAD` wakes the checker thread and answers from memory. Under load the
        check is thus done before it is due, and no request waits for it; before, every
        half second the requests that met the due check went to worker threads, where they
        queued for Python's lock behind the busy event loop (the look-up's p99 of 160-220
        ms at 32 clients).
        """
        start = None
        with self.lock:
            now = time.monotonic()
            age = now - self.checked
            if age >= FRESH:
                return None
            hit = self.cache.get(key)
            if age >= AHEAD and not self.ahead and now >= self.retry_at:
                self.ahead = True
                self.wake.set()
                if self.checker is None:  # idle: start one (a thread start is slow; rare)
                    start = self.checker = threading.Thread(
                        target=self._checks_ahead, name="gridgis-check", daemon=True
                    )
        if start is not None:
            try:
                start.start()
            except RuntimeError:  # no thread to be had (shutting down): the slow way later
                with self.lock:
                    self.checker, self.ahead = None, False
        return None if hit is None else hit[1]

    def memo(self, key: tuple, deps: tuple[str, ...], make: Callable[[], T], size: int = 32) -> T:
        """``make()`` computed once per key while none of the layers ``deps`` changes (the
        last ``size`` results kept).

        One thread builds a missing key and the threads that wanted it meanwhile take its
        value: eight threads building the same locator at once, under one GIL, made the
        first look-ups after a start or a change wait seconds. A value built while one of
        ``deps`` changed is handed to those threads but not kept: the next request builds
        it from the new layers.
        """
        self.refresh()
        with self.lock:
            if key in self.cache:
                self.cache.move_to_end(key)
                return self.cache[key][1]  # type: ignore[no-any-return]
            build = self.building.setdefault(key, _Build())
        with build.lock:
            if build.value is not _MISSING:  # built by the thread this one waited for
                return build.value  # type: ignore[no-any-return]
            self.refresh()  # this thread may have waited long: build from what is now
            with self.lock:
                if key in self.cache:
                    return self.cache[key][1]  # type: ignore[no-any-return]
                seen = self._seen(deps)
            try:
                value = build.value = make()
                with self.lock:
                    if self._same(deps, seen):
                        self.cache[key] = (frozenset(deps), value)
                        while len(self.cache) > size:
                            self.cache.popitem(last=False)
            finally:
                with self.lock:
                    if self.building.get(key) is build:
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
    #: set once the warm-up at start is over (:func:`api.http.app._warm`; ``GET /ready``)
    ready: threading.Event = field(default_factory=threading.Event)

    def changed(self) -> None:
        """Forget what this process cached (after a write it made)."""
        self.layers.refresh(force=True)


async def context(request: Request) -> Context:
    """The app's context (a FastAPI dependency)."""
    return request.app.state.ctx  # type: ignore[no-any-return]
