"""Coordinate systems: WGS84/CGCS2000, the Chinese web-map systems GCJ-02 and BD-09, metric zones.

GCJ-02 (Amap/Gaode, Tencent) and BD-09 (Baidu) are not in the EPSG registry and pyproj
cannot convert them, so the public obfuscation formulas are implemented here with numpy.
The forward formulas (WGS84 → GCJ-02 → BD-09) are closed form; their inverses are solved
by fixed-point iteration to well under a millimetre, far inside the 0.5 m requirement
(the common one-step inverse is off by 1–2 m).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

import geopandas as gpd
import pyproj
import shapely

from gis.errors import InvalidCRSError

System = Literal["wgs84", "cgcs2000", "gcj02", "bd09"]
SYSTEMS: tuple[str, ...] = ("wgs84", "cgcs2000", "gcj02", "bd09")

#: lon/lat box of China used to reject coordinates that cannot be Chinese data.
CHINA_BOUNDS = (73.4, 3.8, 135.1, 53.6)

_A = 6378245.0  # Krasovsky 1940 semi-major axis, as the GCJ-02 formula uses it
_EE = 0.00669342162296594323
_X_PI = np.pi * 3000.0 / 180.0

Array = NDArray[np.float64]


def _delta_lat(x: Array, y: Array) -> Array:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
    ret += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    ret += (20.0 * np.sin(y * np.pi) + 40.0 * np.sin(y / 3.0 * np.pi)) * 2.0 / 3.0
    ret += (160.0 * np.sin(y / 12.0 * np.pi) + 320.0 * np.sin(y * np.pi / 30.0)) * 2.0 / 3.0
    return ret


def _delta_lon(x: Array, y: Array) -> Array:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
    ret += (20.0 * np.sin(6.0 * x * np.pi) + 20.0 * np.sin(2.0 * x * np.pi)) * 2.0 / 3.0
    ret += (20.0 * np.sin(x * np.pi) + 40.0 * np.sin(x / 3.0 * np.pi)) * 2.0 / 3.0
    ret += (150.0 * np.sin(x / 12.0 * np.pi) + 300.0 * np.sin(x / 30.0 * np.pi)) * 2.0 / 3.0
    return ret


def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[Array, Array]:
    """Convert WGS84 lon/lat (degrees) to GCJ-02.

    Examples
    --------
    >>> lon, lat = wgs84_to_gcj02(116.404, 39.915)
    >>> round(float(lon), 6), round(float(lat), 6)
    (116.410244, 39.916404)
    """
    lon = np.asarray(lon, dtype=float)
    lat = np.asarray(lat, dtype=float)
    dlat = _delta_lat(lon - 105.0, lat - 35.0)
    dlon = _delta_lon(lon - 105.0, lat - 35.0)
    radlat = lat / 180.0 * np.pi
    magic = 1 - _EE * np.sin(radlat) ** 2
    sqrtmagic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrtmagic) * np.pi)
    dlon = (dlon * 180.0) / (_A / sqrtmagic * np.cos(radlat) * np.pi)
    return lon + dlon, lat + dlat


def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[Array, Array]:
    """Convert GCJ-02 lon/lat to BD-09."""
    x = np.asarray(lon, dtype=float)
    y = np.asarray(lat, dtype=float)
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def wgs84_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[Array, Array]:
    """Convert WGS84 lon/lat to BD-09."""
    return gcj02_to_bd09(*wgs84_to_gcj02(lon, lat))


def _invert(
    forward: Callable[[Array, Array], tuple[Array, Array]], lon: ArrayLike, lat: ArrayLike
) -> tuple[Array, Array]:
    """Invert a near-identity forward transform by fixed-point iteration."""
    tx = np.asarray(lon, dtype=float)
    ty = np.asarray(lat, dtype=float)
    x, y = tx.copy(), ty.copy()
    for _ in range(30):
        fx, fy = forward(x, y)
        ex, ey = fx - tx, fy - ty
        x, y = x - ex, y - ey
        if np.all(np.abs(ex) < 1e-11) and np.all(np.abs(ey) < 1e-11):
            break
    return x, y


def gcj02_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[Array, Array]:
    """Convert GCJ-02 lon/lat to WGS84 (iterative inverse, error far below 1 mm)."""
    return _invert(wgs84_to_gcj02, lon, lat)


def bd09_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[Array, Array]:
    """Convert BD-09 lon/lat to WGS84 (iterative inverse, error far below 1 mm)."""
    return _invert(wgs84_to_bd09, lon, lat)


_TO_WGS84: dict[str, Callable[[ArrayLike, ArrayLike], tuple[Array, Array]] | None] = {
    "wgs84": None,
    "cgcs2000": None,  # CGCS2000 and WGS84 agree within centimetres
    "gcj02": gcj02_to_wgs84,
    "bd09": bd09_to_wgs84,
}
_FROM_WGS84: dict[str, Callable[[ArrayLike, ArrayLike], tuple[Array, Array]] | None] = {
    "wgs84": None,
    "cgcs2000": None,
    "gcj02": wgs84_to_gcj02,
    "bd09": wgs84_to_bd09,
}


def check_system(system: str) -> str:
    """The lon/lat system (wgs84, cgcs2000, gcj02, bd09) a name means — any name
    :func:`resolve` takes for a geographic CRS; unknown or projected ones are rejected.
    """
    try:
        uri = resolve(system, 0)
    except InvalidCRSError:
        uri = ""
    s = {CRS84: "wgs84", crs_uri(4326): "wgs84", crs_uri(4490): "cgcs2000", GCJ02: "gcj02",
         BD09: "bd09"}.get(uri)  # fmt: skip
    if s is None:
        raise InvalidCRSError(
            f"unknown coordinate system {system!r}; use one of {', '.join(SYSTEMS)}"
        )
    return s


def _apply(
    geoms: gpd.GeoSeries, fn: Callable[[ArrayLike, ArrayLike], tuple[Array, Array]]
) -> gpd.GeoSeries:
    def coords(xy: Array) -> Array:
        x, y = fn(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return gpd.GeoSeries(
        shapely.transform(geoms.values, coords), index=geoms.index, crs="EPSG:4326"
    )


def to_wgs84(geoms: gpd.GeoSeries, system: str) -> gpd.GeoSeries:
    """Convert lon/lat geometries in ``system`` (wgs84, cgcs2000, gcj02, bd09) to WGS84."""
    fn = _TO_WGS84[check_system(system)]
    return geoms.set_crs("EPSG:4326", allow_override=True) if fn is None else _apply(geoms, fn)


def from_wgs84(geoms: gpd.GeoSeries, system: str) -> gpd.GeoSeries:
    """Convert WGS84 geometries to lon/lat in ``system`` (for GCJ-02 tiles, say)."""
    fn = _FROM_WGS84[check_system(system)]
    return geoms if fn is None else _apply(geoms, fn)


def metric_crs(lon: float) -> pyproj.CRS:
    """The CGCS2000 3-degree Gauss–Krüger zone (central meridian on the longitude).

    Examples
    --------
    >>> metric_crs(117.4).to_epsg()
    4548
    """
    cm = 3 * round(lon / 3)
    if not 75 <= cm <= 135:
        raise InvalidCRSError(f"longitude {lon} is outside China's 3-degree zones (75°E–135°E)")
    return pyproj.CRS.from_epsg(4534 + (cm - 75) // 3)


def metric_crs_of(gdf: gpd.GeoDataFrame | gpd.GeoSeries) -> pyproj.CRS:
    """The metric zone for data in lon/lat, chosen by the centre of its extent: the
    CGCS2000 Gauss–Krüger zone in China, the WGS 84 UTM zone elsewhere (a test city abroad).
    """
    if gdf.crs is None:
        raise InvalidCRSError("data has no CRS; set it (e.g. gdf.set_crs('EPSG:4326')) first")
    minx, miny, maxx, maxy = gdf.to_crs("EPSG:4326").total_bounds
    lon, lat = (minx + maxx) / 2, (miny + maxy) / 2
    if bool(outside_china(lon, lat)):
        zone = int((lon + 180) // 6) + 1
        return pyproj.CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)
    return metric_crs(lon)


def outside_china(lon: ArrayLike, lat: ArrayLike) -> NDArray[np.bool_]:
    """True where a lon/lat lies outside China's bounding box."""
    x = np.asarray(lon, dtype=float)
    y = np.asarray(lat, dtype=float)
    x0, y0, x1, y1 = CHINA_BOUNDS
    return ~((x >= x0) & (x <= x1) & (y >= y0) & (y <= y1))


