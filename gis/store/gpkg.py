"""The embedded store: one GeoPackage file, written in SQLite transactions in WAL mode.

Why not write through GDAL (pyogrio) as files elsewhere are: a GDAL write is one layer on
its own connection, so several layers and an audit row cannot commit together, and the old
way round that (write a copy of the file, swap it in) let a reader open the file while it
was being replaced and lost row edits that committed on the old file in between. Here every
write is one SQLite transaction on the file itself:

- ``journal_mode=WAL``: readers read while a writer writes, each seeing the last commit,
  never a half-written layer; a writer killed mid-way leaves only its uncommitted WAL
  frames, which SQLite discards when the file is next opened.
- ``BEGIN IMMEDIATE`` takes the one writer lock of the file at the transaction's start, so a
  workflow that read, computed and writes cannot overwrite a change made meanwhile (another
  writer waits up to the transaction's ``wait``, then gets :class:`StoreBusyError`).
- Whole layers are rebuilt inside the transaction (table, R-tree index, ``gpkg_contents``);
  row edits keep the R-tree through the standard GeoPackage triggers, whose ``ST_*``
  functions are registered here in Python (no SpatiaLite needed).

The file stays a plain GeoPackage 1.3: QGIS and GDAL open it as it is.
"""

from __future__ import annotations

import contextlib
import gc
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import geopandas as gpd
import shapely

from gis import schema
from gis.errors import LayerNotFoundError, StoreBusyError, StoreError, ValidationError
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
    now,
    prefix_end,
    update_values,
)
from gis.store.gpkgblob import _blobs, _register_functions, _wkb
from gis.store.rtree import load as rtree_load
from gis.store.rtree import triggers as _rtree_triggers

_SQL_TYPES = {"str": "TEXT", "int": "INTEGER", "float": "REAL", "bool": "BOOLEAN"}
_VERSIONS = "gridgis_versions"
#: the rate limit's buckets that server processes share (Store.count_requests)
_BUCKETS = "CREATE TABLE IF NOT EXISTS gridgis_buckets (who TEXT PRIMARY KEY, tokens REAL NOT NULL, at REAL NOT NULL)"

_CORE = (
    """CREATE TABLE IF NOT EXISTS gpkg_spatial_ref_sys (srs_name TEXT NOT NULL,
       srs_id INTEGER NOT NULL PRIMARY KEY, organization TEXT NOT NULL,
       organization_coordsys_id INTEGER NOT NULL, definition TEXT NOT NULL, description TEXT)""",
    """CREATE TABLE IF NOT EXISTS gpkg_contents (table_name TEXT NOT NULL PRIMARY KEY,
       data_type TEXT NOT NULL, identifier TEXT UNIQUE, description TEXT DEFAULT '',
       last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
       min_x DOUBLE, min_y DOUBLE, max_x DOUBLE, max_y DOUBLE, srs_id INTEGER,
       CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id))""",
    """CREATE TABLE IF NOT EXISTS gpkg_geometry_columns (table_name TEXT NOT NULL,
       column_name TEXT NOT NULL, geometry_type_name TEXT NOT NULL, srs_id INTEGER NOT NULL,
       z TINYINT NOT NULL, m TINYINT NOT NULL,
       CONSTRAINT pk_geom_cols PRIMARY KEY (table_name, column_name),
       CONSTRAINT uk_gc_table_name UNIQUE (table_name),
       CONSTRAINT fk_gc_tn FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name),
       CONSTRAINT fk_gc_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys (srs_id))""",
    """CREATE TABLE IF NOT EXISTS gpkg_extensions (table_name TEXT, column_name TEXT,
       extension_name TEXT NOT NULL, definition TEXT NOT NULL, scope TEXT NOT NULL,
       CONSTRAINT ge_tce UNIQUE (table_name, column_name, extension_name))""",
    f"CREATE TABLE IF NOT EXISTS {_VERSIONS} (layer TEXT PRIMARY KEY, v INTEGER NOT NULL, at TEXT)",
)
_WGS84_WKT = (
    'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,'
    'AUTHORITY["EPSG","7030"]],AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,'
    'AUTHORITY["EPSG","8901"]],UNIT["degree",0.0174532925199433,AUTHORITY["EPSG","9122"]],'
    'AXIS["Latitude",NORTH],AXIS["Longitude",EAST],AUTHORITY["EPSG","4326"]]'
)
_SRS = (
    ("Undefined cartesian SRS", -1, "NONE", -1, "undefined", "undefined cartesian"),
    ("Undefined geographic SRS", 0, "NONE", 0, "undefined", "undefined geographic"),
    ("WGS 84 geodetic", 4326, "EPSG", 4326, _WGS84_WKT, "longitude/latitude WGS 84"),
)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _insert_rows(
    con: sqlite3.Connection, spec: schema.Layer, df: pd.DataFrame, chunk: int = 50_000
) -> None:
    """Insert the rows of ``df`` (checked) into the layer's table, ``chunk`` rows at a time
    (the Python values of one chunk exist at once, not those of a whole city).
    """
    cols = [f.name for f in spec.fields] + ([GEOM] if spec.geometry else [])
    sql = f"INSERT INTO {_q(spec.name)} ({', '.join(map(_q, cols))}) VALUES ({', '.join('?' * len(cols))})"
    for start in range(0, len(df), chunk):
        part = df.iloc[start : start + chunk]
        data = [_column_values(part, f) for f in spec.fields]
        if spec.geometry:
            data.append(_blobs(part.geometry.values))
        con.executemany(sql, zip(*data, strict=True))


