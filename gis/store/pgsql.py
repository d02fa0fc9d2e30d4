"""SQL text of the PostGIS store's row path and tiles (psycopg placeholders)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gis import schema
from gis.store.base import GEOM, Where, check_where

_LOCK_RAW = "SELECT pg_advisory_xact_lock{mode}(hashtext(current_schema() || '.' || %s))"
#: the store's tables: those of its own schema (the first of the search path), never a
#: table of the same name further down it (``…,public``), which a write must not touch
_NAMES_RAW = (
    "SELECT c.relname FROM pg_class c WHERE c.relkind IN ('r', 'p') "
    "AND c.relnamespace = current_schema()::regnamespace AND c.relname = ANY(%s)"
)
_BUMP_RAW = (
    "INSERT INTO gridgis_versions (layer, v) SELECT unnest(CAST(%s AS text[])), 1 "
    "ON CONFLICT (layer) DO UPDATE SET v = gridgis_versions.v + 1, at = now()"
)


#: the rate limit's buckets shared by server processes (Store.count_requests): each
#: refilled at the rate since its last visit, at most the burst, less what was taken
COUNT_REQUESTS = (
    "INSERT INTO gridgis_buckets AS r (who, tokens, at) "
    "SELECT u.w, %(burst)s - u.n, clock_timestamp() "
    "FROM unnest(CAST(%(who)s AS text[]), CAST(%(n)s AS bigint[])) AS u(w, n) "
    "ON CONFLICT (who) DO UPDATE SET tokens = LEAST(%(burst)s, r.tokens + "
    "extract(epoch FROM clock_timestamp() - r.at) * %(rate)s) - (%(burst)s - EXCLUDED.tokens), "
    "at = clock_timestamp() RETURNING who, tokens"
)


def _bare(sql: str) -> bool:
    """A ``SELECT`` of functions only (no table): such statements can be one."""
    return sql.startswith("SELECT ") and " FROM " not in sql


def _conditions(
    spec: schema.Layer,
    where: Where | None,
    below: Mapping[str, Any] | None,
    above: Mapping[str, Any] | None,
) -> tuple[list[str], list[Any]]:
    """SQL conditions (psycopg placeholders) for ``where`` and the bounds."""
    conds: list[str] = []
    params: list[Any] = []
    for col, values in check_where(spec, where).items():
        if len(values) == 1:
            conds.append(f'"{col}" = %s')
            params.append(_py(values[0]))
        elif not values:
            conds.append("false")
        else:
            conds.append(f'"{col}" = ANY(%s)')
            params.append([_py(v) for v in values])
    for op, bounds in (("<", below), (">", above)):
        for col, value in (bounds or {}).items():
            spec.field(col)
            conds.append(f'"{col}" {op} %s')
            params.append(_py(value))
    return conds, params


def _py(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


def mvt(
    name: str,
    cols: Sequence[str],
    conds: Sequence[str],
    sums: Sequence[str] | None = None,
    extra_key: str | None = None,
) -> str:
    """The statement of one vector tile (parameters: z, x, y, [the extra properties as
    one JSON object by key,] the conditions', the layer name): candidates through the GiST
    index in the tile and its buffer, ``ST_AsMVTGeom`` (clip, simplify, quantise),
    ``ST_AsMVT``, which makes the keys of a ``jsonb`` column properties. ``sums``: points
    aggregated per cell and community (:data:`gis.tiles.AGGREGATED`), as the Python
    encoder does.
    """
    from gis import tiles

    if sums is not None:
        return _mvt_cells(name, cols, conds, sums)

    quoted = ", ".join(f't."{c}"' for c in cols)
    sql = (
        "WITH b AS (SELECT ST_TileEnvelope(%s, %s, %s) AS env), "
        f"q AS (SELECT {quoted}{', ' if cols else ''}"
        + (f'(%s::jsonb) -> t."{extra_key}"::text AS gg_extra, ' if extra_key else "")
        + f'ST_AsMVTGeom(ST_Transform(t."{GEOM}", 3857), b.env, {tiles.EXTENT}, {tiles.BUFFER}, true) AS g '
        f'FROM "{name}" t, b WHERE t."{GEOM}" && ST_Transform(ST_Expand(b.env, '
        f"(ST_XMax(b.env) - ST_XMin(b.env)) * {tiles.BUFFER / tiles.EXTENT}), 4326)"
        + "".join(f" AND t.{c}" for c in conds)
        + f") SELECT ST_AsMVT(q, %s, {tiles.EXTENT}, 'g') FROM q WHERE g IS NOT NULL"
    )  # fmt: skip
    return sql


def page(
    spec: schema.Layer,
    bbox: tuple[float, float, float, float] | None,
    where: Where | None,
    sortby: Sequence[tuple[str, bool]],
    limit: int,
    offset: int,
) -> tuple[str, list[Any]]:
    """The statement of an items page without a CQL2 filter (the common request): the
    columns, the GeoJSON written by PostGIS and the count of all matches (a window), the
    bbox through the GiST index. Built as text — SQLAlchemy's statement building was a
    third of an items request's Python time.
    """
    conds, params = _conditions(spec, where, None, None)
    if bbox is not None and spec.geometry:
        env = "ST_MakeEnvelope(%s, %s, %s, %s, 4326)"
        conds = [f'"{GEOM}" && {env}', f'ST_Intersects("{GEOM}", {env})', *conds]
        params = [*(float(v) for v in bbox), *(float(v) for v in bbox), *params]
    cols = [f'"{c}"' for c in spec.columns]
    if spec.geometry:
        cols.append(f'ST_AsGeoJSON("{GEOM}", 9)')
    order = [f'"{spec.field(c).name}"{" DESC" if d else ""}' for c, d in sortby]
    order += [f'"{k}"' for k in spec.key]
    sql = (
        f'SELECT {", ".join(cols)}, count(*) OVER () FROM "{spec.name}"'
        + (f" WHERE {' AND '.join(conds)}" if conds else "")
        + f" ORDER BY {', '.join(order)} LIMIT %s OFFSET %s"
    )
    return sql, [*params, int(limit), int(offset)]


def _mvt_cells(name: str, cols: Sequence[str], conds: Sequence[str], sums: Sequence[str]) -> str:
    """Points aggregated per cell of the tile's longitudes and latitudes and community
    (as :func:`gis.tiles.encode_cells`): only the cells' centres are projected, not every
    point (600,000 buildings at city zoom).
    """
    from gis import tiles

    group = f'"{tiles.GROUP}"' if tiles.GROUP in cols else "NULL::text"
    summed = "".join(f', sum("{c}")::bigint AS "{c}"' for c in sums)
    f = tiles.CELL / tiles.EXTENT
    return (
        "WITH e AS (SELECT ST_TileEnvelope(%s, %s, %s) AS env), "
        "b AS (SELECT env, ST_Transform(env, 4326) AS t4, ST_Transform(ST_Expand(env, "
        f"(ST_XMax(env) - ST_XMin(env)) * {tiles.BUFFER / tiles.EXTENT}), 4326) AS b4 FROM e), "
        f"c AS (SELECT env, b4, ST_XMin(t4) AS w, ST_YMin(t4) AS s, (ST_XMax(t4) - ST_XMin(t4)) * {f} AS sx, "
        f"(ST_YMax(t4) - ST_YMin(t4)) * {f} AS sy, ST_XMin(b4) AS bx0, ST_YMin(b4) AS by0, "
        "ST_XMax(b4) AS bx1, ST_YMax(b4) AS by1 FROM b), "
        f'p AS (SELECT t.*, ST_X(t."{GEOM}") AS lon, ST_Y(t."{GEOM}") AS lat FROM "{name}" t, c '
        f'WHERE t."{GEOM}" && c.b4' + "".join(f" AND t.{x}" for x in conds) + "), "
        f'q AS (SELECT {group} AS "{tiles.GROUP}", count(*)::int AS n{summed}, '
        "ST_AsMVTGeom(ST_Transform(ST_SetSRID(ST_MakePoint(avg(p.lon), avg(p.lat)), 4326), 3857), "
        f"(SELECT env FROM c), {tiles.EXTENT}, {tiles.BUFFER}, true) AS g FROM p, c "
        # exactly the tile and its buffer (an index's boxes are single precision)
        "WHERE p.lon BETWEEN c.bx0 AND c.bx1 AND p.lat BETWEEN c.by0 AND c.by1 "
        "GROUP BY 1, floor((p.lon - c.w) / c.sx), floor((p.lat - c.s) / c.sy)) "
        f"SELECT ST_AsMVT(q, %s, {tiles.EXTENT}, 'g') FROM q WHERE g IS NOT NULL"
    )


def cql_page(
    t: Any,
    spec: schema.Layer,
    bbox: tuple[float, float, float, float] | None,
    where: dict[str, list[Any]],
    cql: Any,
    sortby: Sequence[tuple[str, bool]],
    limit: int,
    offset: int,
) -> tuple[Any, list[Any]]:
    """The statement of an items page with a CQL2 filter (pygeofilter's SQLAlchemy
    backend, on table ``t``) and its conditions (for the count when the page is empty).
    """
    import sqlalchemy as sa
    from pygeofilter.backends.sqlalchemy import to_filter

    conds: list[Any] = []
    if bbox is not None and spec.geometry:
        env = sa.func.ST_MakeEnvelope(*[float(v) for v in bbox], 4326)
        conds += [t.c[GEOM].op("&&")(env), sa.func.ST_Intersects(t.c[GEOM], env)]
    for col, values in where.items():
        conds.append(t.c[col].in_(values))
    if cql is not None and cql is not True:
        fields = {c: t.c[c] for c in spec.columns}
        if spec.geometry:
            fields["geometry"] = t.c[GEOM]
        conds.append(to_filter(cql, fields))
    sel: list[Any] = [t.c[c] for c in spec.columns]
    if spec.geometry:
        sel.append(sa.func.ST_AsGeoJSON(t.c[GEOM], 9).label("_g"))
    sel.append(sa.func.count().over().label("_n"))
    order = [t.c[spec.field(c).name].desc() if d else t.c[c] for c, d in sortby]
    q = sa.select(*sel).where(*conds).order_by(*order, *[t.c[k] for k in spec.key])
    return q.limit(int(limit)).offset(int(offset)), conds
