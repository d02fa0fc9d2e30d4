"""Reading user data: files in, validated layers in EPSG:4326 out.

Formats: GeoJSON, GeoPackage, Shapefile (UTF-8 or GBK attribute tables), CSV and XLSX
(points from ``lon``/``lat`` columns). Coordinates: WGS84 / CGCS2000 or, for data
digitised on Chinese web maps, GCJ-02 and BD-09 (converted here). Every problem of an input
is collected into one :class:`~gis.errors.ValidationError` that names the row or feature;
nothing is returned, so nothing is written, unless every input is clean.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import geopandas as gpd
import pyogrio
import shapely

from gis import crs as gcrs
from gis import schema
from gis.errors import InputFileError, ValidationError

VECTOR_SUFFIXES = {".geojson", ".json", ".gpkg", ".shp", ".zip", ".fgb"}
TABLE_SUFFIXES = {".csv", ".xlsx", ".xls"}
INPUT_LAYERS = ("communities", "buildings", "facilities", "workers", "roads")


@dataclass
class RawInput:
    """A file as read, before validation, with a label for each of its rows."""

    path: Path
    frame: pd.DataFrame
    labels: pd.Series
    problems: list[str] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)
    footprints: pd.Series | None = None  # row position → footprint, for buildings given so


def _detect_dbf_encoding(shp: Path) -> str | None:
    """Encoding of a shapefile's attribute table when no ``.cpg`` says it.

    GDAL falls back to ISO-8859-1 when neither a ``.cpg`` file nor the DBF language byte
    names the encoding, which turns GBK-encoded Chinese names (common in Chinese data) into
    mojibake. Here the raw DBF records are tried as UTF-8 and then GB18030 (a superset of
    GBK).
    """
    if shp.with_suffix(".cpg").exists() or shp.with_suffix(".CPG").exists():
        return None
    dbf = next((p for p in (shp.with_suffix(".dbf"), shp.with_suffix(".DBF")) if p.exists()), None)
    if dbf is None:
        return None
    raw = dbf.read_bytes()
    header_len = int.from_bytes(raw[8:10], "little") if len(raw) > 10 else 0
    body = raw[header_len:]
    if not any(b > 0x7F for b in body):
        return None
    for enc in ("utf-8", "gb18030"):
        try:
            body.decode(enc)
            return "UTF-8" if enc == "utf-8" else "GB18030"
        except UnicodeDecodeError:
            continue
    return None


def _read_csv(path: Path, encoding: str | None) -> pd.DataFrame:
    for enc in [encoding] if encoding else ["utf-8-sig", "gb18030"]:
        try:
            return pd.read_csv(path, dtype=str, encoding=enc, keep_default_na=False, na_values=[""])
        except UnicodeDecodeError:
            continue
    raise InputFileError(f"{path}: cannot decode the CSV as UTF-8 or GB18030; pass --encoding")


def read_file(path: str | os.PathLike[str], *, encoding: str | None = None) -> RawInput:
    """Read any supported file into a frame, without validating it.

    Tables (CSV, XLSX) come back as text columns; vector files as a GeoDataFrame in their
    own CRS. Raises :class:`~gis.errors.InputFileError` when the file cannot be read at all.
    """
    p = Path(path)
    if not p.exists():
        raise InputFileError(f"{p}: no such file")
    suffix = p.suffix.lower()
    try:
        if suffix == ".csv":
            df = _read_csv(p, encoding)
            labels = pd.Series([f"line {i + 2}" for i in range(len(df))])
        elif suffix in (".xlsx", ".xls"):
            df = pd.read_excel(p, dtype=str)
            labels = pd.Series([f"row {i + 2}" for i in range(len(df))])
        elif suffix in VECTOR_SUFFIXES:
            enc = encoding or (_detect_dbf_encoding(p) if suffix == ".shp" else None)
            df = pyogrio.read_dataframe(p, encoding=enc, use_arrow=False)
            labels = pd.Series([f"feature {i + 1}" for i in range(len(df))])
        else:
            raise InputFileError(
                f"{p}: unsupported format {suffix or '(none)'}; use GeoJSON, GeoPackage, "
                "Shapefile, CSV or XLSX"
            )
    except InputFileError:
        raise
    except Exception as exc:  # a file the readers cannot parse at all
        raise InputFileError(f"{p}: cannot read it ({type(exc).__name__}: {exc})") from None
    df.columns = [str(c).strip() for c in df.columns]
    if "id" in df.columns:
        ids = df["id"].astype(object).where(df["id"].notna(), "").astype(str)
        labels = labels + np.where(ids != "", " (id " + ids + ")", "")
    elif "code" in df.columns:
        labels = labels + " (code " + df["code"].astype(str) + ")"
    return RawInput(p, df.reset_index(drop=True), labels.reset_index(drop=True))


#: a number as a table may write it: digits after a decimal point, an optional exponent.
#: "34." and "117." are refused: that is what a line cut off in the middle of a value looks like
_NUMBER = r"^[+-]?(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][+-]?\d+)?$"


def strict_numbers(s: pd.Series) -> pd.Series:
    """Numbers of a column as read from a table: text that is not a whole number (a cut
    value, stray text) becomes missing, so validation names its row.
    """
    if not (s.dtype == object or pd.api.types.is_string_dtype(s)):
        return pd.to_numeric(s, errors="coerce")
    text = (
        s.astype(object).where(s.notna(), None).map(lambda v: None if v is None else str(v).strip())
    )
    ok = text.map(lambda v: v is not None and bool(re.match(_NUMBER, v)))
    return pd.to_numeric(text.where(ok, None), errors="coerce")


def _numbers_strictly(raw: RawInput, df: pd.DataFrame, name: str) -> None:
    """Every number column of a table input: a value that is not a whole number (``34.``,
    ``3O0``) is a problem with its row, never a silent truncation.
    """
    for f in schema.layer(name).fields:
        if f.kind not in ("int", "float") or f.name not in df.columns:
            continue
        col = df[f.name]
        if not (col.dtype == object or pd.api.types.is_string_dtype(col)):
            continue
        lenient = pd.to_numeric(col, errors="coerce")
        bad = lenient.notna() & strict_numbers(col).isna()  # what else is wrong, validation says
        for i in np.flatnonzero(bad.to_numpy()):
            raw.problems.append(
                f"{raw.labels[i]}: {f.name} {col.iloc[i]!r} is not a number (a cut-off line?)"
            )
        df.loc[bad, f.name] = None


def _as_text(s: pd.Series) -> pd.Series:
    """Values as text; whole floats lose their ``.0`` (a code read as a number)."""

    def one(v: Any) -> Any:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return None
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v).strip()

    return s.map(one).astype(object)


def _geometry(raw: RawInput, system: str, geometry_type: str) -> gpd.GeoSeries | None:
    """The rows' geometry in EPSG:4326, from the file's geometry or lon/lat columns."""
    df = raw.frame
    if isinstance(df, gpd.GeoDataFrame) and df.geometry.name in df.columns:
        geoms = df.geometry
        if geoms.crs is None:
            geoms = geoms.set_crs("EPSG:4326")
        elif not geoms.crs.is_geographic:
            if system in ("gcj02", "bd09"):
                raise InputFileError(
                    f"{raw.path}: data in {geoms.crs.name} cannot also be in {system}; "
                    "GCJ-02/BD-09 data comes as lon/lat"
                )
            geoms = geoms.to_crs("EPSG:4326")
        else:
            geoms = geoms.to_crs("EPSG:4326")
    elif geometry_type == "Point" and {"lon", "lat"} <= set(df.columns):
        lon, lat = strict_numbers(df["lon"]), strict_numbers(df["lat"])
        for i in np.flatnonzero((lon.isna() | lat.isna()).to_numpy()):
            raw.problems.append(
                f"{raw.labels[i]}: lon/lat {df['lon'].iloc[i]!r}, {df['lat'].iloc[i]!r} are not numbers"
                " (a cut-off line?)"
            )
        geoms = gpd.GeoSeries(gpd.points_from_xy(lon, lat), crs="EPSG:4326")
        geoms[lon.isna() | lat.isna()] = None
    else:
        need = (
            "point geometry or lon/lat columns"
            if geometry_type == "Point"
            else f"{geometry_type} geometry"
        )
        raw.problems.append(f"no geometry: the file needs {need}")
        return None
    geoms = geoms.reset_index(drop=True)
    # coordinates outside China: checked on the input's own coordinates, before conversion
    has = ~(geoms.isna() | geoms.is_empty)
    if has.any():
        b = geoms[has].bounds
        bad = gcrs.outside_china(b["minx"], b["miny"]) | gcrs.outside_china(b["maxx"], b["maxy"])
        for i in b.index[bad]:
            x, y = geoms[i].representative_point().coords[0]
            raw.problems.append(
                f"{raw.labels[i]}: coordinates ({x:.5f}, {y:.5f}) lie outside China"
            )
        geoms[b.index[bad]] = None
    return gcrs.to_wgs84(geoms, system)


def read_points(path: str | os.PathLike[str], crs: str = "wgs84") -> gpd.GeoDataFrame:
    """A point file (GeoJSON, GPKG, SHP, or CSV/XLSX with lon/lat) with its attributes,
    in EPSG:4326; every bad row reported in one :class:`ValidationError`.
    """
    raw = read_file(path)
    geoms = _geometry(raw, gcrs.check_system(crs), "Point")
    if geoms is not None:
        wrong = ~(geoms.isna() | (shapely.get_type_id(geoms.values) == 0))
        raw.problems += [f"{raw.labels[i]}: not a point" for i in np.flatnonzero(wrong.to_numpy())]
    if raw.problems or geoms is None:
        raise ValidationError(f"points ({raw.path.name})", raw.problems)
    frame = pd.DataFrame(raw.frame).drop(columns=["geometry"], errors="ignore")
    return gpd.GeoDataFrame(frame.reset_index(drop=True), geometry=geoms.values, crs="EPSG:4326")


def _repair(raw: RawInput, geoms: gpd.GeoSeries, geometry_type: str) -> gpd.GeoSeries:
    """Make invalid polygons valid where that keeps a polygon (each repair noted in
    ``raw.repairs``, to be accepted or refused); report the rest as problems.
    """
    geoms = geoms.copy()
    present = ~(geoms.isna() | geoms.is_empty)
    invalid = present & ~geoms.is_valid
    for i in np.flatnonzero(invalid.to_numpy()):
        fixed = shapely.make_valid(geoms.iloc[i])
        if geometry_type in ("Polygon", "MultiPolygon"):
            parts = [
                g for g in shapely.get_parts(fixed) if g.geom_type in ("Polygon", "MultiPolygon")
            ]
            fixed = shapely.union_all(parts) if parts else None
        if fixed is None or fixed.is_empty or not fixed.is_valid:
            raw.problems.append(f"{raw.labels[i]}: geometry is invalid and cannot be made valid")
            geoms.iloc[i] = None
        else:
            why = shapely.is_valid_reason(geoms.iloc[i])
            n = len(shapely.get_parts(fixed))
            raw.repairs.append(
                f"{raw.labels[i]}: geometry is invalid ({why}); made valid it is {n} "
                f"polygon{'s' if n > 1 else ''} of {_area_m2(fixed):,.0f} m²"
            )
            geoms.iloc[i] = fixed
    return geoms


def _area_m2(geom: shapely.Geometry) -> float:
    """The area of a lon/lat geometry in square metres (its metric zone)."""
    g = gpd.GeoSeries([geom], crs=4326)
    return float(g.to_crs(gcrs.metric_crs_of(g)).area.iloc[0])


def _finish(
    raw: RawInput, name: str, df: pd.DataFrame, geoms: gpd.GeoSeries | None
) -> pd.DataFrame:
    spec = schema.layer(name)
    _numbers_strictly(raw, df, name)
    raw.problems.extend(schema.problems(name, df, label_of=raw.labels))
    if spec.geometry is None:
        return df
    assert geoms is not None
    gdf = gpd.GeoDataFrame(df, geometry=geoms.values, crs="EPSG:4326")
    if spec.geometry == "LineString":
        gdf = _explode_lines(gdf)
    ok = ~(gdf.geometry.isna())
    labels = (
        raw.labels
        if spec.geometry != "LineString"
        else pd.Series([f"feature {i + 1}" for i in range(len(gdf))])
    )
    raw.problems.extend(
        p for p in schema.geometry_problems(spec, gdf.geometry[ok], labels=labels[ok.to_numpy()])
    )
    return gdf


def _explode_lines(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    multi = gdf.geom_type == "MultiLineString"
    if not multi.any():
        return gdf
    parts = gdf[multi].explode(index_parts=True)
    parts["id"] = [
        f"{i}-{j + 1}" for (i, j) in zip(parts["id"], parts.index.get_level_values(1), strict=True)
    ]
    return pd.concat([gdf[~multi], parts.reset_index(drop=True)], ignore_index=True)


def _unlaunder(raw: RawInput, names: list[str]) -> None:
    """Restore column names that the Shapefile format cut to 10 characters."""
    rename = {
        n[:10]: n
        for n in names
        if len(n) > 10 and n not in raw.frame.columns and n[:10] in raw.frame.columns
    }
    if rename:
        raw.frame = raw.frame.rename(columns=rename)


def _text_columns(df: pd.DataFrame, name: str) -> pd.DataFrame:
    out = pd.DataFrame(index=df.index)
    for f in schema.layer(name).fields:
        if f.name in df.columns:
            out[f.name] = _as_text(df[f.name]) if f.kind == "str" else df[f.name]
    return out


def community_kind(codes: pd.Series) -> pd.Series:
    """``urban`` for residents' committees (digits 10–12 in 001–199), ``rural`` for 200–399."""
    seq = pd.to_numeric(codes.astype(str).str[9:12], errors="coerce")
    kind = pd.Series(None, index=codes.index, dtype=object)
    kind[(seq >= 1) & (seq <= 199)] = "urban"
    kind[(seq >= 200) & (seq <= 399)] = "rural"
    return kind


