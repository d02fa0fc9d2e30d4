"""Vector tiles (Mapbox Vector Tile 2.1) of a layer on a tile matrix set.

The tile grid is morecantile's WebMercatorQuad (OGC 2D Tile Matrix Set); a tile's features
are clipped to the tile and a buffer, simplified to the tile's resolution and quantised to
:data:`EXTENT` units — the same extent and buffer as PostGIS ``ST_AsMVT``/``ST_AsMVTGeom``,
which the server store uses; the GeoPackage uses the Python encoder here
(mapbox-vector-tile), so both stores answer the same tile.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

import pyproj
import shapely

#: tile units per side, and the buffer around a tile (in those units)
EXTENT, BUFFER = 4096, 64
#: the tile matrix sets offered, and the zoom levels served
TMS_IDS = ("WebMercatorQuad",)
MIN_ZOOM, MAX_ZOOM = 0, 22
_TO_3857 = pyproj.Transformer.from_crs(4326, 3857, always_xy=True)


class OutsideMatrix(ValueError):
    """A tile that is not in the tile matrix set (an unknown set, zoom, row or column)."""


def matrix_set(tms_id: str) -> Any:
    """The morecantile tile matrix set ``tms_id``; :class:`OutsideMatrix` if unknown."""
    import morecantile

    if tms_id not in TMS_IDS:
        raise OutsideMatrix(f"unknown tile matrix set {tms_id!r}; offered: {', '.join(TMS_IDS)}")
    return morecantile.tms.get(tms_id)


def bounds(tms_id: str, z: int, x: int, y: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The tile's bounds in Web Mercator metres and in longitude/latitude."""
    import morecantile

    tms = matrix_set(tms_id)
    if not MIN_ZOOM <= z <= MAX_ZOOM or not (0 <= x < 2**z and 0 <= y < 2**z):
        raise OutsideMatrix(
            f"tile {z}/{x}/{y} is outside {tms_id} (zoom {MIN_ZOOM}–{MAX_ZOOM}, "
            f"column and row 0–{2**z - 1} at zoom {z})"
        )
    t = morecantile.Tile(x, y, z)
    xy, ll = tms.xy_bounds(t), tms.bounds(t)
    return (xy.left, xy.bottom, xy.right, xy.top), (ll.left, ll.bottom, ll.right, ll.top)


def lonlat_with_buffer(tms_id: str, z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """The tile's bounds and its buffer, in longitude/latitude (to select candidates)."""
    (x0, y0, x1, y1), _ = bounds(tms_id, z, x, y)
    pad = (x1 - x0) * BUFFER / EXTENT
    lo = _TO_3857.transform(x0 - pad, y0 - pad, direction="INVERSE")
    hi = _TO_3857.transform(x1 + pad, y1 + pad, direction="INVERSE")
    return lo[0], lo[1], hi[0], hi[1]


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
