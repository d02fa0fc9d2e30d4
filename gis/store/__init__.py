"""Stores: one interface over an embedded GeoPackage file and a PostGIS server.

Both keep the layers of :mod:`gis.schema` in EPSG:4326 under the same names and columns
(geometry column ``geom``; a unique index or primary key on each layer's key), and both
write only inside transactions (:meth:`Store.transaction`): whole layers, row edits and the
audit row of one change commit together or not at all, under a write lock held from the
reads the change depends on to its commit.
"""

from gis.store.base import DEFAULT_WAIT, BBox, Page, Store, Tx, Where, audit_row, now, open_store
from gis.store.gpkg import GeoPackageStore
from gis.store.postgis import PostGISStore

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