def street_kind(codes: pd.Series) -> pd.Series:
    """街道 (digits 7–9 in 001–099), 镇 (100–199), 乡 (200–399), else 其他."""
    seq = pd.to_numeric(codes.astype(str).str[6:9], errors="coerce")
    return pd.Series(
        np.select([seq < 100, seq < 200, seq < 400], ["街道", "镇", "乡"], "其他"),
        index=codes.index,
    )


def read_communities(
    path: str | os.PathLike[str], *, crs: str = "wgs84", encoding: str | None = None
) -> gpd.GeoDataFrame:
    """Read communities (``code``, ``name``, optional ``kind``/parent codes and names).

    Kind and parent codes are derived from the 12-digit code when absent; given parent
    codes must agree with it. Extra ``street_name``/``district_name`` columns are kept (they
    name the derived streets and districts).
    """
    raw = read_file(path, encoding=encoding)
    _unlaunder(raw, [*schema.layer("communities").columns, "street_name", "district_name"])
    system = gcrs.check_system(crs)
    return _check(raw, _communities(raw, system), "communities")


def _communities(raw: RawInput, system: str) -> gpd.GeoDataFrame:
    src = raw.frame
    df = _text_columns(src, "communities")
    if "code" in df.columns:
        code = df["code"].fillna("")
        if "kind" not in df.columns:
            df["kind"] = community_kind(code)
            for i in np.flatnonzero((df["kind"].isna() & code.str.fullmatch(r"\d{12}")).to_numpy()):
                raw.problems.append(
                    f"{raw.labels[i]}: code {code.iloc[i]} digits 10–12 are not 001–199 (urban) or "
                    "200–399 (rural); give a kind column"
                )
        df["kind"] = df["kind"].replace(
            {
                "城市社区": "urban",
                "社区": "urban",
                "居委会": "urban",
                "村": "rural",
                "农村社区": "rural",
                "村委会": "rural",
            }
        )
        for col, n in (("street_code", 9), ("district_code", 6)):
            derived = code.str[:n]
            if col in df.columns:
                given = df[col].fillna(derived)
                for i in np.flatnonzero(
                    (given != derived).to_numpy() & code.str.fullmatch(r"\d{12}").to_numpy()
                ):
                    raw.problems.append(
                        f"{raw.labels[i]}: {col} {given.iloc[i]} does not match code {code.iloc[i]}"
                    )
                df[col] = given
            else:
                df[col] = derived
    for col in ("street_name", "district_name"):
        if col in src.columns:
            df[col] = _as_text(src[col])
    geoms = _geometry(raw, system, "MultiPolygon")
    if geoms is not None:
        geoms = _repair(raw, geoms, "MultiPolygon")
    return _finish(raw, "communities", df, geoms)


