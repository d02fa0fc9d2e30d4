"""The server store: PostgreSQL with PostGIS.

- Every write is one PostgreSQL transaction with its audit row.
- Locks: a write transaction takes an exclusive advisory lock per layer it names
  (``lock=``) at its start, held to the commit, so a workflow's reads stay true until it
  writes; a row edit takes the layer's lock shared (edits of different rows run side by
  side; PostgreSQL's row locks order edits of one row) and waits for a workflow holding it
  exclusively. ``wait`` bounds the wait (``lock_timeout``), then :class:`StoreBusyError`.
- A whole layer is rebuilt aside (a new table loaded with ``COPY`` and indexed) and swapped
  in by a drop and a rename at the end, so readers keep reading the old table until the
  commit instead of waiting for the whole load.
- Connections are checked before use (a pool that outlived a database restart recovers by
  itself); a database that cannot be reached raises :class:`StoreUnavailableError`.
"""

from __future__ import annotations

import contextlib
import functools
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import psycopg
import sqlalchemy as sa

import geopandas as gpd
import shapely
from geoalchemy2 import Geometry

from gis import schema
from gis.errors import (
    LayerNotFoundError,
    StoreBusyError,
    StoreError,
    StoreUnavailableError,
    ValidationError,
)
from gis.store.base import (
    DEFAULT_WAIT,
    GEOM,
    BBox,
    Page,
    Store,
    Tx,
    Where,
    check_where,
    finish,
    update_values,
)

_SA_TYPES: dict[str, Any] = {
    "str": sa.Text,
    "int": sa.BigInteger,
    "float": sa.Float(53),
    "bool": sa.Boolean,
}
_VERSIONS = sa.text(
    "CREATE TABLE IF NOT EXISTS gridgis_versions (layer text PRIMARY KEY, v bigint NOT NULL)"
)
_BUMP = sa.text(
    "INSERT INTO gridgis_versions (layer, v) SELECT unnest(CAST(:names AS text[])), 1 "
    "ON CONFLICT (layer) DO UPDATE SET v = gridgis_versions.v + 1"
)
_LOCK = "SELECT pg_advisory_xact_lock{mode}(hashtext(current_schema() || '.' || :n))"
T = TypeVar("T")


def _table(spec: schema.Layer, metadata: sa.MetaData, name: str | None = None) -> sa.Table:
    cols: list[Any] = [
        sa.Column(f.name, _SA_TYPES[f.kind], nullable=f.nullable) for f in spec.fields
    ]
    if spec.geometry:
        cols.append(sa.Column(GEOM, Geometry(spec.geometry, srid=4326, spatial_index=False)))
    table = name or spec.name
    return sa.Table(
        table, metadata, *cols, sa.PrimaryKeyConstraint(*spec.key, name=f"{table}_pkey")
    )


def _unavailable(url: str, exc: BaseException) -> StoreUnavailableError:
    return StoreUnavailableError(f"the database of {url} cannot be reached ({type(exc).__name__})")


def _guard(fn: Callable[..., T]) -> Callable[..., T]:
    """A read that meets a connection the database dropped (a restart) runs once more on a
    fresh one (SQLAlchemy has discarded the whole pool by then); a database that cannot be
    reached raises :class:`StoreUnavailableError`.
    """

    @functools.wraps(fn)
    def inner(self: PostGISStore, *args: Any, **kw: Any) -> T:
        for attempt in (1, 2):
            try:
                return fn(self, *args, **kw)
            except sa.exc.DBAPIError as exc:
                if attempt == 1 and exc.connection_invalidated:
                    continue
                if exc.connection_invalidated or isinstance(exc, sa.exc.OperationalError):
                    raise _unavailable(self.url, exc) from None
                raise
        raise AssertionError("unreachable")

    return inner


#: a pooled connection idle for longer than this is checked before use (under load
#: connections come back within milliseconds and are used as they are)
IDLE_CHECK_S = 2.0


