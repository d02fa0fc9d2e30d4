"""Vector tiles (Mapbox Vector Tile 2.1) of a layer on a tile matrix set.

The tile grid is morecantile's WebMercatorQuad (OGC 2D Tile Matrix Set); a tile's features
are clipped to the tile and a buffer, simplified to the tile's resolution and quantised to
:data:`EXTENT` units — the same extent and buffer as PostGIS ``ST_AsMVT``/``ST_AsMVTGeom``,
which the server store uses; the GeoPackage uses the Python encoder here
(mapbox-vector-tile), so both stores answer the same tile.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

import pyproj
import shapely

#: tile units per side, and the buffer around a tile (in those units)
EXTENT, BUFFER = 4096, 64
#: point layers too dense to send one by one at low zoom: below ``AGGREGATE_BELOW`` a tile
#: holds one point per cell of ``CELL`` tile units (32 cells a side, 8 px of a 256 px tile)
#: and community — their centre, how many (``n``) and the sums of these counts. 600,000
#: buildings at city zoom were 50 MB of tiles; aggregated, a tile is a few kB
AGGREGATED = {"buildings": ("households", "residents", "elderly", "children", "disabled")}
AGGREGATE_BELOW, CELL, GROUP = 14, 128, "community_code"
#: the tile matrix sets offered, and the zoom levels served
TMS_IDS = ("WebMercatorQuad",)
MIN_ZOOM, MAX_ZOOM = 0, 22
_TO_3857 = pyproj.Transformer.from_crs(4326, 3857, always_xy=True)
#: the sphere of EPSG:3857, and half the side of its square (metres)
_RADIUS = 6378137.0
_HALF = math.pi * _RADIUS


class OutsideMatrix(ValueError):
    """A tile that is not in the tile matrix set (an unknown set, zoom, row or column)."""


def matrix_set(tms_id: str) -> Any:
    """The morecantile tile matrix set ``tms_id``; :class:`OutsideMatrix` if unknown."""
    if tms_id not in TMS_IDS:
        raise OutsideMatrix(f"unknown tile matrix set {tms_id!r}; offered: {', '.join(TMS_IDS)}")
    return _matrix_set(tms_id)


@functools.lru_cache(maxsize=len(TMS_IDS))
def _matrix_set(tms_id: str) -> Any:
    """One copy per set (morecantile's ``tms.get`` deep-copies the set, CRS and all, at
    each call: 0.2 ms). Read only.
    """
    import morecantile

    return morecantile.tms.get(tms_id)


def bounds(tms_id: str, z: int, x: int, y: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The tile's bounds in Web Mercator metres and in longitude/latitude.

    Closed-form (EPSG:3857 is defined by the spherical formulas; equal to morecantile's
    bounds to 1e-9, tested): through pyproj the two took 0.5 ms a tile, as long as
    PostGIS takes to build one.
    """
    matrix_set(tms_id)
    if not MIN_ZOOM <= z <= MAX_ZOOM or not (0 <= x < 2**z and 0 <= y < 2**z):
        raise OutsideMatrix(
            f"tile {z}/{x}/{y} is outside {tms_id} (zoom {MIN_ZOOM}–{MAX_ZOOM}, "
            f"column and row 0–{2**z - 1} at zoom {z})"
        )
    size = 2 * _HALF / 2**z
    x0, y1 = -_HALF + x * size, _HALF - y * size
    x1, y0 = x0 + size, y1 - size
    return (x0, y0, x1, y1), (*_lonlat(x0, y0), *_lonlat(x1, y1))


def _lonlat(x: float, y: float) -> tuple[float, float]:
    """Web Mercator metres to longitude/latitude (the inverse spherical Mercator)."""
    return (
        math.degrees(x / _RADIUS),
        math.degrees(2 * math.atan(math.exp(y / _RADIUS)) - math.pi / 2),
    )