def _check(raw: RawInput, df: pd.DataFrame, name: str) -> Any:
    if raw.problems:
        raise ValidationError(f"{name} ({raw.path.name})", raw.problems)
    extra = [c for c in ("street_name", "district_name") if c in df.columns]
    out = schema.conform(name, df)
    for c in extra:
        out[c] = df[c].to_numpy()
    return out


#: how far (metres) a building may lie outside the community its code names
TOLERANCE_M = 50.0


def _buildings(
    raw: RawInput,
    system: str,
    communities: gpd.GeoDataFrame | None,
    tolerance_m: float = TOLERANCE_M,
) -> gpd.GeoDataFrame:
    df = _text_columns(raw.frame, "buildings")
    geoms = _geometry(raw, system, "Point")
    if geoms is not None:
        geoms = _footprints(raw, geoms)
    if "community_code" not in df.columns and geoms is not None:
        if communities is None:
            raw.problems.append("no community_code column and no communities to derive it from")
        else:
            df["community_code"] = locate(geoms, communities).to_numpy()
            outside = df["community_code"].isna().to_numpy() & geoms.notna().to_numpy()
            for i in np.flatnonzero(outside):
                x, y = geoms.iloc[i].coords[0]
                raw.problems.append(
                    f"{raw.labels[i]}: building at ({x:.6f}, {y:.6f}) lies outside every community"
                )
            # rows without a place were reported above; a placeholder keeps other checks quiet
            df.loc[outside | geoms.isna().to_numpy(), "community_code"] = "000000000000"
    elif communities is not None and "community_code" in df.columns:
        codes = set(communities["code"])
        bad = ~df["community_code"].isin(codes) & df["community_code"].notna()
        for i in np.flatnonzero(bad.to_numpy()):
            raw.problems.append(
                f"{raw.labels[i]}: community_code {df['community_code'].iloc[i]} is not a known community"
            )
        if geoms is not None:
            _in_their_communities(raw, df, geoms, communities, tolerance_m)
    return _finish(raw, "buildings", df, geoms)