def _column_values(df: pd.DataFrame, f: schema.Field) -> list[Any]:
    s = df[f.name]
    if f.kind == "bool":
        return s.fillna(False).astype(bool).astype(int).tolist()
    if f.kind in ("int", "float") and not s.isna().any():
        return s.to_numpy().tolist()
    return s.astype(object).where(s.notna(), None).tolist()


# --- the transaction ------------------------------------------------------------------------


class _GpkgTx(Tx):
    def __init__(self, store: GeoPackageStore, con: sqlite3.Connection) -> None:
        self.store, self.con = store, con
        self.dirty: set[str] = set()
        self.rebuilt: set[str] = set()  # whole layers written (their versions always go up)
        self._names: set[str] | None = None

    def names(self) -> set[str]:
        if self._names is None:
            self._names = _names(self.con)
        return set(self._names)

    def read(
        self, name: str, *, where: Where | None = None, columns: Sequence[str] | None = None
    ) -> pd.DataFrame:
        if not self.has(name):
            raise self.store._missing(name, self.names())
        return _read(self.con, schema.layer(name), None, where, columns)

    def _replace(self, name: str, df: pd.DataFrame) -> None:
        _replace(self.con, schema.layer(name), df)
        self.dirty.add(name)
        self.rebuilt.add(name)
        self._names = None

    def insert(self, name: str, rows: pd.DataFrame) -> None:
        spec = schema.layer(name)
        rows = schema.check(name, rows, what=f"rows for {name}")
        if not self.has(name):
            self._replace(name, rows)
            return
        try:
            _insert_rows(self.con, spec, rows)
        except sqlite3.IntegrityError as exc:
            raise ValidationError(f"rows for {name}", [f"duplicate key: {exc}"]) from None
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
        if not self.has(name):
            return []
        spec = schema.layer(name)
        present = set(_table_columns(self.con, name))
        cols = [c for c in spec.columns if c in present]
        geometry = bool(spec.geometry) and columns is None
        if columns is not None:
            cols = [c for c in cols if c in set(columns) | set(spec.key)]
        sql, params = _conditions(spec, where, None)
        for op, bounds in (("<", below), (">", above)):
            for col, value in (bounds or {}).items():
                spec.field(col)
                sql.append(f"{_q(col)} {op} ?")
                params.append(_python(value))
        select = ", ".join([*map(_q, cols), *([_q(GEOM)] if geometry else [])])
        text = f"SELECT {select} FROM {_q(name)}" + (" WHERE " + " AND ".join(sql) if sql else "")
        order = ", ".join(_q(k) + (" DESC" if last else "") for k in spec.key)
        limit = 1 if last else limit
        kinds = {f.name: f.kind for f in spec.fields}
        out = []
        tail = f" ORDER BY {order}" + (f" LIMIT {int(limit)}" if limit is not None else "")
        for r in self.con.execute(text + tail, params).fetchall():
            rec = {c: (bool(v) if kinds[c] == "bool" and v is not None else v)
                   for c, v in zip(cols, r, strict=False)}  # fmt: skip
            if columns is None:
                for c in spec.columns:
                    rec.setdefault(c, None)
            if geometry:
                rec["geometry"] = _wkb(np.array([r[len(cols)]], dtype=object))[0]
            out.append(rec)
        return out

    def update_many(self, name: str, changes: Sequence[tuple[Any, Mapping[str, Any]]]) -> None:
        if not changes:
            return
        spec = schema.layer(name)
        cols = list(update_values(spec, changes[0][1]))
        if "geometry" in cols or not self.has(name):
            super().update_many(name, changes)
            return
        sets = ", ".join(f"{_q(c)} = ?" for c in cols)
        self.con.executemany(
            f"UPDATE {_q(name)} SET {sets} WHERE {_q(spec.key[0])} = ?",
            [[_python(v[c]) for c in cols] + [_python(k)] for k, v in changes],
        )
        self.dirty.add(name)

    def add(self, name: str, records: Sequence[Mapping[str, Any]]) -> None:
        if not self.has(name):
            super().add(name, records)
            return
        spec = schema.layer(name)
        rows = schema.check_records(name, records)
        cols = [f.name for f in spec.fields] + ([GEOM] if spec.geometry else [])
        sql = f"INSERT INTO {_q(name)} ({', '.join(map(_q, cols))}) VALUES ({', '.join('?' * len(cols))})"
        data = []
        for r in rows:
            vals = [
                int(r[f.name]) if f.kind == "bool" and r[f.name] is not None else r[f.name]
                for f in spec.fields
            ]
            if spec.geometry:
                vals.append(_blobs(np.array([r["geometry"]], dtype=object))[0])
            data.append(vals)
        try:
            self.con.executemany(sql, data)
        except sqlite3.IntegrityError as exc:
            raise ValidationError(f"rows for {name}", [f"duplicate key: {exc}"]) from None
        self.dirty.add(name)

    def update(self, name: str, key: Any, values: Mapping[str, Any]) -> None:
        spec = schema.layer(name)
        vals = update_values(spec, values)
        if not self.has(name):
            raise self.store._missing(name, self.names())
        sets, params = [], []
        for col, value in vals.items():
            if col == "geometry":
                sets.append(f"{_q(GEOM)} = ?")
                params.append(_blobs(np.array([value], dtype=object))[0])
            else:
                sets.append(f"{_q(col)} = ?")
                params.append(_python(value))
        n = self.con.execute(
            f"UPDATE {_q(name)} SET {', '.join(sets)} WHERE {_q(spec.key[0])} = ?",
            [*params, _python(key)],
        ).rowcount
        if n == 0:
            raise LayerNotFoundError(f"{name} has no row with {spec.key[0]} = {key!r}")
        self.dirty.add(name)

    def delete_prefix(self, name: str, column: str, prefix: str) -> int:
        if not self.has(name):
            return 0
        col = _q(schema.layer(name).field(column).name)
        sql = f"DELETE FROM {_q(name)} WHERE {col} >= ? AND {col} < ?"
        n = self.con.execute(sql, [prefix, prefix_end(prefix)]).rowcount
        self.dirty.add(name)
        return int(n)

    def delete(self, name: str, keys: Sequence[Any]) -> int:
        spec = schema.layer(name)
        if not self.has(name):
            raise self.store._missing(name, self.names())
        keys = [_python(k) for k in keys]
        if not keys:
            return 0
        n = self.con.execute(
            f"DELETE FROM {_q(name)} WHERE {_q(spec.key[0])} IN ({', '.join('?' * len(keys))})",
            keys,
        ).rowcount
        self.dirty.add(name)
        return int(n)

    def bump(self) -> None:
        """Raise the version of every layer this transaction wrote (just before commit;
        not of live layers, see :attr:`gis.schema.Layer.live`).
        """
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        for name in sorted(n for n in self.dirty if not schema.layer(n).live or n in self.rebuilt):
            self.con.execute(
                f"INSERT INTO {_VERSIONS} (layer, v, at) VALUES (?, 1, ?) "
                "ON CONFLICT(layer) DO UPDATE SET v = v + 1, at = excluded.at",
                (name, stamp),
            )


