"""Writing layers to files: GeoJSON, GeoPackage, Shapefile, CSV and XLSX (by extension)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

import geopandas as gpd
import pyogrio
import shapely

from gis import crs as gcrs
from gis import schema
from gis.errors import InputFileError

FORMATS = {".geojson": "GeoJSON", ".json": "GeoJSON", ".gpkg": "GPKG", ".shp": "ESRI Shapefile"}


def to_table(df: pd.DataFrame) -> pd.DataFrame:
    """A layer as a plain table: points as ``lon``/``lat``, other geometry as ``wkt``."""
    if not isinstance(df, gpd.GeoDataFrame):
        return pd.DataFrame(df)
    out = pd.DataFrame(df.drop(columns=df.geometry.name))
    geoms = df.geometry.values
    if len(df) and (shapely.get_type_id(geoms) == 0).all():
        out["lon"] = shapely.get_x(geoms)
        out["lat"] = shapely.get_y(geoms)
    else:
        out["wkt"] = shapely.to_wkt(geoms, rounding_precision=-1)
    return out


def write(
    df: pd.DataFrame, path: str | os.PathLike[str], *, layer: str, system: str = "wgs84"
) -> int:
    """Write one layer to ``path``; returns the number of rows written.

    The file is written next to its destination and moved into place, so a failure leaves
    no half-written file.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if isinstance(df, gpd.GeoDataFrame) and gcrs.check_system(system) not in ("wgs84", "cgcs2000"):
        df = df.set_geometry(gcrs.from_wgs84(df.geometry, system))
    if suffix not in (*FORMATS, ".csv", ".xlsx"):
        raise InputFileError(
            f"{p}: unsupported export format {suffix or '(none)'}; use .geojson, .gpkg, .shp, .csv or .xlsx"
        )
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.stem}.partial{suffix}")
    try:
        if suffix == ".csv":
            to_table(df).to_csv(tmp, index=False, encoding="utf-8-sig")
        elif suffix == ".xlsx":
            to_table(df).to_excel(tmp, index=False, sheet_name=layer[:31])
        else:
            opts: dict[str, Any] = {}
            spec = schema.layer(layer)
            if spec.geometry and suffix == ".gpkg":
                opts["geometry_type"] = spec.geometry
            if suffix == ".shp":
                opts["encoding"] = "UTF-8"
            with warnings.catch_warnings():
                # Shapefile cuts field names to 10 characters; gis.io restores them on import
                warnings.filterwarnings("ignore", "Normalized/laundered field name", RuntimeWarning)
                pyogrio.write_dataframe(df, tmp, layer=layer, driver=FORMATS[suffix], **opts)
        if suffix == ".shp":
            for side in tmp.parent.glob(f"{tmp.stem}.*"):
                os.replace(side, p.with_suffix(side.suffix))
        else:
            os.replace(tmp, p)
    finally:
        for side in tmp.parent.glob(f"{tmp.stem}.*"):
            side.unlink(missing_ok=True)
    return len(df)


def write_layers(layers: dict[str, pd.DataFrame], path: str | os.PathLike[str]) -> None:
    """Write several layers into one new GeoPackage, moved into place when all are written."""
    p = Path(path)
    if p.suffix.lower() != ".gpkg":
        raise InputFileError(f"{p}: several layers need a .gpkg file")
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.stem}.partial.gpkg")
    tmp.unlink(missing_ok=True)
    try:
        for name, df in layers.items():
            pyogrio.write_dataframe(df, tmp, layer=name, driver="GPKG")
        os.replace(tmp, p)
    finally:
        tmp.unlink(missing_ok=True)


__all__ = ["write", "write_layers", "to_table"]