#: footprints overlapping by more than this (m²) are an error, not a digitising touch
OVERLAP_M2 = 1.0


def _footprints(raw: RawInput, geoms: gpd.GeoSeries) -> gpd.GeoSeries:
    """Buildings given as footprints (Polygon/MultiPolygon, as surveying delivers them):
    checked (valid, not overlapping another by more than ``OVERLAP_M2``), kept in
    ``raw.footprints``; each building's point is a point inside its footprint.
    """
    kind = geoms.geom_type.to_numpy()
    poly = np.isin(kind, ["Polygon", "MultiPolygon"])
    if not poly.any():
        return geoms
    vals = geoms.values.copy()
    for i in np.flatnonzero(poly & ~geoms.is_valid.to_numpy()):
        raw.problems.append(
            f"{raw.labels[i]}: footprint is invalid ({shapely.is_valid_reason(vals[i])})"
        )
        poly[i] = False
    idx = np.flatnonzero(poly)
    fp = vals[idx]
    tree = shapely.STRtree(fp)
    a, b = tree.query(fp, predicate="overlaps")
    keep = a < b
    a, b = a[keep], b[keep]
    if len(a):
        lat = np.radians(float(np.mean(geoms[poly].total_bounds[[1, 3]])))
        m2 = shapely.area(shapely.intersection(fp[a], fp[b])) * 111_320.0**2 * np.cos(lat)
        for i, j, ar in zip(
            a[m2 > OVERLAP_M2], b[m2 > OVERLAP_M2], m2[m2 > OVERLAP_M2], strict=True
        ):
            raw.problems.append(
                f"{raw.labels[idx[i]]}: footprint overlaps {raw.labels[idx[j]]} by {ar:,.0f} m²"
            )
    raw.footprints = pd.Series(fp, index=idx)
    vals[idx] = shapely.point_on_surface(fp)
    return gpd.GeoSeries(vals, crs=geoms.crs)


