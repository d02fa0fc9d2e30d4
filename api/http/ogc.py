"""OGC API – Features documents (Parts 1–3) over a gridgis store: collections, pages of
features, links, CRS reprojection, CQL2 filters.

Collections are the store's layers as other systems need them, cut by the caller's role
(see :mod:`gis.access`): viewers read the aggregated layers; supervisors also read workers and
buildings, inside their jurisdiction only. Paging, bbox and attribute filters run in the
store's SQL (:meth:`gis.store.Store.page`).
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pandas as pd

import shapely

from gis import crs as gcrs
from gis import schema
from gis.access import Principal
from gis.crs import CRS84

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/html",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    # Part 4 (facilities, buildings, workers; api.http.edits)
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/create-replace-delete",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/update",
    "http://www.opengis.net/spec/ogcapi-features-4/1.0/conf/features",
]
MAX_LIMIT = 10_000
RESERVED = {
    "bbox",
    "limit",
    "offset",
    "f",
    "datetime",
    "crs",
    "bbox-crs",
    "filter",
    "filter-lang",
    "filter-crs",
    "sortby",
    "properties",
    "skipGeometry",
}


@dataclass(frozen=True)
class Collection:
    """A layer as a collection: who may read it and what they see."""

    id: str
    layer: str
    title: str
    description: str
    role: str = "viewer"
    jurisdiction: str | None = None  # the code column a scoped key is limited by
    hidden: tuple[str, ...] = ("synthetic",)
    viewer_hidden: tuple[str, ...] = ()
    queryables: tuple[str, ...] = field(default_factory=tuple)
    #: the property ``datetime`` filters on (a date, ``YYYY-MM-DD``), if it has one
    time: str | None = None


COLLECTIONS = {
    c.id: c
    for c in (
        Collection(
            "districts", "districts", "区县", "Districts of the city", queryables=("code", "name")
        ),
        Collection(
            "streets",
            "streets",
            "街道/乡镇",
            "Streets and townships",
            queryables=("code", "name", "district_code"),
        ),
        Collection(
            "communities",
            "communities",
            "社区/村",
            "Urban communities and villages",
            queryables=("code", "name", "kind", "street_code", "district_code"),
        ),
        Collection(
            "grids",
            "grids",
            "网格",
            "Grids with households, the responsible worker's public id and covered shares",
            queryables=("code", "community_code"),
        ),
        Collection(
            "facilities",
            "facilities",
            "服务设施",
            "Community service facilities",
            queryables=("id", "type", "status"),
        ),
        Collection(
            "gaps",
            "gaps",
            "覆盖缺口",
            "Areas where a facility type leaves households uncovered",
            viewer_hidden=("served",),
            queryables=("type", "community_code"),
        ),
        Collection(
            "workers",
            "workers",
            "社区工作者",
            "Community workers (supervisors, inside their jurisdiction)",
            role="supervisor",
            jurisdiction="community_code",
            hidden=("synthetic", "home_lon", "home_lat"),
            queryables=("id", "community_code", "role"),
            time="hired",
        ),
        Collection(
            "buildings",
            "buildings",
            "楼栋",
            "Buildings with households (supervisors, inside their jurisdiction)",
            role="supervisor",
            jurisdiction="community_code",
            queryables=("id", "community_code"),
        ),
    )
}


def visible(who: Principal) -> list[Collection]:
    """The collections ``who`` may read."""
    return [c for c in COLLECTIONS.values() if who.at_least(c.role)]


def link(href: str, rel: str, type_: str, title: str | None = None) -> dict[str, str]:
    """An OGC link object."""
    out = {"href": href, "rel": rel, "type": type_}
    if title:
        out["title"] = title
    return out


def landing(base: str) -> dict[str, Any]:
    """The landing page document."""
    return {
        "title": "gridgis — 社区网格化服务管理",
        "description": "Grids, workers and facility coverage of the city (OGC API – Features).",
        "links": [
            link(f"{base}/", "self", "application/json", "this document"),
            link(f"{base}/?f=html", "alternate", "text/html", "this document as HTML"),
            link(
                f"{base}/openapi.json",
                "service-desc",
                "application/vnd.oai.openapi+json;version=3.0",
                "the API definition",
            ),
            link(f"{base}/docs", "service-doc", "text/html", "the API documentation"),
            link(f"{base}/conformance", "conformance", "application/json", "conformance classes"),
            link(f"{base}/collections", "data", "application/json", "the collections"),
            link(f"{base}/maps/coverage", "related", "text/html", "地图: 服务覆盖总览"),
            link(f"{base}/maps/staffing", "related", "text/html", "地图: 社区工作者配备"),
        ],
    }


def collection_doc(
    c: Collection, base: str, extent: tuple[float, ...] | None, crs: list[str] | None = None
) -> dict[str, Any]:
    """A collection's metadata document."""
    spec = schema.layer(c.layer)
    doc: dict[str, Any] = {
        "id": c.id,
        "title": c.title,
        "description": c.description,
        "itemType": "feature",
        "crs": crs or [CRS84],
        "storageCrs": CRS84,
        "links": [
            link(f"{base}/collections/{c.id}", "self", "application/json"),
            link(f"{base}/collections/{c.id}?f=html", "alternate", "text/html"),
            link(
                f"{base}/collections/{c.id}/items", "items", "application/geo+json", "the features"
            ),
        ],
    }
    if extent is not None and spec.geometry:
        doc["extent"] = {"spatial": {"bbox": [list(extent)], "crs": CRS84}}
    return doc