# --- the names every endpoint accepts for a CRS ------------------------------------------

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
# no authority code exists for the Chinese web-map systems
GCJ02 = "http://www.opengis.net/def/crs/gridgis/0/GCJ02"
BD09 = "http://www.opengis.net/def/crs/gridgis/0/BD09"
_WEB = {GCJ02: (wgs84_to_gcj02, gcj02_to_wgs84), BD09: (wgs84_to_bd09, bd09_to_wgs84)}


def crs_uri(epsg: int) -> str:
    """The OGC URI of an EPSG code."""
    return f"http://www.opengis.net/def/crs/EPSG/0/{epsg}"


def offered(metric_epsg: int) -> list[str]:
    """The CRSs the service reads and writes: CRS84 (stored), CGCS2000 and WGS84
    geographic, the city's Gauss–Krüger zone, and GCJ-02 / BD-09 for web-map clients.
    """
    return [CRS84, crs_uri(4490), crs_uri(4326), crs_uri(metric_epsg), GCJ02, BD09]


def resolve(text: str | None, metric_epsg: int) -> str:
    """The URI a ``crs`` parameter names (default CRS84); ``InvalidCRSError`` if not offered.

    Accepted: the URIs of :func:`offered`, ``CRS84``/``wgs84``, ``EPSG:4326``,
    ``EPSG:4490``/``cgcs2000``, ``EPSG:<zone>``, ``gcj02`` and ``bd09`` (any case).
    """
    if text is None:
        return CRS84
    key = text.strip().lower()
    if key.startswith("epsg") and not key.startswith("epsg:"):  # EPSG4326, epsg-4490
        key = "epsg:" + key[4:].lstrip("-_")
    aliases = {
        "crs84": CRS84, "wgs84": CRS84, "ogc:crs84": CRS84, "epsg:4326": crs_uri(4326),
        "epsg:4490": crs_uri(4490), "cgcs2000": crs_uri(4490), "gcj02": GCJ02, "gcj-02": GCJ02,
        "bd09": BD09, "bd-09": BD09, f"epsg:{metric_epsg}": crs_uri(metric_epsg),
    }  # fmt: skip
    choices = offered(metric_epsg)
    uri = aliases.get(key) or next((u for u in choices if u.lower() == key), None)
    if uri is None:
        raise InvalidCRSError(f"crs {text!r} is not offered; use one of {', '.join(choices)}")
    return uri