def _in_their_communities(
    raw: RawInput,
    df: pd.DataFrame,
    geoms: gpd.GeoSeries,
    communities: gpd.GeoDataFrame,
    tolerance_m: float,
) -> None:
    """Each building must lie in (or within ``tolerance_m`` of) the community it names."""
    known = (
        df["community_code"].isin(set(communities["code"])).to_numpy() & geoms.notna().to_numpy()
    )
    idx = np.flatnonzero(known)
    if not len(idx):
        return
    polys = communities.set_index("code").geometry
    shapely.prepare(polys.values)
    mine = polys.reindex(df["community_code"].to_numpy()[idx]).values
    outside = idx[~shapely.intersects(mine, geoms.values[idx])]
    if not len(outside):
        return
    metric = gcrs.metric_crs_of(communities)
    pts = gpd.GeoSeries(geoms.values[outside], crs=4326).to_crs(metric).values
    areas = gpd.GeoSeries(polys.reindex(df["community_code"].to_numpy()[outside]).values, crs=4326)
    dist = shapely.distance(areas.to_crs(metric).values, pts)
    for i, d in zip(outside, dist, strict=True):
        if d > tolerance_m:
            x, y = geoms.iloc[i].coords[0]
            where = f"{d / 1000:,.1f} km" if d >= 1000 else f"{d:,.0f} m"
            raw.problems.append(
                f"{raw.labels[i]}: building at ({x:.6f}, {y:.6f}) lies {where} outside community "
                f"{df['community_code'].iloc[i]}, which its community_code names (allowed: "
                f"{tolerance_m:g} m); correct the code or the position"
            )