def parse_bbox(
    text: str | None, geographic: bool = True
) -> tuple[float, float, float, float] | None:
    """``minx,miny,maxx,maxy`` (CRS84 unless ``bbox-crs`` says otherwise); ``ValueError``
    with a clear message otherwise.
    """
    if text is None:
        return None
    parts = text.split(",")
    if len(parts) != 4:
        raise ValueError(f"bbox {text!r}: give four numbers minx,miny,maxx,maxy")
    try:
        x0, y0, x1, y1 = (float(p) for p in parts)
    except ValueError:
        raise ValueError(f"bbox {text!r}: not numbers") from None
    if not all(math.isfinite(v) for v in (x0, y0, x1, y1)):
        raise ValueError(f"bbox {text!r}: not finite numbers")
    if geographic and not (
        -180 <= x0 <= 180 and -180 <= x1 <= 180 and -90 <= y0 <= 90 and -90 <= y1 <= 90
    ):
        raise ValueError(f"bbox {text!r}: outside longitude -180..180, latitude -90..90")
    if x0 > x1 or y0 > y1:
        raise ValueError(f"bbox {text!r}: minx must not exceed maxx, nor miny maxy")
    return x0, y0, x1, y1


def _clean(v: Any) -> Any:
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, float | np.floating):
        return None if math.isnan(v) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def features_json(
    rows: list[dict[str, Any]],
    geometry: list[str | None],
    key: str,
    drop: set[str],
    extra: dict[str, dict[str, Any]] | None = None,
    keep: set[str] | None = None,
) -> list[str]:
    """Each row as a GeoJSON Feature text (``extra``: more properties by key; ``keep``:
    only these properties).
    """
    out = []
    for rec, g in zip(rows, geometry, strict=True):
        p = {k: _clean(v) for k, v in rec.items() if k not in drop}
        if extra:
            p.update(extra.get(rec[key], {}))
        if keep is not None:
            p = {k: v for k, v in p.items() if k in keep}
        fid = json.dumps(str(rec[key]))
        text = json.dumps(p, ensure_ascii=False)
        out.append(f'{{"type":"Feature","id":{fid},"geometry":{g or "null"},"properties":{text}}}')
    return out


