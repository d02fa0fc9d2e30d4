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
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import psycopg
import sqlalchemy as sa
from psycopg.types.json import Jsonb

import geopandas as gpd
import shapely
from geoalchemy2 import Geometry

from gis import schema
from gis.errors import (
    LayerNotFoundError,
    StoreBusyError,
    StoreError,
    ValidationError,
)
from gis.store import pgsql
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
    prefix_end,
    update_values,
)
from gis.store.pgconn import _check_idle_connections, _guard, _unavailable
from gis.store.pgsql import _BUMP_RAW, _LOCK_RAW, _NAMES_RAW, _bare, _conditions
from gis.store.pgsql import _py as _python

_SA_TYPES: dict[str, Any] = {
    "str": sa.Text,
    "int": sa.BigInteger,
    "float": sa.Float(53),
    "bool": sa.Boolean,
}
_VERSIONS = (
    sa.text(
        "CREATE TABLE IF NOT EXISTS gridgis_buckets (who text PRIMARY KEY, "
        "tokens double precision NOT NULL, at timestamptz NOT NULL DEFAULT clock_timestamp())"
    ),
    sa.text(
        "CREATE TABLE IF NOT EXISTS gridgis_versions (layer text PRIMARY KEY, v bigint NOT NULL, "
        "at timestamptz NOT NULL DEFAULT now())"
    ),
    # a database of an earlier gridgis
    sa.text(
        "ALTER TABLE gridgis_versions ADD COLUMN IF NOT EXISTS at timestamptz NOT NULL DEFAULT now()"
    ),
)
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


def _duplicate(what: str, exc: BaseException) -> ValidationError:
    """The clear error of a row whose key is taken (PostgreSQL's detail names it)."""
    msg = getattr(getattr(exc, "diag", None), "message_detail", None) or "a key exists"
    return ValidationError(what, [f"duplicate key: {msg}"])


