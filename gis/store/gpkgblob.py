"""GeoPackage geometry blobs (GeoPackage 1.3, section 2.1.3): decoding to shapely and
encoding from it, envelopes, and the ``ST_*`` SQL functions the R-tree triggers call.
"""

from __future__ import annotations

import sqlite3
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

import shapely

#: envelope bytes by the header's envelope code
_ENVELOPE_BYTES = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}


def _envelope(blob: bytes | None) -> tuple[float, float, float, float] | None:
    """Envelope of a GeoPackage geometry blob (header envelope, else the WKB's bounds)."""
    if blob is None or len(blob) < 8:
        return None
    flags = blob[3]
    if flags & 0b10000:  # empty flag
        return None
    order = "<" if flags & 1 else ">"
    if (flags >> 1) & 0b111:
        minx, maxx, miny, maxy = struct.unpack_from(order + "4d", blob, 8)
        return minx, miny, maxx, maxy
    geom = shapely.from_wkb(blob[8:])
    if geom is None or geom.is_empty:
        return None
    return tuple(shapely.bounds(geom))


def _wkb(blobs: Sequence[bytes | None] | np.ndarray) -> np.ndarray:
    """Shapely geometries of GeoPackage blobs (header and envelope skipped).

    Points as gridgis writes them (29 bytes: header without envelope, little-endian WKB)
    are decoded in one pass of numpy; anything else goes through ``shapely.from_wkb``.
    """
    blobs = np.asarray(blobs, dtype=object)
    try:
        joined = b"".join(blobs)
    except TypeError:  # a missing geometry
        joined = b""
    if len(blobs) and len(joined) == 29 * len(blobs):
        raw = np.frombuffer(joined, dtype=np.uint8).reshape(-1, 29)
        plain = (raw[:, 3] == 1) & (raw[:, 8] == 1) & (raw[:, 9] == 1) & (raw[:, 10:13] == 0).all(1)
        if plain.all():  # flags: little-endian, no envelope; WKB: little-endian Point
            xy = np.ascontiguousarray(raw[:, 13:29]).view("<f8")
            return shapely.points(xy[:, 0], xy[:, 1])
    wkb = [
        None if b is None else b[8 + _ENVELOPE_BYTES.get((b[3] >> 1) & 0b111, 0) :] for b in blobs
    ]
    return shapely.from_wkb(np.asarray(wkb, dtype=object))


def _blobs(geoms: np.ndarray, srs_id: int = 4326) -> list[bytes | None]:
    """Encode shapely geometries as GeoPackage blobs (points without envelope, others xy)."""
    geoms = np.asarray(geoms, dtype=object)
    wkb = shapely.to_wkb(geoms, byte_order=1, flavor="iso")
    points = shapely.get_type_id(geoms) == 0
    head = b"GP\x00\x01" + struct.pack("<i", srs_id)
    bounds = shapely.bounds(geoms)
    out: list[bytes | None] = []
    for w, b, is_point in zip(wkb, bounds, points, strict=True):
        if w is None:
            out.append(None)
        elif is_point:
            out.append(head + w)
        else:
            out.append(b"GP\x00\x03" + struct.pack("<i4d", srs_id, b[0], b[2], b[1], b[3]) + w)
    return out


def _env_fn(i: int) -> Any:
    def fn(blob: bytes | None) -> float | None:
        env = _envelope(blob)
        return None if env is None else env[i]

    return fn


def _st_is_empty(blob: bytes | None) -> int | None:
    return None if blob is None else int(_envelope(blob) is None)


def _register_functions(con: sqlite3.Connection) -> None:
    """The ``ST_*`` functions the GeoPackage R-tree triggers call."""
    con.create_function("ST_IsEmpty", 1, _st_is_empty, deterministic=True)
    for i, name in enumerate(("ST_MinX", "ST_MinY", "ST_MaxX", "ST_MaxY")):
        con.create_function(name, 1, _env_fn(i), deterministic=True)