def collection_page(
    items: list[str],
    matched: int,
    base: str,
    cid: str,
    params: dict[str, str],
    limit: int,
    offset: int,
) -> str:
    """The FeatureCollection text of one page, with self/alternate/next/prev links."""

    def href(off: int, fmt: str | None = None) -> str:
        q = {**params, "limit": str(limit), "offset": str(off)}
        if fmt:
            q["f"] = fmt
        return f"{base}/collections/{cid}/items?{urlencode(q)}"

    links = [
        link(href(offset), "self", "application/geo+json"),
        link(href(offset, "html"), "alternate", "text/html"),
        link(f"{base}/collections/{cid}", "collection", "application/json"),
    ]
    if offset + len(items) < matched:
        links.append(link(href(offset + limit), "next", "application/geo+json"))
    if offset > 0:
        links.append(link(href(max(0, offset - limit)), "prev", "application/geo+json"))
    head = {
        "type": "FeatureCollection",
        "numberMatched": matched,
        "numberReturned": len(items),
        "timeStamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "links": links,
    }
    text = json.dumps(head, ensure_ascii=False)
    return text[:-1] + ',"features":[' + ",".join(items) + "]}"


def as_html(title: str, doc: Any) -> str:
    """A plain HTML view of a JSON document, its links clickable."""
    body = html.escape(json.dumps(doc, ensure_ascii=False, indent=2))
    body = _LINK.sub(lambda m: f'"<a href="{m.group(1)}">{m.group(1)}</a>"', body)
    return (
        f"<!doctype html><html lang='zh-CN'><head><meta charset='utf-8'><title>{html.escape(title)}"
        f"</title></head><body><h1>{html.escape(title)}</h1><pre>{body}</pre></body></html>"
    )


_LINK = re.compile(r"&quot;(https?://[^&\s]+?)&quot;")


# -- Part 2: coordinate reference systems ------------------------------------------------


def reproject_geojson(geometry: list[str | None], uri: str) -> list[str | None]:
    """GeoJSON geometry texts from CRS84 into ``uri`` (its own axis order)."""
    if uri == CRS84 or not geometry:
        return geometry
    fn = gcrs.transformer(uri)
    geoms = shapely.from_geojson(np.asarray(geometry, dtype=object))
    digits = 7 if gcrs.geographic(uri) else 3

    def move(xy: np.ndarray) -> np.ndarray:
        a, b = fn(xy[:, 0], xy[:, 1])
        return np.round(np.column_stack([a, b]), digits)

    moved = shapely.transform(geoms, move)
    return [None if g is None else shapely.to_geojson(g) for g in moved]


def bbox_to_crs84(
    bbox: tuple[float, float, float, float], uri: str
) -> tuple[float, float, float, float]:
    """A bbox given in ``uri`` (its axis order) as a CRS84 envelope."""
    if uri == CRS84:
        return bbox
    x0, y0, x1, y1 = bbox
    xs = np.array([x0, x1, x0, x1, (x0 + x1) / 2, (x0 + x1) / 2, x0, x1])
    ys = np.array([y0, y0, y1, y1, y0, y1, (y0 + y1) / 2, (y0 + y1) / 2])
    lon, lat = gcrs.transformer(uri, inverse=True)(xs, ys)
    lon, lat = np.asarray(lon), np.asarray(lat)
    return float(lon.min()), float(lat.min()), float(lon.max()), float(lat.max())


# -- Part 3: filtering with CQL2 text ------------------------------------------------------

FILTER_CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
]
CONFORMANCE += FILTER_CONFORMANCE


def filterable(c: Collection, who: Principal) -> dict[str, str]:
    """Property → JSON type a caller may filter on (never a hidden one)."""
    spec = schema.layer(c.layer)
    hidden = set(c.hidden) | (set() if who.at_least("supervisor") else set(c.viewer_hidden))
    out = {f.name: schema.JSON_TYPES[f.kind] for f in spec.fields if f.name not in hidden}
    if spec.geometry:
        out["geometry"] = "geometry"
    return out