def _check_idle_connections(engine: sa.Engine) -> None:
    """Check a pooled connection before use when it has been idle: a database restart or a
    dropped link is found before the request's query, and SQLAlchemy takes a fresh one.
    """

    @sa.event.listens_for(engine, "checkin")
    def checkin(dbapi_con: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def checkout(dbapi_con: Any, record: Any, proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < IDLE_CHECK_S:
            return
        try:
            with dbapi_con.cursor() as cur:
                cur.execute("SELECT 1")
        except psycopg.Error:
            raise sa.exc.DisconnectionError() from None  # the pool retries with a new one


class _PgTx(Tx):
    def __init__(self, store: PostGISStore, conn: sa.Connection, exclusive: set[str]) -> None:
        self.store, self.conn = store, conn
        self.exclusive = set(exclusive)
        self.shared: set[str] = set()
        self.dirty: set[str] = set()
        self.swaps: list[tuple[str, str]] = []
        self._held: set[str] | None = None  # the tables, asked once per transaction

    def names(self) -> set[str]:
        if self._held is None:
            self._held = self.store._names(self.conn)
        return set(self._held)

    def lock(self, name: str, *, shared: bool) -> None:
        if name in self.exclusive or (shared and name in self.shared):
            return
        self.conn.execute(sa.text(_LOCK.format(mode="_shared" if shared else "")), {"n": name})
        (self.shared if shared else self.exclusive).add(name)

    def read(
        self, name: str, *, where: Where | None = None, columns: Sequence[str] | None = None
    ) -> pd.DataFrame:
        self._pending(name)
        if not self.has(name):
            raise self.store._missing(name, self.names())
        return self.store._read(self.conn, name, None, where, columns)

    def _replace(self, name: str, df: pd.DataFrame) -> None:
        self.lock(name, shared=False)
        spec = schema.layer(name)
        aside = f"{name}__{uuid.uuid4().hex[:8]}"
        t = _table(spec, sa.MetaData(), aside)
        t.create(self.conn)
        self.store._copy(self.conn, spec, df, aside)
        if spec.geometry:
            self.conn.execute(
                sa.text(f'CREATE INDEX "{aside}_geom_idx" ON "{aside}" USING gist ("{GEOM}")')
            )
        self.swaps.append((name, aside))
        self.dirty.add(name)

    def swap(self) -> None:
        """Put the layers built aside in place (short locks, just before the commit)."""
        for name, aside in self.swaps:
            self.conn.execute(sa.text(f'DROP TABLE IF EXISTS "{name}"'))
            self.conn.execute(sa.text(f'ALTER TABLE "{aside}" RENAME TO "{name}"'))
        self.swaps = []
        self._held = None

    def _pending(self, name: str) -> None:
        if any(n == name for n, _ in self.swaps):
            self.swap()  # a row edit after a rebuild in the same transaction

    def insert(self, name: str, rows: pd.DataFrame) -> None:
        spec = schema.layer(name)
        rows = schema.check(name, rows, what=f"rows for {name}")
        self._pending(name)
        if self._absent(name):
            self._replace(name, rows)
            return
        self.lock(name, shared=True)
        try:
            self.store._copy(self.conn, spec, rows)
        except (sa.exc.IntegrityError, psycopg.errors.IntegrityError) as exc:
            orig = getattr(exc, "orig", exc)
            msg = getattr(getattr(orig, "diag", None), "message_detail", None) or "a key exists"
            raise ValidationError(f"rows for {name}", [f"duplicate key: {msg}"]) from None
        self.dirty.add(name)

    def rows(
        self,
        name: str,
        where: Where,
        *,
        for_update: bool = False,
        below: Mapping[str, Any] | None = None,
        columns: Sequence[str] | None = None,
        above: Mapping[str, Any] | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        self._pending(name)
        if not self.has(name):
            return []
        spec = schema.layer(name)
        t = self.store.tables[name]
        cols = list(spec.columns)
        if columns is not None:
            cols = [c for c in cols if c in set(columns) | set(spec.key)]
        geometry = bool(spec.geometry) and columns is None
        sel: list[Any] = [t.c[c] for c in cols]
        if geometry:
            sel.append(sa.func.ST_AsBinary(t.c[GEOM]).label(GEOM))
        q = sa.select(*sel)
        for col, values in check_where(spec, where).items():
            q = q.where(t.c[col].in_(values))
        for col, value in (below or {}).items():
            spec.field(col)
            q = q.where(t.c[col] < _python(value))
        for col, value in (above or {}).items():
            spec.field(col)
            q = q.where(t.c[col] > _python(value))
        q = q.order_by(*[t.c[k] for k in spec.key])
        if limit is not None:
            q = q.limit(int(limit))
        if for_update:
            self.lock(name, shared=True)
            q = q.with_for_update()
        out = []
        for r in self.conn.execute(q).fetchall():
            rec = dict(zip(cols, r[: len(cols)], strict=True))
            if geometry:
                b = r[len(cols)]
                rec["geometry"] = shapely.from_wkb(bytes(b)) if b is not None else None
            out.append(rec)
        return out

    def update_many(self, name: str, changes: Sequence[tuple[Any, Mapping[str, Any]]]) -> None:
        if not changes:
            return
        spec = schema.layer(name)
        cols = list(update_values(spec, changes[0][1]))
        self._pending(name)
        if "geometry" in cols or not self.has(name):
            super().update_many(name, changes)
            return
        self.lock(name, shared=True)
        t = self.store.tables[name]
        key = spec.key[0]
        q = (
            sa.update(t)
            .where(t.c[key] == sa.bindparam("_key"))
            .values(**{c: sa.bindparam(f"_{c}") for c in cols})
        )
        params = [
            {"_key": _python(k), **{f"_{c}": _python(v[c]) for c in cols}} for k, v in changes
        ]
        self.conn.execute(q, params)
        self.dirty.add(name)

    def _absent(self, name: str) -> bool:
        """Whether the layer is still to be made; if so this transaction holds its
        exclusive lock, so two writers of a new layer cannot both make it (the second
        would replace the first's committed rows).
        """
        if self.has(name):
            return False
        self.lock(name, shared=False)
        self._held = None  # another writer may have made it while we waited
        return not self.has(name)

    def add(self, name: str, records: Sequence[Mapping[str, Any]]) -> None:
        self._pending(name)
        if self._absent(name):
            super().add(name, records)
            return
        spec = schema.layer(name)
        rows = schema.check_records(name, records)
        self.lock(name, shared=True)
        t = self.store.tables[name]
        values = []
        for r in rows:
            v = {f.name: r[f.name] for f in spec.fields}
            if spec.geometry:
                v[GEOM] = sa.func.ST_GeomFromWKB(shapely.to_wkb(r["geometry"]), 4326)
            values.append(v)
        try:
            if spec.geometry:
                for v in values:  # one statement per row: an SQL function in the values
                    self.conn.execute(sa.insert(t).values(**v))
            else:
                self.conn.execute(sa.insert(t), values)
        except sa.exc.IntegrityError as exc:
            orig = getattr(exc, "orig", exc)
            msg = getattr(getattr(orig, "diag", None), "message_detail", None) or "a key exists"
            raise ValidationError(f"rows for {name}", [f"duplicate key: {msg}"]) from None
        self.dirty.add(name)

    def lock_key(self, key: str) -> None:
        self.conn.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 7))"), {"k": key}
        )

    def take_numbers(self, counter: str, n: int) -> int:
        if self._absent("counters"):
            return super().take_numbers(counter, n)
        self.lock("counters", shared=True)
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        t = self.store.tables["counters"]
        q = pg_insert(t).values(name=counter, value=n)
        q = q.on_conflict_do_update(index_elements=["name"], set_={"value": t.c.value + n})
        value = self.conn.execute(q.returning(t.c.value)).scalar_one()
        self.dirty.add("counters")
        return int(value)

    def update(self, name: str, key: Any, values: Mapping[str, Any]) -> None:
        spec = schema.layer(name)
        vals = update_values(spec, values)
        self._pending(name)
        if not self.has(name):
            raise self.store._missing(name, self.names())
        self.lock(name, shared=True)
        t = self.store.tables[name]
        params: dict[str, Any] = {}
        for col, value in vals.items():
            if col == "geometry":
                params[GEOM] = sa.func.ST_GeomFromWKB(shapely.to_wkb(value), 4326)
            else:
                params[col] = _python(value)
        n = self.conn.execute(
            sa.update(t).where(t.c[spec.key[0]] == _python(key)).values(**params)
        ).rowcount
        if n == 0:
            raise LayerNotFoundError(f"{name} has no row with {spec.key[0]} = {key!r}")
        self.dirty.add(name)

    def delete(self, name: str, keys: Sequence[Any]) -> int:
        spec = schema.layer(name)
        self._pending(name)
        if not self.has(name):
            raise self.store._missing(name, self.names())
        self.lock(name, shared=True)
        t = self.store.tables[name]
        n = self.conn.execute(
            sa.delete(t).where(t.c[spec.key[0]].in_([_python(k) for k in keys]))
        ).rowcount
        self.dirty.add(name)
        return int(n)

    def finish(self) -> None:
        self.swap()
        if self.dirty:
            self.conn.execute(_BUMP, {"names": sorted(self.dirty)})