class _PgTx(Tx):
    """A PostgreSQL transaction.

    The row path (work orders, audit rows, edits) speaks to psycopg directly and sends
    what needs no answer — locks, inserts, updates — together with the next statement
    whose answer it reads, in one round trip (psycopg's pipeline mode): a work order's
    create is three round trips instead of fourteen. Statements keep their order, so a
    lock still comes before the reads that depend on it; an error of a deferred
    statement surfaces at that round trip and fails the transaction as it would have.
    Whole-layer work (``read``, ``_replace``, ``insert``) goes through SQLAlchemy after
    sending what is deferred.
    """

    def __init__(self, store: PostGISStore, conn: sa.Connection, exclusive: set[str]) -> None:
        self.store, self.conn = store, conn
        self.raw: psycopg.Connection = conn.connection.driver_connection  # type: ignore[assignment]
        self.exclusive = set(exclusive)
        self.shared: set[str] = set()
        self.dirty: set[str] = set()
        self.swaps: list[tuple[str, str]] = []
        self.deferred: list[tuple[str, Sequence[Any] | None]] = []
        self.rebuilt: set[str] = set()  # whole layers written (their versions always go up)
        self._held: set[str] | None = None  # the tables, asked once per transaction

    # -- the round trips -------------------------------------------------------------
    def defer(self, sql: str, params: Sequence[Any] | None = None) -> None:
        """Send ``sql`` with the next statement whose answer is read (or at the commit).
        Consecutive bare ``SELECT f(…)`` (locks, settings) become one statement.
        """
        if self.deferred and _bare(sql) and _bare(self.deferred[-1][0]):
            last, lp = self.deferred[-1]
            self.deferred[-1] = (f"{last}, {sql[len('SELECT ') :]}", [*(lp or ()), *(params or ())])
            return
        self.deferred.append((sql, params))

    def will_write(self, *names: str) -> None:
        # in name order, as exclusive holders take them; a layer still to be made is
        # locked exclusively when it is made (taking it shared first, then exclusively,
        # two first writers would wait for each other)
        for n in sorted(names):
            if self.has(n):
                self.lock(n, shared=True)

    def _send(
        self, sql: str | None = None, params: Sequence[Any] | None = None, *, commit: bool = False
    ) -> psycopg.Cursor | None:
        """Send what is deferred and ``sql`` (and the commit) in one round trip; the
        cursor of ``sql`` (its rows fetched), else ``None``.
        """
        if not self.deferred and sql is None and not commit:
            return None
        todo, self.deferred = self.deferred, []
        try:
            cur = self.raw.cursor()
            if not todo and not commit:
                cur.execute(sql, params)  # type: ignore[arg-type]
                return cur
            with self.raw.pipeline():
                for q, p in todo:
                    self.raw.execute(q, p)  # type: ignore[arg-type]
                if sql is not None:
                    cur.execute(sql, params)  # type: ignore[arg-type]
                if commit:
                    self.raw.commit()  # SQLAlchemy's commit after this finds nothing to do
            return cur if sql is not None else None
        except psycopg.errors.IntegrityError as exc:
            raise _duplicate("rows", exc) from None

    def flush(self) -> None:
        """Send what is deferred (before a statement that goes through SQLAlchemy)."""
        self._send()

    def names(self) -> set[str]:
        if self._held is None:  # with what is deferred (the locks come first)
            cur = self._send(_NAMES_RAW, (list(schema.LAYERS),))
            self._held = {r[0] for r in cur.fetchall()}  # type: ignore[union-attr]
            self.store.known |= self._held
        return set(self._held)

    def has(self, name: str) -> bool:
        # a gridgis table, once there, stays (a rebuild swaps a new one in within its
        # transaction): a layer seen before needs no question; an absent one is asked
        return name in self.store.known or name in self.names()

    def lock(self, name: str, *, shared: bool) -> None:
        if name in self.exclusive or (shared and name in self.shared):
            return
        self.defer(_LOCK_RAW.format(mode="_shared" if shared else ""), (name,))
        (self.shared if shared else self.exclusive).add(name)

    def read(
        self, name: str, *, where: Where | None = None, columns: Sequence[str] | None = None
    ) -> pd.DataFrame:
        self._pending(name)
        if not self.has(name):
            raise self.store._missing(name, self.names())
        self.flush()
        return self.store._read(self.conn, name, None, where, columns)

    def _replace(self, name: str, df: pd.DataFrame) -> None:
        self.lock(name, shared=False)
        self.flush()
        spec = schema.layer(name)
        aside = f"{name}__{uuid.uuid4().hex[:8]}"
        t = _table(spec, sa.MetaData(), aside)
        t.create(self.conn)
        self.store._copy(self.conn, spec, df, aside)
        if spec.geometry:
            self.conn.execute(
                sa.text(f'CREATE INDEX "{aside}_geom_idx" ON "{aside}" USING gist ("{GEOM}")')
            )
        for i, cols in enumerate(spec.indexes):
            quoted = ", ".join(f'"{c}"' for c in cols)
            self.conn.execute(sa.text(f'CREATE INDEX "{aside}_ix{i}" ON "{aside}" ({quoted})'))
        self.swaps.append((name, aside))
        self.dirty.add(name)
        self.rebuilt.add(name)

    def swap(self) -> None:
        """Put the layers built aside in place (short locks, just before the commit)."""
        if not self.swaps:
            return
        self.flush()
        # in the store's own schema: unqualified, a layer new to it would drop the table of
        # that name further down the search path (``public``: another store's data)
        own = self.conn.execute(sa.text("SELECT current_schema()")).scalar_one()
        for name, aside in self.swaps:
            self.conn.execute(sa.text(f'DROP TABLE IF EXISTS "{own}"."{name}"'))
            self.conn.execute(sa.text(f'ALTER TABLE "{aside}" RENAME TO "{name}"'))
            if schema.layer(name).journal:
                self._renumber(name)
        self.swaps = []
        self._held = None

    def _renumber(self, name: str) -> None:
        """The journal's number sequence, after its highest number (a journal rebuilt or
        loaded in bulk brings its own numbers).
        """
        seq = f'"{name}_seq"'
        self.conn.execute(sa.text(f"CREATE SEQUENCE IF NOT EXISTS {seq}"))
        self.conn.execute(sa.text(
            f"SELECT setval('{seq}', GREATEST((SELECT max(seq) FROM \"{name}\"), "
            f"(SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM {seq}), 0) + 1, false)"
        ))  # fmt: skip

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
        self.flush()
        try:
            self.store._copy(self.conn, spec, rows)
        except (sa.exc.IntegrityError, psycopg.errors.IntegrityError) as exc:
            raise _duplicate(f"rows for {name}", getattr(exc, "orig", exc)) from None
        if spec.journal:
            self._renumber(name)
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
        last: bool = False,
    ) -> list[dict[str, Any]]:
        self._pending(name)
        if not self.has(name) and self.deferred:
            # the locks asked for come first: the writer they waited for may have made it
            self.flush()
            self._held = None
        if not self.has(name):
            return []
        spec = schema.layer(name)
        cols = list(spec.columns)
        if columns is not None:
            cols = [c for c in cols if c in set(columns) | set(spec.key)]
        geometry = bool(spec.geometry) and columns is None
        sel = ", ".join(
            [*(f'"{c}"' for c in cols), *([f'ST_AsBinary("{GEOM}")'] if geometry else [])]
        )
        conds, params = _conditions(spec, where, below, above)
        sql = f'SELECT {sel} FROM "{name}"' + (" WHERE " + " AND ".join(conds) if conds else "")
        sql += " ORDER BY " + ", ".join(f'"{k}"' + (" DESC" if last else "") for k in spec.key)
        limit = 1 if last else limit
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        if for_update:
            self.lock(name, shared=True)
            sql += " FOR UPDATE"
        cur = self._send(sql, params)
        out = []
        for r in cur.fetchall():  # type: ignore[union-attr]
            rec = dict(zip(cols, r[: len(cols)], strict=True))
            if geometry:
                b = r[len(cols)]
                rec["geometry"] = shapely.from_wkb(bytes(b)) if b is not None else None
            out.append(rec)
        return out

    def _assignments(self, spec: schema.Layer, values: Mapping[str, Any]) -> tuple[list[str], list[Any]]:  # fmt: skip
        sets, params = [], []
        for col, value in values.items():
            if col == "geometry":
                sets.append(f'"{GEOM}" = ST_GeomFromWKB(%s, 4326)')
                params.append(shapely.to_wkb(value))
            else:
                sets.append(f'"{col}" = %s')
                params.append(_python(value))
        return sets, params

    def update_many(self, name: str, changes: Sequence[tuple[Any, Mapping[str, Any]]]) -> None:
        if not changes:
            return
        spec = schema.layer(name)
        self._pending(name)
        if not self.has(name):
            raise self.store._missing(name, self.names())
        self.lock(name, shared=True)
        cols = list(update_values(spec, changes[0][1]))
        sets, _ = self._assignments(spec, {c: changes[0][1][c] for c in cols})
        sql = f'UPDATE "{name}" SET {", ".join(sets)} WHERE "{spec.key[0]}" = %s'
        rows = [
            [*self._assignments(spec, {c: v[c] for c in cols})[1], _python(k)] for k, v in changes
        ]
        if len(rows) <= 16:  # a few: with the next round trip
            for p in rows:
                self.defer(sql, p)
        else:  # many: psycopg sends them in a pipeline of its own
            self.flush()
            with self.raw.cursor() as cur:
                cur.executemany(sql, rows)
        self.dirty.add(name)

    def _absent(self, name: str) -> bool:
        """Whether the layer is still to be made; if so this transaction holds its
        exclusive lock, so two writers of a new layer cannot both make it (the second
        would replace the first's committed rows).
        """
        if self.has(name):
            return False
        self.lock(name, shared=False)
        self.flush()
        self._held = None  # another writer may have made it while we waited
        return not self.has(name)

    def add(self, name: str, records: Sequence[Mapping[str, Any]]) -> None:
        self._pending(name)
        if self._absent(name):
            super().add(name, records)
            return
        self._insert_records(schema.layer(name), schema.check_records(name, records))

    def _insert_records(self, spec: schema.Layer, rows: Sequence[Mapping[str, Any]], numbered: bool = False) -> None:  # fmt: skip
        """INSERT rows (deferred); ``numbered``: the key from the journal's sequence."""
        self.lock(spec.name, shared=True)
        fields = [f.name for f in spec.fields]
        one = [
            f"nextval('\"{spec.name}_seq\"')" if numbered and c == spec.key[0] else "%s"
            for c in fields
        ]
        if spec.geometry:
            one.append("ST_GeomFromWKB(%s, 4326)")
        cols = ", ".join(f'"{c}"' for c in [*fields, *([GEOM] if spec.geometry else [])])
        per_row = len(one) - (1 if numbered else 0)
        chunk = max(1, 30_000 // max(1, per_row))  # PostgreSQL takes 65,535 parameters at most
        for start in range(0, len(rows), chunk):
            params: list[Any] = []
            part = rows[start : start + chunk]
            for r in part:
                params += [_python(r[c]) for c in fields if not (numbered and c == spec.key[0])]
                if spec.geometry:
                    params.append(shapely.to_wkb(r["geometry"]))
            values = ", ".join(f"({', '.join(one)})" for _ in part)
            self.defer(f'INSERT INTO "{spec.name}" ({cols}) VALUES {values}', params)
        self.dirty.add(spec.name)

    def append(self, name: str, records: Sequence[Mapping[str, Any]]) -> None:
        spec = schema.layer(name)
        self._pending(name)
        if self._absent(name):
            super().append(name, records)
            return
        key = spec.key[0]
        rows = schema.check_records(name, [{**r, key: 1} for r in records])
        self._insert_records(spec, rows, numbered=True)

    def lock_key(self, key: str) -> None:
        self.defer("SELECT pg_advisory_xact_lock(hashtextextended(%s, 7))", (key,))

    def update(self, name: str, key: Any, values: Mapping[str, Any]) -> None:
        spec = schema.layer(name)
        vals = update_values(spec, values)
        self._pending(name)
        if not self.has(name):
            raise self.store._missing(name, self.names())
        self.lock(name, shared=True)
        sets, params = self._assignments(spec, vals)
        cur = self._send(
            f'UPDATE "{name}" SET {", ".join(sets)} WHERE "{spec.key[0]}" = %s',
            [*params, _python(key)],
        )
        if cur is None or cur.rowcount == 0:
            raise LayerNotFoundError(f"{name} has no row with {spec.key[0]} = {key!r}")
        self.dirty.add(name)

    def delete(self, name: str, keys: Sequence[Any]) -> int:
        spec = schema.layer(name)
        self._pending(name)
        if not self.has(name):
            raise self.store._missing(name, self.names())
        self.lock(name, shared=True)
        keys = [_python(k) for k in keys]
        if not keys:
            return 0
        cur = self._send(f'DELETE FROM "{name}" WHERE "{spec.key[0]}" = ANY(%s)', [keys])
        self.dirty.add(name)
        return int(cur.rowcount)  # type: ignore[union-attr]

    def delete_prefix(self, name: str, column: str, prefix: str) -> int:
        self._pending(name)
        if not self.has(name):
            return 0
        self.lock(name, shared=True)
        col = schema.layer(name).field(column).name
        cur = self._send(f'DELETE FROM "{name}" WHERE "{col}" >= %s AND "{col}" < %s',
                         [prefix, prefix_end(prefix)])  # fmt: skip
        self.dirty.add(name)
        return int(cur.rowcount)  # type: ignore[union-attr]

    def finish(self) -> None:
        """Send what is left, raise the versions, and commit — one round trip."""
        self.swap()
        bump = sorted(n for n in self.dirty if not schema.layer(n).live or n in self.rebuilt)
        if bump:
            self.defer(_BUMP_RAW, (bump,))
        if self.deferred:
            self._send(commit=True)


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
        #: layers seen in the database (tables are never dropped, only swapped: see has)
        self.known: set[str] = set()
        self.tables = {n: _table(s, self.metadata) for n, s in schema.LAYERS.items()}
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS postgis"))
                for stmt in _VERSIONS:
                    conn.execute(stmt)
        except sa.exc.OperationalError as exc:
            raise StoreError(f"cannot connect to {self.url}: {exc.orig}") from None
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"{self.url} has no PostGIS and it cannot be enabled: {exc}") from None

    def __repr__(self) -> str:
        return f"PostGISStore({self.url!r})"

    def close(self) -> None:
        """Close the pool's connections."""
        self.engine.dispose()

    def count_requests(self, taken: Mapping[str, int], rate: float, burst: int) -> dict[str, float]:
        """See :meth:`Store.count_requests`: one statement (``INSERT … ON CONFLICT``)."""

        def run(raw: Any) -> list[Any]:
            with raw.cursor() as cur:
                cur.execute(pgsql.COUNT_REQUESTS, {"burst": float(burst), "rate": float(rate),
                                                   "who": list(taken), "n": list(taken.values())})  # fmt: skip
                return cur.fetchall()

        return {str(w): float(t) for w, t in self._raw(run)}

    def warm(self) -> None:
        """Nothing to read ahead: PostGIS aggregates tiles in SQL."""

    def _reader(self) -> sa.Connection:
        """A pooled connection in autocommit for a read of one statement (or a few that
        need no snapshot): no ``BEGIN`` and ``ROLLBACK`` round trips around it — they
        were two of the three round trips of an items page. Back in the pool it is in
        transaction mode again (SQLAlchemy resets the isolation level).
        """
        return self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    def _names(self, conn: sa.Connection) -> set[str]:
        raw: Any = conn.connection.driver_connection
        with raw.cursor() as cur:  # the row path's query (one text for both)
            cur.execute(_NAMES_RAW, (list(schema.LAYERS),))
            return {r[0] for r in cur.fetchall()}

    @_guard
    def names(self) -> set[str]:
        """The gridgis tables in the database's search path."""
        with self._reader() as conn:
            return self._names(conn)

    @_guard
    def versions(self) -> dict[str, int]:
        """Layer → write counter (table ``gridgis_versions``)."""
        with self._reader() as conn:
            return {
                r[0]: int(r[1])
                for r in conn.execute(sa.text("SELECT layer, v FROM gridgis_versions"))
            }

    @_guard
    def stamps(self) -> dict[str, tuple[int, datetime | None]]:
        """Layer → (write counter, time of the last write)."""
        with self._reader() as conn:
            rows = conn.execute(sa.text("SELECT layer, v, at FROM gridgis_versions")).fetchall()
        return {r[0]: (int(r[1]), r[2]) for r in rows}

    @_guard
    def layers(self) -> dict[str, int]:
        """Layer name → row count."""
        with self._reader() as conn:
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
        with self._reader() as conn:
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

    @_guard
    def _tile(
        self,
        name: str,
        tms_id: str,
        zxy: tuple[int, int, int],
        where: Where | None,
        cols: list[str],
        extra: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> bytes:
        """The tile, built by PostGIS (``ST_AsMVTGeom`` clips, simplifies and quantises;
        ``ST_AsMVT`` encodes), candidates through the GiST index; ``extra`` goes as one
        JSON parameter.
        """
        from gis import tiles

        spec = self._spec(name)
        conds, params = _conditions(spec, where, None, None)
        sums = tiles.aggregated(name, zxy[0], cols)
        key = spec.key[0] if extra and sums is None else None
        sql = pgsql.mvt(name, cols, conds, sums, key)
        first = [Jsonb(extra)] if key else []

        def run(raw: Any) -> Any:
            with raw.cursor() as cur:
                cur.execute(sql, [*zxy, *first, *params, name])
                return cur.fetchone()

        row = self._raw(run)
        return bytes(row[0]) if row and row[0] is not None else b""

    @contextlib.contextmanager
    def settled(self, journal: str) -> Iterator[Tx]:
        """A transaction that first waits for every appender of ``journal`` in flight (they
        hold its lock shared from before their numbers are taken to their commit) and
        holds new ones off while it reads: every number below the highest it sees has
        committed or is gone (read committed: each read after the wait sees all of them).
        """
        with self.transaction(lock=(journal,)) as tx:
            yield tx

    @contextlib.contextmanager
    def transaction(self, *, lock: Iterable[str] = (), wait: float | None = None) -> Iterator[Tx]:
        """One PostgreSQL transaction holding exclusive advisory locks on ``lock``."""
        wait = DEFAULT_WAIT if wait is None else wait
        names = sorted(set(lock))
        for n in names:
            schema.layer(n)
        try:
            with self.engine.begin() as conn:
                tx = _PgTx(self, conn, set())
                tx.defer(
                    "SELECT set_config('lock_timeout', %s, true)",
                    (f"{max(1, int(wait * 1000))}ms",),
                )
                for n in names:  # always in name order, so two writers cannot deadlock
                    tx.lock(n, shared=False)
                yield tx
                tx.finish()
        except (sa.exc.OperationalError, psycopg.OperationalError) as exc:
            orig = getattr(exc, "orig", exc)
            if isinstance(orig, psycopg.errors.LockNotAvailable | psycopg.errors.DeadlockDetected):
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
        sortby: Sequence[tuple[str, bool]] = (),
    ) -> Page:
        """Filter, count and page in PostgreSQL (bbox through the GiST index); the GeoJSON
        is written by PostGIS and the count comes with the page (a window over the filter).
        """
        spec = self._spec(name)
        if cql is None or cql is True:
            return self._page_text(spec, bbox, where, limit, offset, sortby)
        if cql is False:  # a constant filter that no feature passes
            return Page(name, [], [], 0)
        t = self.tables[name]
        q, conds = pgsql.cql_page(
            t, spec, bbox, check_where(spec, where), cql, sortby, limit, offset
        )
        with self._reader() as conn:
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

    def _raw(self, run: Callable[[Any], T]) -> T:
        """``run(psycopg connection)`` on an autocommit connection; a connection the
        database dropped (a restart, a failover) is replaced with the whole pool and the
        read runs once more, as :func:`_guard` does for SQLAlchemy's reads.
        """
        for attempt in (1, 2):
            with self._reader() as conn:
                raw: Any = conn.connection.driver_connection
                try:
                    return run(raw)
                except psycopg.OperationalError as exc:
                    lost = raw.closed or raw.broken
                    if lost:
                        conn.invalidate()
                        self.engine.dispose()  # the others went with it (closed, not left open)
                    if not (lost and attempt == 1):
                        raise _unavailable(self.url, exc) from None
        raise AssertionError("unreachable")

    def _page_text(
        self,
        spec: schema.Layer,
        bbox: BBox | None,
        where: Where | None,
        limit: int,
        offset: int,
        sortby: Sequence[tuple[str, bool]],
    ) -> Page:
        """:meth:`page` without a CQL2 filter: one statement of text, straight to psycopg."""

        def run(raw: Any) -> tuple[list[Any], int]:
            with raw.cursor() as cur:
                cur.execute(*pgsql.page(spec, bbox, where, sortby, limit, offset))
                rows = cur.fetchall()
                if rows or not offset:
                    return rows, int(rows[0][-1]) if rows else 0
                cur.execute(*pgsql.page(spec, bbox, where, (), 1, 0))  # past the end: the count
                more = cur.fetchall()
                return rows, int(more[0][-1]) if more else 0

        try:
            rows, matched = self._raw(run)
        except psycopg.errors.UndefinedTable:
            raise self._missing(spec.name) from None
        k = len(spec.columns)
        return Page(
            spec.name,
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