def parse_filter(text: str, lang: str | None, allowed: dict[str, str]) -> Any:
    """A CQL2 text filter as a pygeofilter AST; ``ValueError`` with the reason otherwise."""
    from pygeofilter import ast as A
    from pygeofilter.parsers.cql2_text import parse

    if lang not in (None, "cql2-text"):
        raise ValueError(f"filter-lang {lang!r}: only cql2-text is supported")
    if len(text) > 20_000:
        raise ValueError("filter longer than 20,000 characters")
    literal = {"TRUE": True, "FALSE": False}.get(text.strip().upper())
    if literal is not None:  # a boolean literal alone is CQL2 the parser does not take
        return literal
    try:
        tree = parse(text)
    except Exception as exc:  # the parser's own errors are many kinds; one message
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"filter {text!r} is not CQL2 text: {first}") from None
    if isinstance(tree, bool):
        return tree
    if not isinstance(tree, A.Node):
        raise ValueError(f"filter {text!r} is not a condition")
    names: set[str] = set()
    vertices = 0

    def walk(node: Any) -> None:
        nonlocal vertices
        if isinstance(node, A.Attribute):
            names.add(node.name)
        if hasattr(node, "geometry") and isinstance(node.geometry, dict):
            try:
                g = shapely.geometry.shape(node.geometry)
            except (ValueError, TypeError, shapely.errors.GEOSException) as exc:
                raise ValueError(f"filter geometry cannot be read: {exc}") from None
            if g.is_empty or not g.is_valid:
                why = "empty" if g.is_empty else shapely.is_valid_reason(g)
                raise ValueError(f"filter geometry is not valid ({why})")
            if not np.isfinite(shapely.get_coordinates(g)).all():
                raise ValueError("filter geometry has coordinates that are not numbers")
            vertices += len(shapely.get_coordinates(g))
        for v in vars(node).values() if hasattr(node, "__dict__") else ():
            if isinstance(v, A.Node) or hasattr(v, "geometry"):
                walk(v)
            elif isinstance(v, list | tuple):
                for x in v:
                    if isinstance(x, A.Node) or hasattr(x, "geometry"):
                        walk(x)

    walk(tree)
    unknown = sorted(names - set(allowed))
    if unknown:
        raise ValueError(
            f"filter uses {', '.join(map(repr, unknown))}; filterable: {', '.join(allowed)}"
        )
    if vertices > 10_000:
        raise ValueError(f"filter geometry has {vertices:,} vertices (at most 10,000)")
    _check_types(tree, allowed)
    return fold(tree)


_KIND_OF = {str: "string", bool: "boolean", int: "number", float: "number"}


def _check_types(node: Any, allowed: dict[str, str]) -> None:
    """Every literal a property is compared with must be of the property's type (a
    string column with a string, a number column with a number), so no store is asked to
    compare text with a number.
    """
    from pygeofilter import ast as A

    def kind(prop: str) -> str:
        k = allowed.get(prop, "")
        return "number" if k in ("integer", "number") else k

    def check(attr: Any, values: list[Any]) -> None:
        if not isinstance(attr, A.Attribute) or kind(attr.name) == "geometry":
            return
        for v in values:
            got = _KIND_OF.get(type(v))
            if got is not None and got != kind(attr.name):
                raise ValueError(
                    f"filter compares {attr.name} (a {kind(attr.name)}) with {v!r} (a {got})"
                )

    if isinstance(node, A.Not):
        _check_types(node.sub_node, allowed)
    elif isinstance(node, A.And | A.Or):
        _check_types(node.lhs, allowed)
        _check_types(node.rhs, allowed)
    elif type(node).__name__ in _COMPARE:
        check(node.lhs, [node.rhs])
        check(node.rhs, [node.lhs])
    elif isinstance(node, A.Between):
        check(node.lhs, [node.low, node.high])
    elif isinstance(node, A.In):
        check(node.lhs, list(node.sub_nodes))
    elif isinstance(node, A.Like):
        check(node.lhs, [node.pattern])


_COMPARE = {
    "Equal": lambda a, b: a == b, "NotEqual": lambda a, b: a != b, "LessThan": lambda a, b: a < b,
    "LessEqual": lambda a, b: a <= b, "GreaterThan": lambda a, b: a > b,
    "GreaterEqual": lambda a, b: a >= b,
}  # fmt: skip