def _python(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


class PostGISStore(Store):
    """The server store: PostgreSQL with PostGIS (GiST indexes, one transaction per write)."""

    def __init__(self, url: str) -> None:
        if url.startswith(("postgresql://", "postgres://")):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]
        self.url = sa.make_url(url).render_as_string(hide_password=True)
        # a pool as large as the HTTP service's worker threads; an idle connection is
        # checked before use, so a pool that outlived a database restart heals by itself
        self.engine = sa.create_engine(url, pool_size=20, max_overflow=20, pool_recycle=1800)
        _check_idle_connections(self.engine)
        self.metadata = sa.MetaData()
        self.tables = {n: _table(s, self.metadata) for n, s in schema.LAYERS.items()}
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS postgis"))
                conn.execute(_VERSIONS)
        except sa.exc.OperationalError as exc:
            raise StoreError(f"cannot connect to {self.url}: {exc.orig}") from None
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"{self.url} has no PostGIS and it cannot be enabled: {exc}") from None

    def __repr__(self) -> str:
        return f"PostGISStore({self.url!r})"

    def _names(self, conn: sa.Connection) -> set[str]:
        found = conn.execute(
            sa.text(
                "SELECT c.relname FROM pg_class c WHERE c.relkind IN ('r', 'p') "
                "AND pg_table_is_visible(c.oid) AND c.relname = ANY(:names)"
            ),
            {"names": list(schema.LAYERS)},
        )
        return {r[0] for r in found}

    @_guard
    def names(self) -> set[str]:
        """The gridgis tables in the database's search path."""
        with self.engine.connect() as conn:
            return self._names(conn)

    @_guard
    def versions(self) -> dict[str, int]:
        """Layer → write counter (table ``gridgis_versions``)."""
        with self.engine.connect() as conn:
            return {
                r[0]: int(r[1])
                for r in conn.execute(sa.text("SELECT layer, v FROM gridgis_versions"))
            }

    @_guard
    def layers(self) -> dict[str, int]:
        """Layer name → row count."""
        with self.engine.connect() as conn:
            names = self._names(conn)
            return {
                n: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                for n, t in self.tables.items()
                if n in names
            }

    def _read(
        self,
        conn: sa.Connection,
        name: str,
        bbox: BBox | None,
        where: Where | None,
        columns: Sequence[str] | None,
    ) -> pd.DataFrame:
        spec = self._spec(name)
        t = self.tables[name]
        sel: list[Any] = [t.c[c] for c in spec.columns]
        if spec.geometry:
            sel.append(sa.func.ST_AsBinary(t.c[GEOM]).label(GEOM))
        q = sa.select(*sel)
        if bbox is not None and spec.geometry:
            env = sa.func.ST_MakeEnvelope(*[float(v) for v in bbox], 4326)
            q = q.where(t.c[GEOM].op("&&")(env), sa.func.ST_Intersects(t.c[GEOM], env))
        for col, values in check_where(spec, where).items():
            q = q.where(t.c[col].in_(values))
        rows = conn.execute(q).fetchall()
        df = pd.DataFrame(rows, columns=[*spec.columns, *([GEOM] if spec.geometry else [])])
        if spec.geometry:
            geoms = shapely.from_wkb(
                np.array([bytes(b) if b is not None else None for b in df[GEOM]], dtype=object)
            )
            df = gpd.GeoDataFrame(df.drop(columns=GEOM), geometry=geoms, crs=schema.STORAGE_CRS)
        return finish(name, df, columns)

    @_guard
    def read(
        self,
        name: str,
        *,
        bbox: BBox | None = None,
        where: Where | None = None,
        columns: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Read a layer with SQL-side filters (bbox through the GiST index)."""
        self._spec(name)
        with self.engine.connect() as conn:
            if name not in self._names(conn):
                raise self._missing(name, self._names(conn))
            return self._read(conn, name, bbox, where, columns)

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Tx]:
        """A repeatable-read, read-only transaction."""
        try:
            with self.engine.connect() as conn:
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
                with conn.begin():
                    conn.execute(sa.text("SET TRANSACTION READ ONLY"))
                    yield _PgTx(self, conn, set())
        except sa.exc.OperationalError as exc:
            raise _unavailable(self.url, exc) from None

    @contextlib.contextmanager
    def transaction(self, *, lock: Iterable[str] = (), wait: float | None = None) -> Iterator[Tx]:
        """One PostgreSQL transaction holding exclusive advisory locks on ``lock``."""
        wait = DEFAULT_WAIT if wait is None else wait
        names = sorted(set(lock))
        for n in names:
            schema.layer(n)
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.text(f"SET LOCAL lock_timeout = '{max(1, int(wait * 1000))}ms'"))
                tx = _PgTx(self, conn, set())
                for n in names:  # always in name order, so two writers cannot deadlock
                    tx.lock(n, shared=False)
                yield tx
                tx.finish()
        except sa.exc.OperationalError as exc:
            if isinstance(
                exc.orig, psycopg.errors.LockNotAvailable | psycopg.errors.DeadlockDetected
            ):
                raise StoreBusyError(
                    f"{self.url}: another write holds the layers this one needs; gave up after "
                    f"{wait:g} s, try again"
                ) from None
            raise _unavailable(self.url, exc) from None

    @_guard
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
        for col, values in check_where(spec, where).items():
            conds.append(t.c[col].in_(values))
        if cql is False:  # a constant filter that no feature passes
            return Page(name, [], [], 0)
        if cql is not None and cql is not True:
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
            except (sa.exc.ProgrammingError, sa.exc.DataError, sa.exc.InternalError) as exc:
                conn.rollback()
                if name not in self._names(conn):  # no such table (asked only on failure)
                    raise self._missing(name) from None
                what = (
                    getattr(getattr(exc.orig, "diag", None), "message_primary", None) or "invalid"
                )
                raise ValidationError(
                    f"filter on {name}", [f"the database refused it: {what}"]
                ) from None
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

    def _copy(
        self, conn: sa.Connection, spec: schema.Layer, df: pd.DataFrame, table: str | None = None
    ) -> None:
        """Load rows with ``COPY`` (into ``table``, default the layer's own)."""
        cols = spec.columns + ([GEOM] if spec.geometry else [])
        data = [df[c].astype(object).where(df[c].notna(), None).tolist() for c in spec.columns]
        if spec.geometry:
            geoms = shapely.set_srid(df.geometry.values, 4326)
            data.append(shapely.to_wkb(geoms, hex=True, include_srid=True).tolist())
        raw = conn.connection.driver_connection
        quoted = ", ".join(f'"{c}"' for c in cols)
        target = table or spec.name
        with raw.cursor() as cur, cur.copy(f'COPY "{target}" ({quoted}) FROM STDIN') as cp:  # type: ignore[union-attr]
            for row in zip(*data, strict=True):
                cp.write_row(row)