def lonlat_with_buffer(tms_id: str, z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """The tile's bounds and its buffer, in longitude/latitude (to select candidates)."""
    (x0, y0, x1, y1), _ = bounds(tms_id, z, x, y)
    pad = (x1 - x0) * BUFFER / EXTENT
    return (*_lonlat(x0 - pad, y0 - pad), *_lonlat(x1 + pad, y1 + pad))


def aggregated(name: str, z: int, columns: Sequence[str]) -> list[str] | None:
    """The counts a tile of ``name`` at zoom ``z`` sums per cell (of ``columns``, the
    properties the caller may see), or ``None`` when its features go one by one.
    """
    if name not in AGGREGATED or z >= AGGREGATE_BELOW:
        return None
    return [c for c in AGGREGATED[name] if c in columns]


def encode(
    layer: str,
    rows: Sequence[Mapping[str, Any]],
    geometries: Sequence[Any],
    tile: Sequence[float],
) -> bytes:
    """An MVT of one layer: ``rows`` (properties) with their ``geometries`` (lon/lat),
    clipped to the buffered ``tile`` (Web Mercator bounds), simplified to a tile unit and
    quantised. Features left empty by the clip are dropped; ``b""`` when none is left.
    """
    import mapbox_vector_tile

    if not len(rows):
        return b""
    x0, y0, x1, y1 = tile
    unit = (x1 - x0) / EXTENT
    pad = unit * BUFFER
    g = shapely.transform(np.asarray(geometries, dtype=object), _project)
    g = shapely.clip_by_rect(g, x0 - pad, y0 - pad, x1 + pad, y1 + pad)
    keep = ~shapely.is_empty(g) & ~shapely.is_missing(g)
    g = shapely.make_valid(shapely.simplify(g, unit / 2, preserve_topology=True))
    # into tile units here (the encoder's own quantising goes through a shapely function
    # that shapely 2.1 deprecates); the encoder flips y to point down
    g = shapely.transform(
        g, lambda a: np.column_stack([(a[:, 0] - x0) / unit, (a[:, 1] - y0) / unit])
    )
    feats = [
        {
            "geometry": geom,
            "properties": {k: _value(v) for k, v in r.items() if _value(v) is not None},
        }
        for r, geom, k_ in zip(rows, g, keep, strict=True)
        if k_
    ]
    if not feats:
        return b""
    return bytes(
        mapbox_vector_tile.encode(
            [{"name": layer, "features": feats}],
            default_options={"extents": EXTENT},
        )
    )


def encode_cells(
    layer: str,
    lonlat: np.ndarray,
    group: np.ndarray,
    counts: Mapping[str, np.ndarray],
    tms_id: str,
    zxy: tuple[int, int, int],
) -> bytes:
    """An MVT of points (``lonlat``, an ``(n, 2)`` array) aggregated per cell and
    ``group`` (a community code per point): the mean position, ``n`` and the sums of
    ``counts``. A cell is :data:`CELL` tile units of the tile's longitudes and latitudes
    (within one tile Web Mercator's y is as good as linear in latitude), so only the cells'
    centres are projected — as :func:`gis.store.pgsql.mvt` does in SQL on PostGIS.
    """
    import mapbox_vector_tile
    import pandas as pd

    (x0, y0, x1, _), (w, s, e, n) = bounds(tms_id, *zxy)
    bx0, by0, bx1, by1 = lonlat_with_buffer(tms_id, *zxy)
    lon, lat = lonlat[:, 0], lonlat[:, 1]
    inside = (lon >= bx0) & (lon <= bx1) & (lat >= by0) & (lat <= by1)
    if not inside.any():
        return b""
    sx, sy = (e - w) * CELL / EXTENT, (n - s) * CELL / EXTENT
    df = pd.DataFrame({"k": np.asarray(group, dtype=object)[inside], "x": lon[inside], "y": lat[inside],
                       "gx": np.floor((lon[inside] - w) / sx), "gy": np.floor((lat[inside] - s) / sy),
                       **{c: np.asarray(v, dtype=float)[inside] for c, v in counts.items()}})  # fmt: skip
    agg = df.groupby(["k", "gx", "gy"], dropna=False, sort=True).agg(
        x=("x", "mean"), y=("y", "mean"), n=("x", "size"), **{c: (c, "sum") for c in counts}
    )
    unit = (x1 - x0) / EXTENT
    mx, my = _TO_3857.transform(agg["x"].to_numpy(), agg["y"].to_numpy())
    qx, qy = np.round((mx - x0) / unit), np.round((my - y0) / unit)
    feats = [
        {"geometry": shapely.Point(px, py),
         "properties": {**({GROUP: k[0]} if isinstance(k[0], str) else {}), "n": int(r["n"]),
                        **{c: int(r[c]) for c in counts}}}
        for k, r, px, py in zip(agg.index, agg.to_dict("records"), qx, qy, strict=True)
    ]  # fmt: skip
    return bytes(mapbox_vector_tile.encode([{"name": layer, "features": feats}],
                                           default_options={"extents": EXTENT}))  # fmt: skip


def _project(xy: np.ndarray) -> np.ndarray:
    x, y = _TO_3857.transform(xy[:, 0], xy[:, 1])
    return np.column_stack([x, y])


def _value(v: Any) -> Any:
    """A property value as MVT holds it (strings, numbers, booleans; nothing for null)."""
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, bool | int | float | str):
        return v
    return str(v)