def fold(node: Any) -> Any:
    """``node`` with its constant parts evaluated: ``1=1`` is ``True``, ``NOT (1=1)`` is
    ``False``, ``x > 3 AND 1=1`` is ``x > 3``. A filter that is constant as a whole comes
    back as ``True`` (every feature) or ``False`` (none), which each store then applies
    exactly, instead of each evaluator making its own sense of a literal.
    """
    from pygeofilter import ast as A

    name = type(node).__name__
    if isinstance(node, A.Not):
        sub = fold(node.sub_node)
        return (not sub) if isinstance(sub, bool) else A.Not(sub)
    if isinstance(node, A.And | A.Or):
        a, b = fold(node.lhs), fold(node.rhs)
        is_and = isinstance(node, A.And)
        for x, y in ((a, b), (b, a)):
            if isinstance(x, bool):
                return (y if x else False) if is_and else (True if x else y)
        return type(node)(a, b)
    if name in _COMPARE and _constant(node.lhs) and _constant(node.rhs):
        try:
            return bool(_COMPARE[name](node.lhs, node.rhs))
        except TypeError:
            raise ValueError(f"cannot compare {node.lhs!r} with {node.rhs!r}") from None
    if isinstance(node, A.Between) and all(_constant(x) for x in (node.lhs, node.low, node.high)):
        return bool((node.low <= node.lhs <= node.high) != node.not_)
    if isinstance(node, A.In) and _constant(node.lhs) and all(_constant(x) for x in node.sub_nodes):
        return bool((node.lhs in node.sub_nodes) != node.not_)
    return node


def _constant(v: Any) -> bool:
    return isinstance(v, int | float | str | bool) and not isinstance(v, type)


def parse_sortby(text: str | None, allowed: Iterable[str]) -> list[tuple[str, bool]]:
    """``sortby`` (OGC API – Features Part 8 style: ``households,-code``, ``+name``) as
    ``(property, descending)`` pairs; ``ValueError`` for a property one may not sort by.
    """
    if not text:
        return []
    allowed = set(allowed)
    out = []
    for part in text.split(","):
        part = part.strip()
        desc = part.startswith("-")
        name = part.lstrip("+-").strip()
        if name not in allowed:
            raise ValueError(f"sortby {name!r}: sortable are {', '.join(sorted(allowed))}")
        out.append((name, desc))
    return out


def parse_properties(text: str | None, allowed: Iterable[str]) -> set[str] | None:
    """``properties`` (a comma list) as the set to keep; ``None`` keeps them all."""
    if text is None:
        return None
    allowed = set(allowed)
    want = {p.strip() for p in text.split(",") if p.strip()}
    unknown = sorted(want - allowed)
    if unknown:
        raise ValueError(
            f"properties {', '.join(map(repr, unknown))}: there are {', '.join(sorted(allowed))}"
        )
    return want


def datetime_filter(value: str, c: Collection, allowed: dict[str, str]) -> Any:
    """The ``datetime`` parameter (an instant, or ``start/end`` with ``..`` or nothing for
    an open end; RFC 3339) as a CQL2 condition on the collection's date property, in
    China Standard Time (the dates are local). ``ValueError`` for a collection without
    time or a value that is not RFC 3339.
    """
    import pandas as pd

    if c.time is None:
        with_time = ", ".join(x.id for x in COLLECTIONS.values() if x.time) or "none"
        raise ValueError(f"{c.id} has no time property; datetime applies to: {with_time}")

    def day(v: str) -> str | None:
        if v in ("", ".."):
            return None
        try:
            t = pd.Timestamp(v)
        except (ValueError, TypeError):
            raise ValueError(
                f"datetime {value!r} is not RFC 3339 (or an interval of two)"
            ) from None
        if t is pd.NaT:
            raise ValueError(f"datetime {value!r} is not RFC 3339")
        if t.tzinfo is not None:
            t = t.tz_convert("Asia/Shanghai")
        return str(t.date().isoformat())

    start, sep, end = value.partition("/")
    a, b = day(start), (day(end) if sep else day(start))
    if sep and a is not None and b is not None and a > b:
        raise ValueError(f"datetime {value!r}: the interval ends before it starts")
    if a is None and b is None:  # "..", "../..": RFC 3339 has no such instant or interval
        raise ValueError(f"datetime {value!r}: an instant, or an interval with one end at least")
    parts = [f"{c.time} >= '{a}'" if a else "", f"{c.time} <= '{b}'" if b else ""]
    text = " AND ".join(p for p in parts if p) or "1=1"
    return parse_filter(text, None, allowed)
