"""Stores: one interface over an embedded GeoPackage file and a PostGIS server.

Both keep the layers of :mod:`gis.schema` in EPSG:4326 under the same names and columns
(geometry column ``geom``; a unique index or primary key on each layer's key).

Every multi-row write is atomic:

- :class:`GeoPackageStore` writes bulk layers into a copy of the file and swaps it in with
  one ``os.replace``; a failure at any point leaves the original byte-for-byte as it was.
  Row edits run as one SQLite transaction; the ``ST_*`` functions that the GeoPackage
  R-tree triggers call are registered as Python functions, so no SpatiaLite is needed and
  the spatial index stays consistent.
- :class:`PostGISStore` writes every layer of a call inside one PostgreSQL transaction,
  loading rows with ``COPY``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import sqlite3
import struct
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import sqlalchemy as sa

import geopandas as gpd
import pyogrio
import shapely
from geoalchemy2 import Geometry

from gis import schema
from gis.errors import LayerNotFoundError, StoreError, ValidationError

BBox = tuple[float, float, float, float]
Where = Mapping[str, Any]
GEOM = "geom"


@dataclass
class Page:
    """One page of a layer: its rows (column → value) with their geometry as GeoJSON text,
    and how many rows match in all.
    """

    name: str
    rows: list[dict[str, Any]]
    geometry: list[str | None]
    matched: int

    def frame(self) -> pd.DataFrame:
        """The page as a (Geo)DataFrame of the layer's schema."""
        spec = schema.layer(self.name)
        df = pd.DataFrame(self.rows, columns=spec.columns)
        if spec.geometry:
            geoms = shapely.from_geojson(np.asarray(self.geometry, dtype=object))
            df = gpd.GeoDataFrame(df, geometry=geoms, crs=schema.STORAGE_CRS)
        return schema.conform(self.name, df)