def locate(points: gpd.GeoSeries, communities: gpd.GeoDataFrame) -> pd.Series:
    """The code of the community each point lies in (``None`` outside all), via the R-tree."""
    tree = shapely.STRtree(communities.geometry.values)
    pts, polys = tree.query(points.values, predicate="intersects")
    out = pd.Series([None] * len(points), index=points.index, dtype=object)
    # a point on a shared boundary goes to the lowest code, deterministically
    codes = communities["code"].to_numpy()[polys]
    order = np.lexsort((codes, pts))
    first = np.unique(pts[order], return_index=True)[1]
    out.iloc[pts[order][first]] = codes[order][first]
    return out


def _facilities(raw: RawInput, system: str, types: set[str] | None) -> gpd.GeoDataFrame:
    df = _text_columns(raw.frame, "facilities")
    if "status" not in df.columns:
        df["status"] = "existing"
    df["status"] = (
        df["status"]
        .fillna("existing")
        .replace({"现有": "existing", "已建": "existing", "规划": "planned"})
    )
    geoms = _geometry(raw, system, "Point")
    gdf = _finish(raw, "facilities", df, geoms)
    if types is not None and "type" in gdf.columns:
        bad = ~gdf["type"].isin(types) & gdf["type"].notna()
        for i in np.flatnonzero(bad.to_numpy()):
            raw.problems.append(
                f"{raw.labels[i]}: type {gdf['type'].iloc[i]!r} is not in the facility catalogue "
                f"({', '.join(sorted(types))})"
            )
    return gdf


_EDUCATION = {
    "高中": "高中及以下",
    "中专": "高中及以下",
    "初中": "高中及以下",
    "高中及以下": "高中及以下",
    "大专": "大专",
    "专科": "大专",
    "本科": "本科",
    "学士": "本科",
    "bachelor": "本科",
    "硕士": "硕士",
    "研究生": "硕士",
    "master": "硕士",
    "博士": "博士",
    "doctorate": "博士",
    "phd": "博士",
}


def _workers(raw: RawInput, system: str, communities: set[str] | None) -> pd.DataFrame:
    src = raw.frame
    df = _text_columns(src, "workers")
    if "education" in df.columns:
        df["education"] = df["education"].map(
            lambda v: _EDUCATION.get(str(v).strip().lower(), v) if v is not None else v
        )
    if "hired" in df.columns:
        dates = pd.to_datetime(df["hired"], errors="coerce", format="mixed")
        for i in np.flatnonzero((dates.isna() & df["hired"].notna()).to_numpy()):
            raw.problems.append(f"{raw.labels[i]}: hired {df['hired'].iloc[i]!r} is not a date")
        for i in np.flatnonzero((dates > pd.Timestamp.today()).to_numpy()):
            raw.problems.append(f"{raw.labels[i]}: hired {df['hired'].iloc[i]} is in the future")
        df["hired"] = dates.dt.strftime("%Y-%m-%d").where(dates.notna(), df["hired"])
    if {"home_lon", "home_lat"} <= set(src.columns):
        lon, lat = strict_numbers(src["home_lon"]), strict_numbers(src["home_lat"])
        given = src["home_lon"].notna() | src["home_lat"].notna()
        for i in np.flatnonzero((given & (lon.isna() | lat.isna())).to_numpy()):
            raw.problems.append(
                f"{raw.labels[i]}: home {src['home_lon'].iloc[i]!r}, {src['home_lat'].iloc[i]!r} are not numbers"
            )
        has = lon.notna() & lat.notna()
        bad = has & gcrs.outside_china(lon.fillna(0), lat.fillna(0))
        for i in np.flatnonzero(bad.to_numpy()):
            raw.problems.append(
                f"{raw.labels[i]}: home ({lon.iloc[i]}, {lat.iloc[i]}) lies outside China"
            )
        fn = {"gcj02": gcrs.gcj02_to_wgs84, "bd09": gcrs.bd09_to_wgs84}.get(system)
        if fn is not None and has.any():
            x, y = fn(lon[has].to_numpy(), lat[has].to_numpy())
            lon[has], lat[has] = x, y
        df["home_lon"], df["home_lat"] = lon, lat
    _finish(raw, "workers", df, None)
    if communities is not None and "community_code" in df.columns:
        bad = ~df["community_code"].isin(communities) & df["community_code"].notna()
        for i in np.flatnonzero(bad.to_numpy()):
            raw.problems.append(
                f"{raw.labels[i]}: community_code {df['community_code'].iloc[i]} is not a known community"
            )
    return df


