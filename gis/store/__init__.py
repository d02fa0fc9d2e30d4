"""Stores: one interface over an embedded GeoPackage file and a PostGIS server.

Both keep the layers of :mod:`gis.schema` in EPSG:4326 under the same names and columns
(geometry column ``geom``; a unique index or primary key on each layer's key), and both
write only inside transactions (:meth:`Store.transaction`): whole layers, row edits and the
audit row of one change commit together or not at all, under a write lock held from the
reads the change depends on to its commit.
"""

import os

from gis.errors import StoreError
from gis.store.base import DEFAULT_WAIT, BBox, Page, Store, Tx, Where, audit_row, now
from gis.store.gpkg import GeoPackageStore
from gis.store.postgis import PostGISStore


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


__all__ = [
    "DEFAULT_WAIT",
    "BBox",
    "GeoPackageStore",
    "Page",
    "PostGISStore",
    "Store",
    "Tx",
    "Where",
    "audit_row",
    "now",
    "open_store",
]