def _python(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return None
    return v


def _names(con: sqlite3.Connection) -> set[str]:
    try:
        found = {r[0] for r in con.execute("SELECT table_name FROM gpkg_contents")}
    except sqlite3.OperationalError:  # a new, empty file
        return set()
    return found & set(schema.LAYERS)


def _table_columns(con: sqlite3.Connection, name: str) -> list[str]:
    return [r[1] for r in con.execute(f"PRAGMA table_info({_q(name)})")]


def _conditions(
    spec: schema.Layer, where: Where | None, bbox: BBox | None
) -> tuple[list[str], list[Any]]:
    """SQL conditions and their parameters for ``where`` (column IN values) and ``bbox``
    (the R-tree's candidates; the exact test is the caller's).
    """
    conds = check_where(spec, where)
    sql = [f"{_q(c)} IN ({', '.join('?' * len(vs))})" for c, vs in conds.items()]
    params: list[Any] = [v for vs in conds.values() for v in vs]
    if bbox is not None and spec.geometry:
        x0, y0, x1, y1 = (float(v) for v in bbox)
        sql.append(
            f"fid IN (SELECT id FROM {_q(f'rtree_{spec.name}_{GEOM}')} "
            "WHERE minx <= ? AND maxx >= ? AND miny <= ? AND maxy >= ?)"
        )
        params += [x1, x0, y1, y0]
    return sql, params


def _read(
    con: sqlite3.Connection,
    spec: schema.Layer,
    bbox: BBox | None,
    where: Where | None,
    columns: Sequence[str] | None,
) -> pd.DataFrame:
    """A layer read in one statement (one snapshot), filters in SQL (bbox via the R-tree,
    then the exact test).
    """
    present = set(_table_columns(con, spec.name))
    cols = [c for c in spec.columns if c in present]
    sql, params = _conditions(spec, where, bbox)
    select = ", ".join([*map(_q, cols), *([_q(GEOM)] if spec.geometry else [])]) or "fid"
    text = f"SELECT {select} FROM {_q(spec.name)}"
    if sql:
        text += " WHERE " + " AND ".join(sql)
    width = len(cols) + bool(spec.geometry)
    with _no_gc():  # hundreds of thousands of row tuples: no collector passes over them
        cur = con.execute(text + " ORDER BY fid", params)
        chunks = []
        while rows := cur.fetchmany(100_000):  # the tuples of one chunk at a time
            part = np.empty((len(rows), width), dtype=object)
            part[:] = rows
            chunks.append(part)
        data = np.concatenate(chunks) if chunks else np.empty((0, width), dtype=object)
    df = pd.DataFrame({c: data[:, i] for i, c in enumerate(cols)})
    if spec.geometry:
        geoms = _wkb(data[:, len(cols)])
        df = gpd.GeoDataFrame(df, geometry=geoms, crs=schema.STORAGE_CRS)
        if bbox is not None:
            df = df[shapely.intersects(geoms, shapely.box(*bbox))]
    return finish(spec.name, df, columns)


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector (it would scan every new row object)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _drop(con: sqlite3.Connection, name: str) -> None:
    con.execute(f"DROP TABLE IF EXISTS {_q(f'rtree_{name}_{GEOM}')}")
    con.execute(f"DROP TABLE IF EXISTS {_q(name)}")
    for meta in ("gpkg_geometry_columns", "gpkg_extensions", "gpkg_contents"):
        con.execute(f"DELETE FROM {meta} WHERE table_name = ?", (name,))
    if con.execute(
        "SELECT 1 FROM sqlite_master WHERE name = 'gpkg_ogr_contents'"
    ).fetchone():  # GDAL's feature-count cache, in files GDAL wrote
        con.execute("DELETE FROM gpkg_ogr_contents WHERE table_name = ?", (name,))


def _replace(con: sqlite3.Connection, spec: schema.Layer, df: pd.DataFrame) -> None:
    """Rebuild a layer inside the open transaction: table, rows, key index, R-tree."""
    name = spec.name
    _drop(con, name)
    defs = ["fid INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL"]
    if spec.geometry:
        defs.append(f"{_q(GEOM)} {spec.geometry.upper()}")
    defs += [
        f"{_q(f.name)} {_SQL_TYPES[f.kind]}{'' if f.nullable else ' NOT NULL'}" for f in spec.fields
    ]
    con.execute(f"CREATE TABLE {_q(name)} ({', '.join(defs)})")
    _insert_rows(con, spec, df)
    key = ", ".join(map(_q, spec.key))
    con.execute(f"CREATE UNIQUE INDEX {_q(f'ux_{name}_key')} ON {_q(name)} ({key})")
    for i, cols in enumerate(spec.indexes):
        con.execute(
            f"CREATE INDEX {_q(f'ix_{name}_{i}')} ON {_q(name)} ({', '.join(map(_q, cols))})"
        )
    stamp = now()
    if spec.geometry is None:
        con.execute(
            "INSERT INTO gpkg_contents (table_name, data_type, identifier, last_change) "
            "VALUES (?, 'attributes', ?, ?)",
            (name, name, stamp),
        )
        return
    bounds = shapely.bounds(df.geometry.values) if len(df) else np.empty((0, 4))
    ok = np.isfinite(bounds).all(axis=1)
    ext = (
        [float(v) for v in (*bounds[ok, :2].min(axis=0), *bounds[ok, 2:].max(axis=0))]
        if ok.any()
        else [None] * 4
    )
    con.execute(
        "INSERT INTO gpkg_contents (table_name, data_type, identifier, last_change, min_x, "
        "min_y, max_x, max_y, srs_id) VALUES (?, 'features', ?, ?, ?, ?, ?, ?, 4326)",
        (name, name, stamp, *ext),
    )
    con.execute(
        "INSERT INTO gpkg_geometry_columns VALUES (?, ?, ?, 4326, 0, 0)",
        (name, GEOM, spec.geometry.upper()),
    )
    rtree = _q(f"rtree_{name}_{GEOM}")
    con.execute(f"CREATE VIRTUAL TABLE {rtree} USING rtree(id, minx, maxx, miny, maxy)")
    # the index is packed in bulk (row-by-row inserts would take seconds per 100,000 rows)
    rtree_load(con, f"rtree_{name}_{GEOM}", np.arange(1, len(df) + 1)[ok], bounds[ok])
    for trigger in _rtree_triggers(name):
        con.execute(trigger)
    con.execute(
        "INSERT INTO gpkg_extensions VALUES (?, ?, 'gpkg_rtree_index', "
        "'http://www.geopackage.org/spec120/#extension_rtree', 'write-only')",
        (name, GEOM),
    )


def _wal(con: sqlite3.Connection) -> None:
    """Switch the file to WAL mode (it stays so; a no-op when it is)."""
    if con.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
        con.execute("PRAGMA journal_mode=WAL")


def _init(con: sqlite3.Connection) -> None:
    """Make the file a GeoPackage (a new file, or one GDAL wrote before), inside the
    transaction that writes it first.
    """
    if con.execute("PRAGMA application_id").fetchone()[0] == 0:
        con.execute("PRAGMA application_id = 1196444487")  # 'GPKG'
        con.execute("PRAGMA user_version = 10300")
    for stmt in _CORE:
        con.execute(stmt)
    if "at" not in _table_columns(con, _VERSIONS):  # a file of an earlier gridgis
        con.execute(f"ALTER TABLE {_VERSIONS} ADD COLUMN at TEXT")
    con.executemany("INSERT OR IGNORE INTO gpkg_spatial_ref_sys VALUES (?, ?, ?, ?, ?, ?)", _SRS)


class GeoPackageStore(Store):
    """The embedded store: one ``.gpkg`` file (opens in QGIS as it is)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.url = str(self.path)

    def __repr__(self) -> str:
        return f"GeoPackageStore({self.url!r})"

    # -- connections ---------------------------------------------------------------------
    def _connect(self, wait: float = 30.0) -> sqlite3.Connection:
        con = sqlite3.connect(
            self.path, timeout=wait, isolation_level=None, check_same_thread=False
        )
        con.execute("PRAGMA synchronous=FULL")  # a commit survives a crash of the machine
        _register_functions(con)
        return con

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection | None]:
        """A connection in one read transaction (``None`` when there is no file yet)."""
        if not self.path.exists():
            yield None
            return
        with contextlib.closing(self._connect()) as con:
            con.execute("BEGIN")
            try:
                yield con
            finally:
                con.execute("COMMIT")

    def names(self) -> set[str]:
        """The gridgis layers in the file (from ``gpkg_contents``)."""
        with self._reading() as con:
            return set() if con is None else _names(con)

    def versions(self) -> dict[str, int]:
        """Layer → write counter (from the file's ``gridgis_versions`` table)."""
        with self._reading() as con:
            if con is None:
                return {}
            try:
                return {r[0]: int(r[1]) for r in con.execute(f"SELECT layer, v FROM {_VERSIONS}")}
            except sqlite3.OperationalError:  # a GeoPackage gridgis has not written yet
                return {"*": self.path.stat().st_mtime_ns}

    def count_requests(self, taken: Mapping[str, int], rate: float, burst: int) -> dict[str, float]:
        """See :meth:`Store.count_requests` (a table beside the layers; a writer busy for
        longer than a fifth of a second leaves the counts for the next time: an error).
        """
        now = "((julianday('now') - 2440587.5) * 86400.0)"
        with contextlib.closing(self._connect(wait=0.2)) as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                con.execute(_BUCKETS)
                con.executemany(
                    f"INSERT INTO gridgis_buckets (who, tokens, at) VALUES (?, ? - ?, {now}) "
                    f"ON CONFLICT (who) DO UPDATE SET tokens = min(?, tokens + ({now} - at) * ?) "
                    f"- ?, at = {now}",
                    [(w, burst, n, burst, rate, n) for w, n in taken.items()],
                )
                marks = ",".join("?" * len(taken))
                rows = con.execute(
                    f"SELECT who, tokens FROM gridgis_buckets WHERE who IN ({marks})", list(taken)
                ).fetchall()
                con.execute(f"DELETE FROM gridgis_buckets WHERE at < {now} - 3600")
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return {str(w): float(t) for w, t in rows}

    def stamps(self) -> dict[str, tuple[int, datetime | None]]:
        """Layer → (write counter, time of the last write)."""
        with self._reading() as con:
            if con is None:
                return {}
            try:
                rows = con.execute(f"SELECT layer, v, at FROM {_VERSIONS}").fetchall()
            except sqlite3.OperationalError:  # no table, or a file of an earlier gridgis
                return {n: (v, None) for n, v in self.versions().items()}
        return {r[0]: (int(r[1]), datetime.fromisoformat(r[2]) if r[2] else None) for r in rows}

    def layers(self) -> dict[str, int]:
        """Layer name → row count."""
        with self._reading() as con:
            if con is None:
                return {}
            names = _names(con)
            return {
                n: con.execute(f"SELECT count(*) FROM {_q(n)}").fetchone()[0]
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
        """Read a layer (bbox via the GeoPackage R-tree)."""
        spec = self._spec(name)
        with self._reading() as con:
            if con is None or name not in _names(con):
                raise self._missing(name, _names(con) if con is not None else ())
            return _read(con, spec, bbox if spec.geometry else None, where, columns)

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Tx]:
        """A read-only transaction over one committed state of the file."""
        with self._reading() as con:
            if con is None:
                yield _EmptyTx(self)
            else:
                yield _GpkgTx(self, con)

    @contextlib.contextmanager
    def transaction(self, *, lock: Iterable[str] = (), wait: float | None = None) -> Iterator[Tx]:
        """``BEGIN IMMEDIATE`` on the file: the one writer lock, held to the commit."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        wait = DEFAULT_WAIT if wait is None else wait
        started = time.monotonic()
        new = not self.path.exists() or self.path.stat().st_size == 0
        con = self._connect(wait)
        committed = False
        try:
            try:
                _wal(con)
                con.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if "locked" in str(exc) or "busy" in str(exc):
                    raise StoreBusyError(
                        f"{self.url} is being written by another process or request; gave up "
                        f"after {time.monotonic() - started:.0f} s, try again"
                    ) from None
                raise StoreError(f"cannot write {self.url}: {exc}") from None
            tx = _GpkgTx(self, con)
            try:
                _init(con)
                yield tx
                tx.bump()
                con.execute("COMMIT")
                committed = True
            except BaseException:
                con.execute("ROLLBACK")
                raise
        finally:
            con.close()
            if new and not committed:  # a first write that failed leaves no file behind
                for p in (
                    self.path,
                    *(self.path.with_name(self.path.name + x) for x in ("-wal", "-shm")),
                ):
                    p.unlink(missing_ok=True)
        self._sweep()

    def _sweep(self) -> None:
        """Remove temporary copies that writers of earlier gridgis versions (which wrote a
        copy and swapped it in) left behind when they were killed.
        """
        for leftover in self.path.parent.glob(f".{self.path.stem}.*.tmp.gpkg"):
            leftover.unlink(missing_ok=True)

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
        """Filter and page in SQLite (bbox: the R-tree, then the exact test on the
        candidates only); a CQL2 filter is evaluated on the bbox/attribute candidates.
        """
        spec = self._spec(name)
        with self._reading() as con:
            if con is None or name not in _names(con):
                raise self._missing(name, _names(con) if con is not None else ())
            if cql is False:  # a constant filter that no feature passes
                return Page(name, [], [], 0)
            if cql is not None and cql is not True:
                return _page_cql(con, spec, bbox, where, limit, offset, cql, sortby)
            return _page(con, spec, bbox, where, limit, offset, sortby)


class _EmptyTx(Tx):
    """The snapshot of a store that has no file yet."""

    def __init__(self, store: GeoPackageStore) -> None:
        self.store = store

    def names(self) -> set[str]:
        return set()

    def read(self, name: str, **_kw: Any) -> pd.DataFrame:
        raise self.store._missing(name, ())

    def _replace(self, name: str, df: pd.DataFrame) -> None:
        raise StoreError("a snapshot is read-only")

    insert = update = delete = delete_prefix = _replace  # type: ignore[assignment]


def _page(
    con: sqlite3.Connection,
    spec: schema.Layer,
    bbox: BBox | None,
    where: Where | None,
    limit: int,
    offset: int,
    sortby: Sequence[tuple[str, bool]] = (),
) -> Page:
    name = spec.name
    sql, params = _conditions(spec, where, bbox)
    order = ", ".join(
        [*(_q(spec.field(c).name) + (" DESC" if d else "") for c, d in sortby), *map(_q, spec.key)]
    )
    if bbox is not None and spec.geometry:
        x0, y0, x1, y1 = (float(v) for v in bbox)
        rows = con.execute(
            f"SELECT fid, {_q(GEOM)} FROM {_q(name)} WHERE {' AND '.join(sql)} ORDER BY {order}",
            params,
        ).fetchall()
        hit = shapely.intersects(_wkb([r[1] for r in rows]), shapely.box(x0, y0, x1, y1))
        fids = [r[0] for r, h in zip(rows, hit, strict=True) if h]
        matched, fids = len(fids), fids[offset : offset + limit]
    else:
        cond = " AND ".join(sql) or "1"
        matched = int(
            con.execute(f"SELECT count(*) FROM {_q(name)} WHERE {cond}", params).fetchone()[0]
        )
        fids = [
            r[0]
            for r in con.execute(
                f"SELECT fid FROM {_q(name)} WHERE {cond} ORDER BY {order} LIMIT ? OFFSET ?",
                [*params, int(limit), int(offset)],
            )
        ]
    present = set(_table_columns(con, name))
    cols = spec.columns
    select = ", ".join(_q(c) if c in present else "NULL" for c in cols)
    got: dict[int, tuple] = {}
    if fids:
        geom = f", {_q(GEOM)}" if spec.geometry else ""
        marks = ", ".join("?" * len(fids))
        for r in con.execute(
            f"SELECT fid, {select}{geom} FROM {_q(name)} WHERE fid IN ({marks})", fids
        ):
            got[r[0]] = r[1:]
    bools = [i for i, f in enumerate(spec.fields) if f.kind == "bool"]
    rows_out, geometry = [], []
    for fid in fids:
        r = list(got[fid])
        for i in bools:
            r[i] = None if r[i] is None else bool(r[i])
        rows_out.append(dict(zip(cols, r[: len(cols)], strict=True)))
        if spec.geometry:
            blob = r[len(cols)]
            geometry.append(None if blob is None else shapely.to_geojson(_wkb([blob])[0]))
    return Page(name, rows_out, geometry if spec.geometry else [None] * len(fids), matched)


def _page_cql(
    con: sqlite3.Connection,
    spec: schema.Layer,
    bbox: BBox | None,
    where: Where | None,
    limit: int,
    offset: int,
    cql: Any,
    sortby: Sequence[tuple[str, bool]] = (),
) -> Page:
    from pygeofilter.backends.geopandas.evaluate import to_filter

    df = _read(con, spec, bbox if spec.geometry else None, where, None)
    if len(df):
        fields = {c: c for c in spec.columns} | {"geometry": "geometry"}
        mask = to_filter(df, cql, fields)
        # a constant predicate (1=1, FALSE) evaluates to one boolean for the whole frame
        mask = np.broadcast_to(np.asarray(mask, dtype=bool), (len(df),))
        df = df[mask]
    by = [spec.field(c).name for c, _ in sortby] + list(spec.key)
    df = df.sort_values(by, ascending=[not d for _, d in sortby] + [True] * len(spec.key))
    matched, df = len(df), df.iloc[offset : offset + limit]
    rows = df[spec.columns].astype(object).where(df[spec.columns].notna(), None)
    geometry: list[str | None] = (
        [None if g is None else str(shapely.to_geojson(g)) for g in df.geometry.values]
        if spec.geometry
        else [None] * len(df)
    )
    return Page(spec.name, rows.to_dict("records"), geometry, matched)
