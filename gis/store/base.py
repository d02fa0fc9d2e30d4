"""What every store does: read, page, and write inside one transaction with its audit row.

A write is a :class:`Tx` opened by :meth:`Store.transaction`. The transaction holds the
store's write lock on the layers it names from its first read to its commit, so what a
workflow read is still what it replaces when it commits (no lost update); everything written
through it — whole layers, row edits, the audit row — commits together or not at all.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

import geopandas as gpd
import shapely

from gis import schema
from gis.errors import LayerNotFoundError, ValidationError

BBox = tuple[float, float, float, float]
Where = Mapping[str, Any]
GEOM = "geom"
#: how long a write waits for another writer's lock before giving up (seconds)
DEFAULT_WAIT = 600.0


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


TIMEZONE = ZoneInfo("Asia/Shanghai")
_POINTS_LOCK = threading.Lock()


def now() -> str:
    """The time of a write in China Standard Time, with its offset (audit rows, scenarios,
    settings, keys): one convention whichever door the write came through.
    """
    return datetime.now(TIMEZONE).isoformat(timespec="seconds")


def prefix_end(prefix: str) -> str:
    """The first text after every text that starts with ``prefix`` (a range's end)."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def audit_record(who: str, action: str, target: str, detail: str | None) -> dict[str, Any]:
    """One row of the ``audit`` layer, as a dict."""
    return {"id": uuid.uuid4().hex, "at": now(), "who": who, "action": action,
            "target": str(target), "detail": detail}  # fmt: skip


def audit_row(who: str, action: str, target: str, detail: str | None) -> pd.DataFrame:
    """One row of the ``audit`` layer, as a frame."""
    return pd.DataFrame([audit_record(who, action, target, detail)])


class Tx(ABC):
    """A write transaction: reads see the transaction's own writes; nothing is visible to
    others, and nothing stays, unless the whole block ends without an error.
    """

    @abstractmethod
    def names(self) -> set[str]:
        """The gridgis layers the store holds, as this transaction sees it."""

    def has(self, name: str) -> bool:
        """Whether the store holds layer ``name``."""
        return name in self.names()

    @abstractmethod
    def read(
        self, name: str, *, where: Where | None = None, columns: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """A layer (or the rows meeting ``where``), as of this transaction."""

    def read_optional(self, name: str) -> pd.DataFrame | None:
        """A layer, or ``None`` when the store does not hold it."""
        return self.read(name) if self.has(name) else None

    def write(self, layers: Mapping[str, pd.DataFrame]) -> None:
        """Replace whole layers (validated first; one problem list for all of them)."""
        frames = _checked(layers)
        for name, df in frames.items():
            self._replace(name, df)

    @abstractmethod
    def _replace(self, name: str, df: pd.DataFrame) -> None: ...

    @abstractmethod
    def insert(self, name: str, rows: pd.DataFrame) -> None:
        """Add rows (a duplicate key fails the transaction); creates the layer if new."""

    @abstractmethod
    def update(self, name: str, key: Any, values: Mapping[str, Any]) -> None:
        """Change columns (and ``geometry``) of the row whose key is ``key``."""

    @abstractmethod
    def delete(self, name: str, keys: Sequence[Any]) -> int:
        """Delete rows by key; returns how many went."""

    @abstractmethod
    def delete_prefix(self, name: str, column: str, prefix: str) -> int:
        """Delete the rows whose ``column`` (text) starts with ``prefix`` (a county's rows
        by their codes, through the column's index); returns how many went, 0 when the
        layer is absent.
        """

    def audit(self, who: str, action: str, target: str, detail: str | None = None) -> None:
        """Record this transaction's change: who, when, what (committed with it)."""
        self.add("audit", [audit_record(who, action, target, detail)])

    # -- the row path: a few rows as dicts, no frames (work orders, audit rows) ----------
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
        """The rows meeting ``where`` (and ``column < value`` for each of ``below``,
        ``column > value`` for each of ``above``; at most ``limit``, in key order) as
        dicts (``geometry`` a shapely geometry); with ``for_update``, locked until this
        transaction ends (PostGIS: ``FOR UPDATE``; the GeoPackage has one writer at a time
        anyway); ``columns``: only these (and the key), no geometry; ``last``: only the
        row with the highest key. ``[]`` when the layer is absent.
        """
        if not self.has(name):
            return []
        df = self.read(name, where=where)
        for col, value in (below or {}).items():
            df = df[df[col].notna() & (df[col] < value)]
        for col, value in (above or {}).items():
            df = df[df[col].notna() & (df[col] > value)]
        df = df.sort_values(list(schema.layer(name).key))
        if last:
            df = df.tail(1)
        out = _records(df if limit is None else df.head(limit))
        if columns is not None:
            keep = set(columns) | set(schema.layer(name).key)
            out = [{k: v for k, v in r.items() if k in keep} for r in out]
        return out

    def update_many(self, name: str, changes: Sequence[tuple[Any, Mapping[str, Any]]]) -> None:
        """Change several rows: ``(key, values)`` pairs (the same columns in each)."""
        for key, values in changes:
            self.update(name, key, values)

    def add(self, name: str, records: Sequence[Mapping[str, Any]]) -> None:
        """Add a few rows given as dicts (checked by :func:`gis.schema.check_records`)."""
        spec = schema.layer(name)
        rows = schema.check_records(name, records)
        df = pd.DataFrame([{k: v for k, v in r.items() if k != "geometry"} for r in rows])
        if spec.geometry:
            df = gpd.GeoDataFrame(
                df, geometry=[r["geometry"] for r in rows], crs=schema.STORAGE_CRS
            )
        self.insert(name, schema.conform(name, df))

    def will_write(self, *names: str) -> None:
        """Rows of layers ``names`` will be written: take what they need at once (PostGIS:
        their shared locks, in one statement; here nothing, the file has one writer).
        """
        return None

    def lock_key(self, key: str) -> None:
        """Hold a lock on ``key`` (any text) until this transaction ends: two writers of
        the same key (an external id) take turns (the GeoPackage has one writer anyway).
        """
        return None

    def append(self, name: str, records: Sequence[Mapping[str, Any]]) -> None:
        """Add rows to a journal (:attr:`gis.schema.Layer.journal`), numbering their key
        after every number taken before. Numbers only grow; a reader in
        :meth:`Store.settled` that reads the numbers above its cursor never misses a row
        that commits later with a lower number.

        Here (the GeoPackage: one writer at a time, so rows commit in the order they are
        numbered) the next number is one past the highest.
        """
        key = schema.layer(name).key[0]
        last = self.rows(name, {}, columns=[key], last=True)
        first = int(last[0][key]) + 1 if last else 1
        self.add(name, [{**r, key: first + i} for i, r in enumerate(records)])


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for r in df.to_dict("records"):
        out.append({k: (None if schema.missing(v) else v) for k, v in r.items()})
    return out


def _checked(layers: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    found: list[str] = []
    frames: dict[str, pd.DataFrame] = {}
    for name, df in layers.items():
        try:
            frames[name] = schema.check(name, df)
        except ValidationError as exc:
            found.extend(f"{name}: {p}" for p in exc.problems)
    if found:
        raise ValidationError("store write", found)
    return frames


class Store(ABC):
    """What every store does; see the module docstring for the guarantees."""

    url: str

    @abstractmethod
    def layers(self) -> dict[str, int]:
        """Layer name → row count, for the gridgis layers the store holds."""

    def has(self, name: str) -> bool:
        """Whether the store holds layer ``name``."""
        return name in self.names()

    @abstractmethod
    def names(self) -> set[str]:
        """The gridgis layers the store holds (cheap: no row counts)."""

    @abstractmethod
    def versions(self) -> dict[str, int]:
        """Layer → a counter every write of that layer raises (cheap to ask)."""

    def stamps(self) -> dict[str, tuple[int, datetime | None]]:
        """Layer → (write counter, time of its last write, when the store keeps it)."""
        return {n: (v, None) for n, v in self.versions().items()}

    def version(self) -> Any:
        """A value that changes whenever the store's content does."""
        return sum(self.versions().values())

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

    def read_many(self, names: Iterable[str]) -> dict[str, pd.DataFrame]:
        """The layers of ``names`` the store holds, read in one snapshot."""
        with self.snapshot() as tx:
            return {n: tx.read(n) for n in names if tx.has(n)}

    @abstractmethod
    def snapshot(self) -> contextlib.AbstractContextManager[Tx]:
        """A read-only transaction: every read in it sees the same committed state."""

    def tile(
        self,
        name: str,
        tms_id: str,
        z: int,
        x: int,
        y: int,
        *,
        where: Where | None = None,
        columns: Sequence[str] | None = None,
        extra: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> bytes:
        """The vector tile (MVT, one layer called ``name``) of a layer at ``z/x/y`` of
        tile matrix set ``tms_id``, with ``columns`` as properties (default all) and, by
        key, the properties of ``extra`` (a grid's worker and covered shares: at least
        those of the features in the tile); ``b""`` when no feature is in it;
        :class:`gis.tiles.OutsideMatrix` for a tile not in the set. Here with the Python
        encoder (:func:`gis.tiles.encode`).
        """
        from gis import tiles

        spec = schema.layer(name)
        tiles.bounds(tms_id, z, x, y)  # OutsideMatrix for a tile not in the set
        if not spec.geometry:
            raise ValidationError(f"tiles of {name}", [f"{name} has no geometry"])
        cols = [c for c in spec.columns if columns is None or c in set(columns)]
        return self._tile(name, tms_id, (z, x, y), where, cols, extra)

    def _tile(
        self,
        name: str,
        tms_id: str,
        zxy: tuple[int, int, int],
        where: Where | None,
        cols: list[str],
        extra: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> bytes:
        """A checked :meth:`tile` request, encoded."""
        from gis import tiles

        xy, _ = tiles.bounds(tms_id, *zxy)
        sums = tiles.aggregated(name, zxy[0], cols)
        if sums is not None:  # too many points to send one by one: per cell (gis.tiles)
            ll, frame = self._points(name)
            box = tiles.lonlat_with_buffer(tms_id, *zxy)
            sel = np.flatnonzero(
                (ll[:, 0] >= box[0])
                & (ll[:, 0] <= box[2])
                & (ll[:, 1] >= box[1])
                & (ll[:, 1] <= box[3])
            )
            for col, values in check_where(schema.layer(name), where).items():
                sel = sel[np.isin(frame[col][sel], values)]  # the tile's points, not the city's
            group = frame[tiles.GROUP][sel] if tiles.GROUP in cols else np.full(len(sel), None)
            counts = {c: frame[c][sel] for c in sums}
            return tiles.encode_cells(name, ll[sel], group, counts, tms_id, zxy)
        # the tile's columns only: a read of every column was most of a tile's time
        need = sorted(set(cols) | set(where or {}) | set(schema.layer(name).key))
        df = self.read(name, bbox=tiles.lonlat_with_buffer(tms_id, *zxy), where=where, columns=need)
        rows = df[cols].to_dict("records")
        if extra:
            key = schema.layer(name).key[0]
            rows = [{**r, **extra.get(str(k), {})} for r, k in zip(rows, df[key], strict=True)]
        return tiles.encode(name, rows, df.geometry.values, xy)

    def close(self) -> None:
        """Let go of the store's connections (PostGIS: its pool); the store may be used
        again after (it reconnects).
        """
        return None

    def count_requests(self, taken: Mapping[str, int], rate: float, burst: int) -> dict[str, float]:
        """The rate limit's buckets shared by server processes (``serve --workers``): for
        each caller, refill its bucket (``rate`` a second, at most ``burst``), take the
        requests a process let through since it last asked, and return what is left.
        """
        raise NotImplementedError(f"{type(self).__name__} keeps no request counters")

    def warm(self) -> None:
        """Read ahead what tiles need (here the points of :data:`gis.tiles.AGGREGATED`
        layers); errors are left to the request that meets them.
        """
        from gis import tiles

        for name in tiles.AGGREGATED:
            try:
                if self.has(name):
                    self._points(name)
            except Exception:  # noqa: BLE001 — a store that cannot be read now says so later
                return

    def _points(self, name: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The points (lon/lat, an ``(n, 2)`` array) of an aggregated layer
        (:data:`gis.tiles.AGGREGATED`) with its community and counts as arrays, read once per version of the layer: a tile at city
        zoom spans most of the city, and reading it from the file each time was seconds
        per tile (PostGIS aggregates in SQL instead).
        """
        from gis import tiles

        v = self.versions()
        version = (v.get(name), v.get("*"))
        with _POINTS_LOCK:
            cache: dict[str, Any] = self.__dict__.setdefault("_point_cache", {})
            hit = cache.get(name)
            if hit is not None and hit[0] == version:
                return hit[1], hit[2]
            cols = [tiles.GROUP, *tiles.AGGREGATED[name]]
            df = self.read(name, columns=cols)
            frame = {tiles.GROUP: df[tiles.GROUP].to_numpy(dtype=object)}
            frame |= {c: pd.to_numeric(df[c]).fillna(0).to_numpy(dtype=float) for c in cols[1:]}
            ll = shapely.get_coordinates(df.geometry.values)
            cache[name] = (version, ll, frame)
            return ll, frame

    def settled(self, journal: str) -> contextlib.AbstractContextManager[Tx]:
        """A read of ``journal`` (see :meth:`Tx.append`) that sees every row numbered up to
        the highest it sees: none with a lower number can commit afterwards. Here a
        :meth:`snapshot` (writers commit one at a time, in number order).
        """
        schema.layer(journal)
        return self.snapshot()

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
        sortby: Sequence[tuple[str, bool]] = (),
    ) -> Page:
        """One page of a layer in key order (``sortby``: ``(column, descending)`` pairs
        first), and how many rows match in all.

        ``bbox`` and ``where`` as in :meth:`read`; ``cql`` a parsed CQL2 filter (a
        pygeofilter AST over the layer's columns and ``geometry``), or ``True`` (all) or
        ``False`` (none) for a constant one.
        """

    @abstractmethod
    def transaction(
        self, *, lock: Iterable[str] = (), wait: float | None = None
    ) -> contextlib.AbstractContextManager[Tx]:
        """A write transaction holding the write lock on ``lock`` (layer names) from now
        to its commit; ``wait`` seconds for another writer's lock (default
        :data:`DEFAULT_WAIT`), then :class:`~gis.errors.StoreBusyError`.
        """

    # -- one-step conveniences, each its own transaction ---------------------------------
    def write(self, layers: Mapping[str, pd.DataFrame]) -> None:
        """Replace whole layers, all of them in one atomic step; validates every frame first."""
        frames = _checked(layers)
        if frames:
            with self.transaction(lock=frames) as tx:
                for name, df in frames.items():
                    tx._replace(name, df)

    def insert(self, name: str, rows: pd.DataFrame) -> None:
        """Add rows to a layer in one transaction (fails whole on a duplicate key)."""
        with self.transaction() as tx:
            if not tx.has(name):
                raise self._missing(name, tx.names())
            tx.insert(name, rows)

    def update(self, name: str, key: Any, values: Mapping[str, Any]) -> None:
        """Change columns (and ``geometry``) of the row whose key is ``key``."""
        with self.transaction() as tx:
            tx.update(name, key, values)

    def delete(self, name: str, keys: Sequence[Any]) -> int:
        """Delete rows by key in one transaction; returns how many went."""
        with self.transaction() as tx:
            return tx.delete(name, keys)

    # -- shared helpers ------------------------------------------------------------------
    def _spec(self, name: str) -> schema.Layer:
        return schema.layer(name)

    def _missing(self, name: str, held: Iterable[str] | None = None) -> LayerNotFoundError:
        held = sorted(held if held is not None else self.names())
        return LayerNotFoundError(
            f"the store {self.url} holds no layer {name!r} yet; import or build it first "
            f"(it holds: {', '.join(held) or 'nothing'})"
        )


def check_where(spec: schema.Layer, where: Where | None) -> dict[str, list[Any]]:
    """``where`` with every value cast to its column's kind (one clear error otherwise)."""
    out: dict[str, list[Any]] = {}
    for col, value in (where or {}).items():
        f = spec.field(col)
        values = list(value) if isinstance(value, list | tuple | set | np.ndarray) else [value]
        cast = schema.CASTS[f.kind]
        try:
            out[col] = [cast(v) for v in values]
        except (TypeError, ValueError):
            raise ValidationError(
                f"filter on {spec.name}", [f"{col}: {value!r} is not a {f.kind}"]
            ) from None
    return out


def finish(name: str, df: pd.DataFrame, columns: Sequence[str] | None) -> pd.DataFrame:
    """A frame as read, conformed to the layer and cut to ``columns`` (key and geometry kept)."""
    df = schema.conform(name, df)
    if columns is not None:
        spec = schema.layer(name)
        keep = list(dict.fromkeys([*spec.key, *columns]))
        for c in keep:
            spec.field(c)
        if spec.geometry:
            keep.append("geometry")
        df = df[keep]
    return df


def update_values(spec: schema.Layer, values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` checked against the layer's columns (``geometry`` allowed for layers
    with one); an empty update is an error.
    """
    out: dict[str, Any] = {}
    for col, value in values.items():
        if col == "geometry" and spec.geometry:
            out[col] = value
        else:
            spec.field(col)
            out[col] = value
    if not out:
        raise ValidationError(f"update of {spec.name}", ["no columns to update"])
    return out