class Store(ABC):
    """What every store does; see the module docstring for the guarantees."""

    url: str

    @abstractmethod
    def layers(self) -> dict[str, int]:
        """Layer name → row count, for the gridgis layers the store holds."""

    def has(self, name: str) -> bool:
        """Whether the store holds layer ``name``."""
        return name in self.names()

    def names(self) -> set[str]:
        """The gridgis layers the store holds (cheap: no row counts)."""
        return set(self.layers())

    @abstractmethod
    def version(self) -> Any:
        """A value that changes whenever the store's content does (cheap to ask)."""

    @abstractmethod
    def read(
        self,
        name: str,
        *,
        bbox: BBox | None = None,
        where: Where | None = None,
        columns: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Read a layer, optionally only features meeting ``bbox`` and ``where``.

        Parameters
        ----------
        name
            Layer name (see :data:`gis.schema.LAYERS`).
        bbox
            ``(minx, miny, maxx, maxy)`` in EPSG:4326: features intersecting it (spatial index).
        where
            Column → value, or → list of values: rows equal to (one of) them, all conditions
            combined with AND.
        columns
            Attribute columns to return (default all); the key and geometry always come.
        """

    @abstractmethod
    def page(
        self,
        name: str,
        *,
        bbox: BBox | None = None,
        where: Where | None = None,
        limit: int = 10,
        offset: int = 0,
        cql: Any = None,
    ) -> Page:
        """One page of a layer in key order, and how many rows match in all.

        ``bbox`` and ``where`` as in :meth:`read`; ``cql`` a parsed CQL2 filter (a
        pygeofilter AST over the layer's columns and ``geometry``). In PostGIS the filter,
        count and paging run in SQL with the spatial index; the GeoPackage store pages in
        SQL too, except under a CQL2 filter, which it evaluates on the bbox/attribute
        candidates. The rows come as plain values and GeoJSON text, ready to serve.
        """

    @abstractmethod
    def _write(self, frames: Mapping[str, pd.DataFrame]) -> None: ...

    def write(self, layers: Mapping[str, pd.DataFrame]) -> None:
        """Replace whole layers, all of them in one atomic step; validates every frame first."""
        found: list[str] = []
        frames: dict[str, pd.DataFrame] = {}
        for name, df in layers.items():
            try:
                frames[name] = schema.check(name, df)
            except ValidationError as exc:
                found.extend(f"{name}: {p}" for p in exc.problems)
        if found:
            raise ValidationError("store write", found)
        if frames:
            self._write(frames)

    @abstractmethod
    def insert(self, name: str, rows: pd.DataFrame) -> None:
        """Add rows to a layer in one transaction (fails whole on a duplicate key)."""

    @abstractmethod
    def update(self, name: str, key: Any, values: Mapping[str, Any]) -> None:
        """Change columns (and ``geometry``) of the row whose key is ``key``."""

    @abstractmethod
    def delete(self, name: str, keys: Sequence[Any]) -> int:
        """Delete rows by key in one transaction; returns how many went."""

    def _spec(self, name: str) -> schema.Layer:
        return schema.layer(name)

    def _missing(self, name: str) -> LayerNotFoundError:
        return LayerNotFoundError(
            f"the store {self.url} holds no layer {name!r} yet; import or build it first "
            f"(it holds: {', '.join(self.layers()) or 'nothing'})"
        )

    def _check_where(self, spec: schema.Layer, where: Where | None) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        for col, value in (where or {}).items():
            f = spec.field(col)
            values = list(value) if isinstance(value, list | tuple | set | np.ndarray) else [value]
            cast = {"str": str, "int": int, "float": float, "bool": bool}[f.kind]
            try:
                out[col] = [cast(v) for v in values]
            except (TypeError, ValueError):
                raise ValidationError(
                    f"filter on {spec.name}", [f"{col}: {value!r} is not a {f.kind}"]
                ) from None
        return out

    def _check_rows(self, name: str, rows: pd.DataFrame) -> pd.DataFrame:
        return schema.check(name, rows, what=f"rows for {name}")

    def _finish(self, name: str, df: pd.DataFrame, columns: Sequence[str] | None) -> pd.DataFrame:
        df = schema.conform(name, df)
        if columns is not None:
            spec = self._spec(name)
            keep = list(dict.fromkeys([*spec.key, *columns]))
            for c in keep:
                spec.field(c)
            if spec.geometry:
                keep.append("geometry")
            df = df[keep]
        return df


def open_store(spec: str | os.PathLike[str]) -> Store:
    """Open a store from a ``.gpkg`` path or a ``postgresql+psycopg://`` URL."""
    text = os.fspath(spec)
    if text.startswith(("postgresql://", "postgresql+psycopg://", "postgres://")):
        return PostGISStore(text)
    if text.lower().endswith(".gpkg"):
        return GeoPackageStore(text)
    raise StoreError(
        f"cannot open store {text!r}: give a .gpkg path or a postgresql+psycopg:// URL"
    )


# --- GeoPackage -------------------------------------------------------------------------


def _gpkg_envelope(blob: bytes | None) -> tuple[float, float, float, float] | None:
    """Envelope of a GeoPackage geometry blob (header envelope, else the WKB's bounds)."""
    if blob is None or len(blob) < 8:
        return None
    flags = blob[3]
    if flags & 0b10000:  # empty flag
        return None
    order = "<" if flags & 1 else ">"
    env = (flags >> 1) & 0b111
    if env:
        minx, maxx, miny, maxy = struct.unpack_from(order + "4d", blob, 8)
        return minx, miny, maxx, maxy
    geom = shapely.from_wkb(blob[8:])
    if geom is None or geom.is_empty:
        return None
    return tuple(shapely.bounds(geom))


def _gpkg_wkb(blob: bytes) -> bytes:
    """The WKB inside a GeoPackage geometry blob (after the header and its envelope)."""
    env = (blob[3] >> 1) & 0b111
    return blob[8 + {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}.get(env, 0) :]


def _gpkg_blob(geoms: np.ndarray, srs_id: int = 4326) -> list[bytes | None]:
    """Encode shapely geometries as GeoPackage blobs (points without envelope, others xy)."""
    wkb = shapely.to_wkb(geoms, byte_order=1, flavor="iso")
    bounds = shapely.bounds(geoms)
    points = shapely.get_type_id(geoms) == 0
    out: list[bytes | None] = []
    for w, b, is_point in zip(wkb, bounds, points, strict=True):
        if w is None:
            out.append(None)
        elif is_point:
            out.append(b"GP\x00\x01" + struct.pack("<i", srs_id) + w)
        else:
            out.append(b"GP\x00\x03" + struct.pack("<i4d", srs_id, b[0], b[2], b[1], b[3]) + w)
    return out


def _env_fn(i: int) -> Any:
    def fn(blob: bytes | None) -> float | None:
        env = _gpkg_envelope(blob)
        return None if env is None else env[i]

    return fn


def _st_is_empty(blob: bytes | None) -> int | None:
    return None if blob is None else int(_gpkg_envelope(blob) is None)


def _register_gpkg_functions(conn: sqlite3.Connection) -> None:
    conn.create_function("ST_IsEmpty", 1, _st_is_empty, deterministic=True)
    for i, fname in enumerate(("ST_MinX", "ST_MinY", "ST_MaxX", "ST_MaxY")):
        conn.create_function(fname, 1, _env_fn(i), deterministic=True)


def _sql_literal(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


class GeoPackageStore(Store):
    """The embedded store: one ``.gpkg`` file (opens in QGIS as it is)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.url = str(self.path)
        self._engine: sa.Engine | None = None

    def __repr__(self) -> str:
        return f"GeoPackageStore({self.url!r})"

    @property
    def engine(self) -> sa.Engine:
        """SQLAlchemy engine on the file, with the R-tree trigger functions registered."""
        if self._engine is None:
            engine = sa.create_engine(f"sqlite:///{self.path}", poolclass=sa.pool.NullPool)
            sa.event.listen(engine, "connect", lambda c, _r: _register_gpkg_functions(c))
            self._engine = engine
        return self._engine

    def names(self) -> set[str]:
        """The gridgis layers in the file (from ``gpkg_contents``)."""
        if not self.path.exists():
            return set()
        with contextlib.closing(sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)) as con:
            found = {r[0] for r in con.execute("SELECT table_name FROM gpkg_contents")}
        return found & set(schema.LAYERS)

    def version(self) -> Any:
        """The file's modification time (every write replaces or changes the file)."""
        return self.path.stat().st_mtime_ns if self.path.exists() else None

    def layers(self) -> dict[str, int]:
        """Layer name → row count."""
        if not self.path.exists():
            return {}
        with contextlib.closing(sqlite3.connect(self.path)) as con:
            names = [r[0] for r in con.execute("SELECT table_name FROM gpkg_contents")]
            return {
                n: con.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0]
                for n in schema.LAYERS
                if n in names
            }

    def read(
        self,
        name: str,
        *,
        bbox: BBox | None = None,
        where: Where | None = None,
        columns: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Read a layer through pyogrio (bbox via the GeoPackage R-tree)."""
        spec = self._spec(name)
        if not self.has(name):
            raise self._missing(name)
        conds = self._check_where(spec, where)
        sql = " AND ".join(
            f'"{c}" IN ({", ".join(_sql_literal(v) for v in vs)})' for c, vs in conds.items()
        )
        df = pyogrio.read_dataframe(
            self.path,
            layer=name,
            bbox=tuple(bbox) if bbox is not None and spec.geometry else None,
            where=sql or None,
            read_geometry=spec.geometry is not None,
            use_arrow=False,
        )
        return self._finish(name, df, columns)

    def page(
        self,
        name: str,
        *,
        bbox: BBox | None = None,
        where: Where | None = None,
        limit: int = 10,
        offset: int = 0,
        cql: Any = None,
    ) -> Page:
        """Filter and page in SQLite (bbox: the R-tree, then the exact test on the
        candidates only); then read the page's rows by fid.
        """
        spec = self._spec(name)
        if not self.has(name):
            raise self._missing(name)
        if cql is not None:
            return self._page_cql(name, bbox, where, limit, offset, cql)
        conds = self._check_where(spec, where)
        sql = [f'"{c}" IN ({", ".join("?" * len(vs))})' for c, vs in conds.items()]
        params: list[Any] = [v for vs in conds.values() for v in vs]
        order = ", ".join(f'"{k}"' for k in spec.key)
        cols = ", ".join(f'"{c}"' for c in spec.columns)
        uri = f"file:{self.path}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as con:
            if bbox is not None and spec.geometry:
                x0, y0, x1, y1 = (float(v) for v in bbox)
                sql.append(
                    f'fid IN (SELECT id FROM "rtree_{name}_{GEOM}" '
                    "WHERE minx <= ? AND maxx >= ? AND miny <= ? AND maxy >= ?)"
                )
                params += [x1, x0, y1, y0]
                cond = " AND ".join(sql)
                rows = con.execute(
                    f'SELECT fid, "{GEOM}" FROM "{name}" WHERE {cond} ORDER BY {order}', params
                ).fetchall()
                geoms = shapely.from_wkb([_gpkg_wkb(r[1]) for r in rows])
                hit = shapely.intersects(geoms, shapely.box(x0, y0, x1, y1))
                fids = [r[0] for r, h in zip(rows, hit, strict=True) if h]
                matched, fids = len(fids), fids[offset : offset + limit]
            else:
                cond = " AND ".join(sql) or "1"
                cur = con.execute(f'SELECT count(*) FROM "{name}" WHERE {cond}', params)
                matched = int(cur.fetchone()[0])
                fids = [
                    r[0]
                    for r in con.execute(
                        f'SELECT fid FROM "{name}" WHERE {cond} ORDER BY {order} LIMIT ? OFFSET ?',
                        [*params, int(limit), int(offset)],
                    )
                ]
            got: dict[int, tuple] = {}
            if fids:
                geom = f', "{GEOM}"' if spec.geometry else ""
                marks = ", ".join("?" * len(fids))
                for r in con.execute(
                    f'SELECT fid, {cols}{geom} FROM "{name}" WHERE fid IN ({marks})', fids
                ):
                    got[r[0]] = r[1:]
        bools = [i for i, f in enumerate(spec.fields) if f.kind == "bool"]
        rows_out, geometry = [], []
        for fid in fids:
            r = list(got[fid])
            for i in bools:
                r[i] = None if r[i] is None else bool(r[i])
            rows_out.append(dict(zip(spec.columns, r[: len(spec.columns)], strict=True)))
            if spec.geometry:
                blob = r[len(spec.columns)]
                geometry.append(
                    None if blob is None else shapely.to_geojson(shapely.from_wkb(_gpkg_wkb(blob)))
                )
        return Page(name, rows_out, geometry if spec.geometry else [None] * len(fids), matched)

    def _page_cql(
        self, name: str, bbox: BBox | None, where: Where | None, limit: int, offset: int, cql: Any
    ) -> Page:
        from pygeofilter.backends.geopandas.evaluate import to_filter

        spec = self._spec(name)
        df = self.read(name, bbox=bbox, where=where)
        if len(df):
            fields = {c: c for c in spec.columns} | {"geometry": "geometry"}
            df = df[np.asarray(to_filter(df, cql, fields), dtype=bool)]
        df = df.sort_values(list(spec.key))
        matched, df = len(df), df.iloc[offset : offset + limit]
        rows = df[spec.columns].astype(object).where(df[spec.columns].notna(), None)
        geometry: list[str | None] = (
            [None if g is None else str(shapely.to_geojson(g)) for g in df.geometry.values]
            if spec.geometry
            else [None] * len(df)
        )
        return Page(name, rows.to_dict("records"), geometry, matched)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """One writer at a time on this file, across threads and processes.

        A whole-layer write copies the file and swaps the copy in; a row insert that
        committed in between would be lost with the old file, and one whose connection
        was open on the old file fails with "attempt to write a readonly database". So
        both take an exclusive ``flock`` on a lock file beside the GeoPackage (not on the
        GeoPackage itself, whose inode the swap replaces). Readers need no lock: they see
        the old file or the new one, whole.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(f".{self.path.name}.lock"), "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield  # closing the file releases the lock

    def _write(self, frames: Mapping[str, pd.DataFrame]) -> None:
        with self._writing():
            self._write_locked(frames)

    def _write_locked(self, frames: Mapping[str, pd.DataFrame]) -> None:
        tmp = self.path.with_name(f".{self.path.stem}.{uuid.uuid4().hex[:8]}.tmp.gpkg")
        try:
            if self.path.exists():
                shutil.copy2(self.path, tmp)
            for name, df in frames.items():
                spec = self._spec(name)
                opts: dict[str, Any] = {}
                if spec.geometry:
                    opts["GEOMETRY_NAME"] = GEOM
                    opts["geometry_type"] = spec.geometry
                pyogrio.write_dataframe(df, tmp, layer=name, driver="GPKG", **opts)
            with contextlib.closing(sqlite3.connect(tmp)) as con, con:
                for name in frames:
                    key = ", ".join(f'"{k}"' for k in self._spec(name).key)
                    con.execute(
                        f'CREATE UNIQUE INDEX IF NOT EXISTS "ux_{name}_key" ON "{name}" ({key})'
                    )
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)

    @contextlib.contextmanager
    def _tx(self, name: str) -> Iterator[sa.Connection]:
        with self._writing():
            if not self.has(name):
                raise self._missing(name)
            with self.engine.begin() as conn:
                yield conn

    def _row_params(self, spec: schema.Layer, df: pd.DataFrame) -> list[dict[str, Any]]:
        records = df[spec.columns].astype(object).where(df[spec.columns].notna(), None)
        params = records.to_dict("records")
        if spec.geometry:
            for p, blob in zip(params, _gpkg_blob(df.geometry.values), strict=True):
                p[GEOM] = blob
        return params

    def insert(self, name: str, rows: pd.DataFrame) -> None:
        """Insert rows in one SQLite transaction (R-tree kept by its triggers)."""
        spec = self._spec(name)
        rows = self._check_rows(name, rows)
        cols = spec.columns + ([GEOM] if spec.geometry else [])
        stmt = sa.text(
            f'INSERT INTO "{name}" ({", ".join(f"{chr(34)}{c}{chr(34)}" for c in cols)}) '
            f"VALUES ({', '.join(':' + c for c in cols)})"
        )
        try:
            with self._tx(name) as conn:
                conn.execute(stmt, self._row_params(spec, rows))
        except sa.exc.IntegrityError as exc:
            raise ValidationError(f"rows for {name}", [f"duplicate key: {exc.orig}"]) from None

    def update(self, name: str, key: Any, values: Mapping[str, Any]) -> None:
        """Update one row by key."""
        spec = self._spec(name)
        sets, params = self._update_params(spec, values)
        params["_key"] = key
        with self._tx(name) as conn:
            n = conn.execute(
                sa.text(f'UPDATE "{name}" SET {sets} WHERE "{spec.key[0]}" = :_key'), params
            ).rowcount
        if n == 0:
            raise LayerNotFoundError(f"{name} has no row with {spec.key[0]} = {key!r}")

    def _update_params(
        self, spec: schema.Layer, values: Mapping[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        params: dict[str, Any] = {}
        parts = []
        for col, value in values.items():
            if col == "geometry" and spec.geometry:
                params[GEOM] = _gpkg_blob(np.array([value], dtype=object))[0]
                parts.append(f'"{GEOM}" = :{GEOM}')
            else:
                spec.field(col)
                params[col] = value
                parts.append(f'"{col}" = :{col}')
        if not parts:
            raise ValidationError(f"update of {spec.name}", ["no columns to update"])
        return ", ".join(parts), params

    def delete(self, name: str, keys: Sequence[Any]) -> int:
        """Delete rows by key."""
        spec = self._spec(name)
        with self._tx(name) as conn:
            stmt = sa.text(f'DELETE FROM "{name}" WHERE "{spec.key[0]}" IN :keys').bindparams(
                sa.bindparam("keys", expanding=True)
            )
            return conn.execute(stmt, {"keys": list(keys)}).rowcount


# --- PostGIS ------------------------------------------------------------------------------

_SA_TYPES: dict[str, Any] = {
    "str": sa.Text,
    "int": sa.BigInteger,
    "float": sa.Float(53),
    "bool": sa.Boolean,
}


# one row counting the writes, so readers (the HTTP service's caches) can tell cheaply
# whether anything changed; created with the store, bumped inside every write transaction
_VERSION_TABLE = (
    sa.text("CREATE TABLE IF NOT EXISTS gridgis_version (v bigint NOT NULL)"),
    sa.text(
        "INSERT INTO gridgis_version SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM gridgis_version)"
    ),
)
_BUMP = sa.text("UPDATE gridgis_version SET v = v + 1")


def _table(spec: schema.Layer, metadata: sa.MetaData) -> sa.Table:
    cols: list[Any] = [
        sa.Column(f.name, _SA_TYPES[f.kind], nullable=f.nullable) for f in spec.fields
    ]
    if spec.geometry:
        cols.append(sa.Column(GEOM, Geometry(spec.geometry, srid=4326, spatial_index=True)))
    return sa.Table(spec.name, metadata, *cols, sa.PrimaryKeyConstraint(*spec.key))


class PostGISStore(Store):
    """The server store: PostgreSQL with PostGIS (GiST indexes, one transaction per write)."""

    def __init__(self, url: str) -> None:
        if url.startswith(("postgresql://", "postgres://")):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        self.url = sa.make_url(url).render_as_string(hide_password=True)
        # a pool as large as the HTTP service's worker threads: an overflow connection is
        # opened and closed per request otherwise (a new PostgreSQL backend each time)
        # no pre-ping: it is a round trip per request; connections are recycled instead
        self.engine = sa.create_engine(url, pool_size=20, max_overflow=20, pool_recycle=1800)
        self.metadata = sa.MetaData()
        self.tables = {n: _table(s, self.metadata) for n, s in schema.LAYERS.items()}
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS postgis"))
                for stmt in _VERSION_TABLE:
                    conn.execute(stmt)
        except sa.exc.OperationalError as exc:
            raise StoreError(f"cannot connect to {self.url}: {exc.orig}") from None
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"{self.url} has no PostGIS and it cannot be enabled: {exc}") from None

    def __repr__(self) -> str:
        return f"PostGISStore({self.url!r})"

    def names(self) -> set[str]:
        """The gridgis tables in the database's search path."""
        with self.engine.connect() as conn:
            found = conn.execute(
                sa.text(
                    "SELECT c.relname FROM pg_class c WHERE c.relkind IN ('r', 'p') "
                    "AND pg_table_is_visible(c.oid) AND c.relname = ANY(:names)"
                ),
                {"names": list(schema.LAYERS)},
            )
            return {r[0] for r in found}

    def version(self) -> Any:
        """A counter every write bumps in its own transaction."""
        with self.engine.connect() as conn:
            return conn.execute(sa.text("SELECT v FROM gridgis_version")).scalar_one()

    def layers(self) -> dict[str, int]:
        """Layer name → row count."""
        names = self.names()
        with self.engine.connect() as conn:
            return {
                n: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                for n, t in self.tables.items()
                if n in names
            }

    def read(
        self,
        name: str,
        *,
        bbox: BBox | None = None,
        where: Where | None = None,
        columns: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Read a layer with SQL-side filters (bbox through the GiST index)."""
        spec = self._spec(name)
        if not self.has(name):
            raise self._missing(name)
        t = self.tables[name]
        sel: list[Any] = [t.c[c] for c in spec.columns]
        if spec.geometry:
            sel.append(sa.func.ST_AsBinary(t.c[GEOM]).label(GEOM))
        q = sa.select(*sel)
        if bbox is not None and spec.geometry:
            env = sa.func.ST_MakeEnvelope(*[float(v) for v in bbox], 4326)
            q = q.where(t.c[GEOM].op("&&")(env), sa.func.ST_Intersects(t.c[GEOM], env))
        for col, values in self._check_where(spec, where).items():
            q = q.where(t.c[col].in_(values))
        with self.engine.connect() as conn:
            rows = conn.execute(q).fetchall()
        df = pd.DataFrame(rows, columns=[*spec.columns, *([GEOM] if spec.geometry else [])])
        if spec.geometry:
            geoms = shapely.from_wkb(
                np.array([bytes(b) if b is not None else None for b in df[GEOM]], dtype=object)
            )
            df = gpd.GeoDataFrame(df.drop(columns=GEOM), geometry=geoms, crs=schema.STORAGE_CRS)
        return self._finish(name, df, columns)

    def page(
        self,
        name: str,
        *,
        bbox: BBox | None = None,
        where: Where | None = None,
        limit: int = 10,
        offset: int = 0,
        cql: Any = None,
    ) -> Page:
        """Filter, count and page in PostgreSQL (bbox through the GiST index); the GeoJSON
        is written by PostGIS and the count comes with the page (a window over the filter).
        """
        spec = self._spec(name)
        t = self.tables[name]
        conds: list[Any] = []
        if bbox is not None and spec.geometry:
            env = sa.func.ST_MakeEnvelope(*[float(v) for v in bbox], 4326)
            conds += [t.c[GEOM].op("&&")(env), sa.func.ST_Intersects(t.c[GEOM], env)]
        for col, values in self._check_where(spec, where).items():
            conds.append(t.c[col].in_(values))
        if cql is not None:
            from pygeofilter.backends.sqlalchemy import to_filter

            fields = {c: t.c[c] for c in spec.columns}
            if spec.geometry:
                fields["geometry"] = t.c[GEOM]
            conds.append(to_filter(cql, fields))
        sel: list[Any] = [t.c[c] for c in spec.columns]
        if spec.geometry:
            sel.append(sa.func.ST_AsGeoJSON(t.c[GEOM], 9).label("_g"))
        sel.append(sa.func.count().over().label("_n"))
        q = sa.select(*sel).where(*conds).order_by(*[t.c[k] for k in spec.key])
        q = q.limit(int(limit)).offset(int(offset))
        with self.engine.connect() as conn:
            try:
                rows = conn.execute(q).fetchall()
            except sa.exc.ProgrammingError as exc:  # no such table (asked only on failure)
                if name not in self.names():
                    raise self._missing(name) from None
                raise StoreError(f"reading {name} failed: {exc.orig}") from None
            if rows:
                matched = int(rows[0][-1])
            else:
                n = sa.select(sa.func.count()).select_from(t).where(*conds)
                matched = int(conn.execute(n).scalar_one())
        k = len(spec.columns)
        return Page(
            name,
            [dict(zip(spec.columns, r[:k], strict=True)) for r in rows],
            [r[k] for r in rows] if spec.geometry else [None] * len(rows),
            matched,
        )

    def _write(self, frames: Mapping[str, pd.DataFrame]) -> None:
        with self.engine.begin() as conn:
            conn.execute(_BUMP)
            for name, df in frames.items():
                t = self.tables[name]
                t.drop(conn, checkfirst=True)
                t.create(conn)
                self._copy(conn, self._spec(name), df)

    def _copy(self, conn: sa.Connection, spec: schema.Layer, df: pd.DataFrame) -> None:
        cols = spec.columns + ([GEOM] if spec.geometry else [])
        data = [df[c].astype(object).where(df[c].notna(), None).tolist() for c in spec.columns]
        if spec.geometry:
            geoms = shapely.set_srid(df.geometry.values, 4326)
            data.append(shapely.to_wkb(geoms, hex=True, include_srid=True).tolist())
        raw = conn.connection.driver_connection
        quoted = ", ".join(f'"{c}"' for c in cols)
        with raw.cursor() as cur, cur.copy(f'COPY "{spec.name}" ({quoted}) FROM STDIN') as cp:  # type: ignore[union-attr]
            for row in zip(*data, strict=True):
                cp.write_row(row)

    def insert(self, name: str, rows: pd.DataFrame) -> None:
        """Insert rows in one transaction."""
        spec = self._spec(name)
        rows = self._check_rows(name, rows)
        if not self.has(name):
            raise self._missing(name)
        try:
            with self.engine.begin() as conn:
                conn.execute(_BUMP)
                self._copy(conn, spec, rows)
        except (sa.exc.IntegrityError, psycopg.errors.IntegrityError) as exc:
            orig = getattr(exc, "orig", exc)
            msg = getattr(getattr(orig, "diag", None), "message_detail", None) or "a key exists"
            raise ValidationError(f"rows for {name}", [f"duplicate key: {msg}"]) from None

    def update(self, name: str, key: Any, values: Mapping[str, Any]) -> None:
        """Update one row by key."""
        spec = self._spec(name)
        t = self.tables[name]
        params: dict[str, Any] = {}
        for col, value in values.items():
            if col == "geometry" and spec.geometry:
                params[GEOM] = sa.func.ST_GeomFromWKB(shapely.to_wkb(value), 4326)
            else:
                spec.field(col)
                params[col] = value
        if not params:
            raise ValidationError(f"update of {name}", ["no columns to update"])
        if not self.has(name):
            raise self._missing(name)
        with self.engine.begin() as conn:
            conn.execute(_BUMP)
            n = conn.execute(sa.update(t).where(t.c[spec.key[0]] == key).values(**params)).rowcount
        if n == 0:
            raise LayerNotFoundError(f"{name} has no row with {spec.key[0]} = {key!r}")

    def delete(self, name: str, keys: Sequence[Any]) -> int:
        """Delete rows by key."""
        spec = self._spec(name)
        t = self.tables[name]
        if not self.has(name):
            raise self._missing(name)
        with self.engine.begin() as conn:
            conn.execute(_BUMP)
            return conn.execute(sa.delete(t).where(t.c[spec.key[0]].in_(list(keys)))).rowcount
