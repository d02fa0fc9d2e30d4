"""Single-feature edits (OGC API – Features Part 4) of the layers other systems keep
current: facilities, buildings (their households) and workers.

The core, without a store: a feature's entity tag (a hash of what is stored, so a tag is
stale exactly when the feature changed, whatever else changed in its layer), a GeoJSON
feature read into a row, the community a facility lies in, and the derived results an
edit makes stale. :mod:`gis.workflows.features` runs an edit in one transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

import geopandas as gpd
import shapely

from gis import io as gio
from gis import schema
from gis.crs import metric_crs_of
from gis.errors import ValidationError

#: the layers features may be edited in, one at a time
EDITABLE = ("facilities", "buildings", "workers")
#: provenance, never set by a caller: a new feature is real data; an edited one keeps its flag
KEPT = ("synthetic",)
#: a facility may lie this far (m) outside every community of the city (as a building may
#: lie outside its own: :data:`gis.io.TOLERANCE_M`)
OUTSIDE_M = gio.TOLERANCE_M
ToCrs84 = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def content_tag(name: str, row: Mapping[str, Any]) -> str:
    """A hash of a stored row (every column, the geometry's WKB): the part of a feature's
    ``ETag`` that ``If-Match`` is checked against.
    """
    spec = schema.layer(name)
    parts: list[Any] = []
    for f in spec.fields:
        v = row.get(f.name)
        parts.append(None if schema.missing(v) else schema.CASTS[f.kind](v))
    if spec.geometry:
        g = row.get("geometry")
        parts.append(None if g is None else shapely.to_wkb(g, hex=True, output_dimension=2))
    raw = json.dumps([name, parts], ensure_ascii=False, default=str)
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def read_feature(
    name: str,
    doc: Any,
    *,
    fid: str | None = None,
    to_crs84: ToCrs84 | None = None,
    hidden: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A GeoJSON ``Feature`` as a row of ``name`` (``geometry`` a shapely geometry in
    CRS84, moved there by ``to_crs84`` when it came in another CRS); every problem in one
    :class:`ValidationError`. ``fid``: the id the URL names (a body naming another is an
    error); ``hidden``: properties the caller may not set.
    """
    spec = schema.layer(name)
    if not isinstance(doc, Mapping) or doc.get("type") != "Feature":
        raise ValidationError("feature", ['the body must be a GeoJSON object of "type": "Feature"'])
    problems: list[str] = []
    row = _properties(name, doc, hidden, problems)
    key = spec.key[0]
    ids = {str(x) for x in (doc.get("id"), row.get(key), fid) if x is not None}
    if len(ids) > 1:
        problems.append(f"the feature's id ({', '.join(sorted(ids))}) must be one value")
    if ids:
        row[key] = ids.pop()
    if spec.geometry is None and doc.get("geometry") is not None:
        problems.append(f'{name} have no geometry: send "geometry": null')
    elif spec.geometry is not None:
        _geometry(name, doc.get("geometry"), to_crs84, row, problems)
    if problems:
        raise ValidationError("feature", problems)
    return row


def read_patch(
    name: str, doc: Any, *, to_crs84: ToCrs84 | None = None, hidden: tuple[str, ...] = ()
) -> dict[str, Any]:
    """A JSON merge patch of a feature (RFC 7396): ``{"properties": {…}}`` with the
    properties to change (``null`` clears one) and, to move it, a ``geometry``.
    """
    spec = schema.layer(name)
    if not isinstance(doc, Mapping):
        raise ValidationError("patch", ["the body must be a JSON object (a merge patch)"])
    problems: list[str] = []
    extra = sorted(set(doc) - {"type", "properties", "geometry", "id"})
    if extra:
        problems.append(f"a patch holds properties and geometry; not {', '.join(extra)}")
    row = _properties(name, doc, hidden, problems)
    key = spec.key[0]
    if (doc.get("id") is not None and str(doc["id"]) != str(row.get(key, doc["id"]))) or (
        key in row and row[key] is None
    ):
        problems.append(f"the id ({key}) cannot be cleared")
    if "geometry" in doc:
        if spec.geometry is None:
            if doc["geometry"] is not None:
                problems.append(f"{name} have no geometry")
        else:
            _geometry(name, doc["geometry"], to_crs84, row, problems)
    if not row and not problems:
        problems.append("the patch changes nothing: give properties or a geometry")
    if problems:
        raise ValidationError("patch", problems)
    return row


def _properties(
    name: str, doc: Mapping[str, Any], hidden: tuple[str, ...], problems: list[str]
) -> dict[str, Any]:
    spec = schema.layer(name)
    props = doc.get("properties") or {}
    if not isinstance(props, Mapping):
        problems.append("properties must be an object")
        return {}
    row: dict[str, Any] = {}
    for k, v in props.items():
        if k in KEPT or k in hidden:
            problems.append(f"{k} cannot be set through the API")
        elif k not in spec.columns:
            problems.append(f"unknown property {k!r}; {name} has {', '.join(spec.columns)}")
        elif isinstance(v, Mapping | list):
            problems.append(f"{k}: a plain value, not {type(v).__name__}")
        else:
            row[k] = v
    return row


def _geometry(
    name: str, geom: Any, to_crs84: ToCrs84 | None, row: dict[str, Any], problems: list[str]
) -> None:
    spec = schema.layer(name)
    if not isinstance(geom, Mapping):
        problems.append(f"{name} need a GeoJSON {spec.geometry} geometry")
        return
    try:
        g = shapely.from_geojson(json.dumps(geom))
    except (shapely.errors.GEOSException, ValueError, TypeError):
        g = None
    if g is None or g.is_empty or g.geom_type != spec.geometry:
        problems.append(f"geometry must be a GeoJSON {spec.geometry} (got {geom.get('type')!r})")
        return
    if to_crs84 is not None:
        g = shapely.transform(g, lambda xy: np.column_stack(to_crs84(xy[:, 0], xy[:, 1])))
    if not np.isfinite(shapely.get_coordinates(g)).all():
        problems.append("geometry: coordinates must be finite numbers")
        return
    row["geometry"] = g


def checked(
    name: str,
    row: Mapping[str, Any],
    *,
    communities: gpd.GeoDataFrame | None,
    facility_types: set[str] | None,
) -> dict[str, Any]:
    """``row`` validated exactly as an import of a file holding it (:func:`gis.io.check_rows`),
    as the stored row (every column; missing optional ones ``None``).
    """
    spec = schema.layer(name)
    attrs = {k: v for k, v in row.items() if k != "geometry"}
    df: pd.DataFrame = pd.DataFrame([attrs])
    if spec.geometry:
        df = gpd.GeoDataFrame(df, geometry=[row.get("geometry")], crs=schema.STORAGE_CRS)
    out = gio.check_rows(name, df, communities=communities, facility_types=facility_types)
    rec = {k: (None if schema.missing(v) else v) for k, v in out.iloc[0].to_dict().items()}
    if spec.geometry:
        rec["geometry"] = out.geometry.iloc[0]
    for k in KEPT:
        rec[k] = bool(row.get(k, False))
    return rec


def community_of(point: shapely.Geometry, communities: gpd.GeoDataFrame) -> str:
    """The community a facility lies in (the nearest within :data:`OUTSIDE_M` when it
    lies just outside all); a point farther out is outside the city: an error.
    """
    pts = gpd.GeoSeries([point], crs=4326)
    code = gio.locate(pts, communities).iloc[0]
    if code is not None:
        return str(code)
    metric = metric_crs_of(communities)
    near = communities.to_crs(metric).sindex.nearest(
        pts.to_crs(metric).values, return_distance=True
    )
    (_, idx), dist = near
    if len(idx) and float(dist[0]) <= OUTSIDE_M:
        return str(communities["code"].iloc[int(idx[0])])
    x, y = point.coords[0]
    raise ValidationError(
        "feature", [f"the point ({x:.6f}, {y:.6f}) lies outside the city's communities"]
    )


def stale_results(
    name: str,
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any] | None,
    *,
    held: set[str],
    coverage_types: set[str],
) -> list[str]:
    """The derived results an edit makes stale, of those the store holds:
    ``coverage:<type>`` (coverage and gap areas of a facility type), ``grids`` (their
    households), ``quotas`` (workers due by households) and ``assignments``.
    """
    out: list[str] = []
    if name == "facilities":
        types = {r["type"] for r in (old, new) if r is not None}
        out += [f"coverage:{t}" for t in sorted(types & coverage_types)]
    elif name == "buildings":
        counts = ("households", "residents", "elderly", "children", "disabled", "community_code")
        moved = old is None or new is None or any(old.get(c) != new.get(c) for c in counts)
        moved = moved or not shapely.equals(old.get("geometry"), new.get("geometry"))  # type: ignore[union-attr]
        if moved:
            out += [f"coverage:{t}" for t in sorted(coverage_types)]
            out += [r for r in ("grids", "quotas") if r in held]
    elif name == "workers":
        cols = ("community_code", "role", "post")
        if old is None or new is None or any(old.get(c) != new.get(c) for c in cols):
            out += [r for r in ("assignments",) if r in held]
    return out