@functools.lru_cache(maxsize=64)  # building a PROJ pipeline costs milliseconds; reuse it
def transformer(
    uri: str, inverse: bool = False, axis_order: bool = True
) -> Callable[..., tuple[Array, Array]]:
    """A function ``(x, y) → (x, y)`` of arrays from CRS84 to ``uri`` (``inverse``: back).

    ``axis_order``: coordinates in the CRS's own axis order as OGC API – Features Part 2
    asks (latitude first for EPSG:4326/4490, northing first for the Gauss–Krüger zone);
    otherwise easting/longitude first, as ``lon``/``lat`` parameters are.
    """
    if uri == CRS84:
        return lambda x, y: (np.asarray(x, dtype=float), np.asarray(y, dtype=float))
    if uri in _WEB:
        return _WEB[uri][1 if inverse else 0]
    target = pyproj.CRS.from_epsg(int(uri.rsplit("/", 1)[1]))
    src, dst = ("OGC:CRS84", target) if not inverse else (target, "OGC:CRS84")
    return pyproj.Transformer.from_crs(src, dst, always_xy=not axis_order).transform


def geographic(uri: str) -> bool:
    """Whether coordinates in ``uri`` are longitude/latitude degrees."""
    return uri in (CRS84, GCJ02, BD09, crs_uri(4326), crs_uri(4490))