def _roads(raw: RawInput, system: str) -> gpd.GeoDataFrame:
    df = _text_columns(raw.frame, "roads")
    if "id" not in df.columns:
        df["id"] = [f"r{i + 1}" for i in range(len(df))]
    if "kind" not in df.columns:
        src = raw.frame
        kind_col = next(
            (c for c in ("highway", "fclass", "type", "class") if c in src.columns), None
        )
        df["kind"] = _as_text(src[kind_col]).fillna("road") if kind_col else "road"
    geoms = _geometry(raw, system, "LineString")
    return _finish(raw, "roads", df, geoms)


def load(
    files: Mapping[str, str | os.PathLike[str]],
    *,
    crs: str | Mapping[str, str] = "wgs84",
    encoding: str | None = None,
    communities: gpd.GeoDataFrame | None = None,
    facility_types: set[str] | None = None,
    allow_empty: bool = False,
    repair: bool = False,
    repairs: list[str] | None = None,
    tolerance_m: float = TOLERANCE_M,
) -> dict[str, pd.DataFrame]:
    """Read and validate a set of input files together; all clean, or one error for all.

    Parameters
    ----------
    files
        Layer name (``communities``, ``buildings``, ``facilities``, ``workers``, ``roads``)
        → file path; any subset.
    crs
        Coordinate system of lon/lat inputs: ``wgs84``, ``cgcs2000``, ``gcj02`` or ``bd09``;
        one for all files, or layer → system (the others WGS84), e.g. buildings digitised
        on Amap beside official community boundaries.
    encoding
        Attribute encoding, when detection is not enough (e.g. ``GBK``).
    communities
        Communities already in the store, used when ``files`` has none (to derive and check
        buildings' ``community_code``).
    facility_types
        Known facility type codes (default: no check).
    allow_empty
        Accept a file with no rows (it empties its layer); otherwise that is an error.
    repair
        Accept invalid polygons made valid (each repair is appended to ``repairs``);
        otherwise each is an error that says what the repair would make of it.
    tolerance_m
        How far a building may lie outside the community its ``community_code`` names.

    Returns
    -------
    dict
        Layer name → conformed frame, plus ``streets`` and ``districts`` derived from the
        communities when those are among the inputs.
    """
    unknown = set(files) - set(INPUT_LAYERS)
    if unknown:
        raise ValidationError(
            "import",
            [f"unknown input layer {u!r}; use {', '.join(INPUT_LAYERS)}" for u in sorted(unknown)],
        )
    systems = systems_of(crs, files)
    raws: dict[str, RawInput] = {}
    problems: list[str] = []
    for name, path in files.items():
        try:
            raws[name] = read_file(path, encoding=encoding)
        except InputFileError as exc:
            problems.append(f"{name}: {exc}")
    for name, raw in raws.items():
        if not len(raw.frame) and not allow_empty:
            problems.append(
                f"{name} ({raw.path.name}): the file has no rows; importing it would empty the "
                f"layer {name} — give --replace-with-empty if that is meant"
            )
    frames: dict[str, Any] = {}
    builders: dict[str, Callable[[RawInput], pd.DataFrame]] = {
        "communities": lambda r: _communities(r, systems["communities"]),
        "roads": lambda r: _roads(r, systems["roads"]),
        "facilities": lambda r: _facilities(r, systems["facilities"], facility_types),
    }
    for name, raw in raws.items():
        _unlaunder(raw, [*schema.layer(name).columns, "street_name", "district_name"])
    for name in ("communities", "roads", "facilities"):
        if name in raws:
            frames[name] = builders[name](raws[name])
    comm = frames.get("communities", communities)
    if "communities" in raws and raws["communities"].problems:
        comm = None  # do not report every building against broken communities
    if "buildings" in raws:
        frames["buildings"] = _buildings(raws["buildings"], systems["buildings"], comm, tolerance_m)
        fp = raws["buildings"].footprints
        if fp is not None:
            ids = frames["buildings"]["id"].to_numpy()[fp.index.to_numpy()]
            frames["footprints"] = gpd.GeoDataFrame(
                {"building_id": ids}, geometry=fp.to_numpy(), crs="EPSG:4326"
            )
    if "workers" in raws:
        frames["workers"] = _workers(
            raws["workers"], systems["workers"], set(comm["code"]) if comm is not None else None
        )
    for name, raw in raws.items():
        problems.extend(f"{name} ({raw.path.name}): {p}" for p in raw.problems)
        if repair and repairs is not None:
            repairs.extend(f"{name} ({raw.path.name}): {r}" for r in raw.repairs)
        elif not repair:
            problems.extend(
                f"{name} ({raw.path.name}): {r}; give --repair to accept that" for r in raw.repairs
            )
    if problems:
        raise ValidationError("import", problems)
    out = {name: schema.conform(name, df) for name, df in frames.items()}
    if "communities" in frames:
        out["streets"], out["districts"] = derive_parents(frames["communities"])
    return out


