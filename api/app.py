"""The HTTP service (FastAPI): the maps at ``/maps/…``.

``create_app(store)`` builds the app for one store. Layers are read once and kept while the
store is unchanged (a GeoPackage's modification time, a PostGIS store's layer counts);
rendered maps are kept per query in a small LRU cache.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from gis.errors import GridError, LayerNotFoundError, ValidationError
from gis.store import GeoPackageStore, Store, open_store
from maps import views

PROBLEM = "application/problem+json"
Tiles = Annotated[str, Query(description="Base map: none, osm, tianditu or amap.")]
Lang = Annotated[str, Query(description="Labels: zh or en.")]


class _Layers:
    """The store's layers, read on first use and again only when the store changes."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.lock = threading.Lock()
        self.version: Any = None
        self.frames: dict[str, Any] = {}
        self.maps: OrderedDict[tuple, str] = OrderedDict()

    def _version(self) -> Any:
        if isinstance(self.store, GeoPackageStore):
            p = Path(self.store.path)
            return p.stat().st_mtime_ns if p.exists() else None
        return tuple(sorted(self.store.layers().items()))

    def get(self, names: tuple[str, ...]) -> dict[str, Any]:
        with self.lock:
            v = self._version()
            if v != self.version:
                self.frames, self.maps, self.version = {}, OrderedDict(), v
            for name in names:
                if name not in self.frames and self.store.has(name):
                    self.frames[name] = self.store.read(name)
            out = {n: self.frames[n] for n in names if n in self.frames}
        if "facility_types" in names and "facility_types" not in out:
            from gis.reference import facility_types

            out["facility_types"] = facility_types()
        return out

    def html(self, key: tuple, make: Any) -> str:
        with self.lock:
            if key in self.maps:
                self.maps.move_to_end(key)
                return self.maps[key]
        page = make()
        with self.lock:
            self.maps[key] = page
            while len(self.maps) > 32:
                self.maps.popitem(last=False)
        return page


def _problem(status: int, title: str, detail: str) -> JSONResponse:
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status_code=status,
        media_type=PROBLEM,
    )


def create_app(store: str | Store | None = None) -> FastAPI:
    """The app serving ``store`` (default: ``$GRIDGIS_STORE`` or the demo file)."""
    from api.cli import store_spec
    from api.map_cli import LAYERS

    s = store if isinstance(store, Store) else open_store(store_spec(store))
    layers = _Layers(s)
    app = FastAPI(
        title="gridgis",
        description="社区网格化服务管理 GIS — grids, workers and facility coverage.",
        version="0.1",
    )

    @app.exception_handler(LayerNotFoundError)
    async def _missing(request: Request, exc: LayerNotFoundError) -> JSONResponse:
        return _problem(404, "Not found", str(exc))

    @app.exception_handler(GridError)
    async def _bad(request: Request, exc: GridError) -> JSONResponse:
        status = (
            404 if isinstance(exc, ValidationError) and "no scenario named" in str(exc) else 400
        )
        return _problem(status, "Bad request" if status == 400 else "Not found", str(exc))

    def key() -> str | None:
        return os.environ.get("TIANDITU_KEY")

    @app.get("/maps/coverage", response_class=HTMLResponse, tags=["maps"])
    def coverage_map(
        type: str | None = None,
        street: str | None = None,
        community: str | None = None,
        tiles: Tiles = "none",
        lang: Lang = "zh",
    ) -> HTMLResponse:
        """Coverage map: the city overview, or one street or community in detail."""
        kind = "detail" if street or community else "coverage_city"

        def make() -> str:
            f = layers.get(LAYERS[kind])
            return views.coverage_map(
                f, type, street=street, community=community, tiles=tiles, lang=lang, key=key()
            ).html()

        return HTMLResponse(layers.html(("coverage", type, street, community, tiles, lang), make))

    @app.get("/maps/staffing", response_class=HTMLResponse, tags=["maps"])
    def staffing_map(
        street: str | None = None,
        community: str | None = None,
        tiles: Tiles = "none",
        lang: Lang = "zh",
    ) -> HTMLResponse:
        """Staffing map: grids by responsible worker, loads, communities flagged."""
        kind = "detail" if street or community else "staffing_city"

        def make() -> str:
            f = layers.get(LAYERS[kind])
            return views.staffing_map(
                f, street=street, community=community, tiles=tiles, lang=lang, key=key()
            ).html()

        return HTMLResponse(layers.html(("staffing", street, community, tiles, lang), make))

    @app.get("/maps/scenario/{name}", response_class=HTMLResponse, tags=["maps"])
    def scenario_map(
        name: str, street: str | None = None, tiles: Tiles = "none", lang: Lang = "zh"
    ) -> HTMLResponse:
        """A saved siting scenario: sites, coverage before and after, ranking."""

        def make() -> str:
            f = layers.get(LAYERS["scenario"])
            return views.scenario_map(
                f, name, street=street, tiles=tiles, lang=lang, key=key()
            ).html()

        return HTMLResponse(layers.html(("scenario", name, street, tiles, lang), make))

    return app