def check_rows(
    name: str,
    rows: pd.DataFrame,
    *,
    communities: gpd.GeoDataFrame | None = None,
    facility_types: set[str] | None = None,
) -> pd.DataFrame:
    """Rows given in memory (an API edit: a GeoDataFrame in EPSG:4326 for a layer with
    geometry) validated exactly as an import of a file holding them would be; one error
    for every problem, repairs included (an edit is not silently changed).
    """
    raw = RawInput(Path(name), rows.reset_index(drop=True),
                   pd.Series([f"feature {i + 1}" for i in range(len(rows))]))  # fmt: skip
    if name == "buildings":
        out = _buildings(raw, "wgs84", communities)
    elif name == "facilities":
        out = _facilities(raw, "wgs84", facility_types)
    else:
        out = _workers(raw, "wgs84", set(communities["code"]) if communities is not None else None)
    if raw.problems or raw.repairs or raw.footprints is not None:
        raise ValidationError(
            name, [*raw.problems, *raw.repairs] or ["give a point, not a footprint"]
        )
    return schema.conform(name, out)


def systems_of(crs: str | Mapping[str, str], layers: Iterable[str]) -> dict[str, str]:
    """The lon/lat system of each input layer: one for all, or per layer (default WGS84)."""
    if isinstance(crs, str):
        one = gcrs.check_system(crs)
        return dict.fromkeys(INPUT_LAYERS, one)
    unknown = sorted(set(crs) - set(INPUT_LAYERS))
    if unknown:
        raise ValidationError(
            "--crs", [f"{u!r} is not an input layer ({', '.join(INPUT_LAYERS)})" for u in unknown]
        )
    return {n: gcrs.check_system(crs.get(n, "wgs84")) for n in INPUT_LAYERS}


def derive_parents(communities: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Streets and districts as dissolves of their communities (names from the columns
    ``street_name``/``district_name`` when given, else the codes).
    """
    c = communities.copy()
    if "synthetic" not in c.columns:
        c["synthetic"] = False
    for col, code in (("street_name", "street_code"), ("district_name", "district_code")):
        if col not in c.columns:
            c[col] = c[code]
        c[col] = c[col].fillna(c[code])
    streets = c.dissolve(
        by="street_code",
        aggfunc={"street_name": "first", "district_code": "first", "synthetic": "any"},
    ).reset_index()
    streets = streets.rename(columns={"street_code": "code", "street_name": "name"})
    streets["kind"] = street_kind(streets["code"])
    districts = c.dissolve(
        by="district_code", aggfunc={"district_name": "first", "synthetic": "any"}
    ).reset_index()
    districts = districts.rename(columns={"district_code": "code", "district_name": "name"})
    return schema.conform("streets", streets), schema.conform("districts", districts)
