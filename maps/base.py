"""A map page that works offline, reads in Chinese, and cannot run what its data says.

A :class:`GridMap` collects layers, legend, search entries and a side panel as plain data
and writes one self-contained HTML page: Leaflet (vendored under ``maps/static/leaflet``,
BSD-2) and the page's renderer (``maps/static/gridgis.js``) inlined, and the map itself as a
JSON data block the renderer parses. That is the page's only data channel — no value is
ever spliced into HTML or JavaScript source — and the renderer puts every text on the page
through ``textContent`` (escaping by construction). A Content-Security-Policy allows exactly
the two inlined scripts (by hash) and no other, so even a mistake could not run injected
script. Folium was used before and is not: its templates write tooltip and marker texts
into JavaScript template literals.

Base maps are optional: none, OpenStreetMap, Tianditu (天地图, with a key) or Amap (高德),
whose tiles are drawn in GCJ-02 — for Amap every overlay is shifted from WGS84 to GCJ-02 so
it lines up with the streets.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import geopandas as gpd
import shapely

from gis import crs as gcrs
from gis.errors import ValidationError

STATIC = Path(str(resources.files("maps"))) / "static"
LEAFLET = STATIC / "leaflet"
VECTORGRID = STATIC / "vectorgrid" / "Leaflet.VectorGrid.bundled.min.js"
#: the only tile URLs a map's vector layers may name: this service's own tiles, relative
_OWN_TILES = re.compile(
    r"^/collections/[a-z_]+/tiles/WebMercatorQuad/\{z\}/\{x\}/\{y\}(\?[a-z_=&,0-9]*)?$"
)

TILES: dict[str, dict[str, Any]] = {
    "none": {},
    "osm": {
        "url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        "attr": "© OpenStreetMap contributors",
    },
    "tianditu": {
        "url": "https://t{s}.tianditu.gov.cn/{layer}_w/wmts?SERVICE=WMTS&REQUEST=GetTile"
        "&VERSION=1.0.0&LAYER={layer}&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles"
        "&TILEMATRIX={z}&TILEROW={y}&TILECOL={x}&tk={key}",
        "attr": "© 天地图 Tianditu",
        "subdomains": "01234567",
    },
    "amap": {
        "url": "https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1"
        "&style=8&x={x}&y={y}&z={z}",
        "attr": "© 高德地图 AutoNavi",
        "subdomains": "1234",
    },
}
TILE_HOSTS = "https://*.openstreetmap.org https://*.tianditu.gov.cn https://*.is.autonavi.com"

# covered share classes, red (little) to green (all)
SHARE_BREAKS = (0.2, 0.4, 0.6, 0.8)
SHARE_COLOURS = ("#d73027", "#fc8d59", "#fee08b", "#91cf60", "#1a9850")
NO_DATA = "#bdbdbd"
NOT_APPLICABLE = "#e4e4e4"  # a type that does not serve these communities (不适用)
# distinguishable colours for neighbouring workers (ColorBrewer Set1/Dark2)
CATEGORY_COLOURS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02",
                    "#a6761d", "#377eb8", "#e41a1c", "#984ea3")  # fmt: skip
_COLOUR = re.compile(r"^#[0-9a-fA-F]{3,8}$")

TEXT = {
    "zh": {"search": "搜索网格代码或社区名称", "fullscreen": "全屏", "empty": "（无要素）"},
    "en": {
        "search": "Search grid code or community name",
        "fullscreen": "Full screen",
        "empty": "(no features)",
    },
}


def share_colour(share: pd.Series, applies: pd.Series | None = None) -> pd.Series:
    """The class colour of each covered share (grey where there is nothing to cover, light
    grey where the type does not apply).
    """
    s = pd.to_numeric(share, errors="coerce").to_numpy(dtype=float)
    idx = np.searchsorted(SHARE_BREAKS, s, side="right")
    colours = np.asarray(SHARE_COLOURS, dtype=object)[np.clip(idx, 0, len(SHARE_COLOURS) - 1)]
    out = np.where(np.isnan(s), NO_DATA, colours)
    if applies is not None:
        out = np.where(applies.fillna(True).to_numpy(dtype=bool), out, NOT_APPLICABLE)
    return pd.Series(out, index=share.index)


def share_legend(lang: str) -> list[tuple[str, str]]:
    """Legend rows of the covered-share classes."""
    edges = (0.0, *SHARE_BREAKS, 1.0)
    rows = [(c, f"{edges[i]:.0%}–{edges[i + 1]:.0%}") for i, c in enumerate(SHARE_COLOURS)]
    return rows + [
        (NO_DATA, "无服务对象" if lang == "zh" else "no one to serve"),
        (NOT_APPLICABLE, "不适用" if lang == "zh" else "does not apply"),
    ]


def _check_colour(c: str) -> str:
    if not _COLOUR.match(c):
        raise ValueError(f"not a colour: {c!r}")  # our own palettes only
    return c


def json_block(doc: Any) -> str:
    """``doc`` as JSON safe inside ``<script type="application/json">``: ``<``, ``>`` and
    ``&`` escaped, so no text can close the block or open a comment.
    """
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for a, b in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(a, b)
    return text


def _clean(v: Any) -> Any:
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return None if np.isnan(v) else float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


class GridMap:
    """One map: base map, overlays, legend, search, fullscreen, scale bar, print style."""

    def __init__(
        self,
        title: str,
        bounds: tuple[float, float, float, float],
        *,
        tiles: str = "none",
        lang: str = "zh",
        key: str | None = None,
    ) -> None:
        problems = []
        if tiles not in TILES:
            problems.append(f"base map {tiles!r} is not one of {', '.join(TILES)}")
        if lang not in TEXT:
            problems.append(f"language {lang!r} is not zh or en")
        if tiles == "tianditu" and not key:
            problems.append("Tianditu tiles need a key (--tianditu-key or $TIANDITU_KEY)")
        if problems:
            raise ValidationError("map", problems)
        self.title, self.tiles, self.lang, self.key = title, tiles, lang, key
        self.t = TEXT[lang]
        self.shift = tiles == "amap"
        (x0, y0), (x1, y1) = self._xy([(bounds[0], bounds[1]), (bounds[2], bounds[3])])
        self.bounds = [[y0, x0], [y1, x1]]
        self.legend_blocks: list[dict[str, Any]] = []
        self.search_index: list[dict[str, Any]] = []
        self.layer_specs: list[dict[str, Any]] = []
        self.panel: dict[str, Any] | None = None

    @property
    def layers(self) -> list[str]:
        """The names of the layers, in order."""
        return [s["name"] for s in self.layer_specs]

    # -- coordinates -----------------------------------------------------------------
    def _xy(self, pts: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if not self.shift:
            return pts
        lon, lat = gcrs.wgs84_to_gcj02([p[0] for p in pts], [p[1] for p in pts])
        return list(zip(np.atleast_1d(lon).tolist(), np.atleast_1d(lat).tolist(), strict=True))

    def display(self, gdf: gpd.GeoDataFrame, tolerance: float = 0.0) -> gpd.GeoDataFrame:
        """``gdf`` (EPSG:4326) as drawn: simplified by ``tolerance`` degrees, shifted to
        GCJ-02 for Amap, coordinates rounded to 1e-6° (0.1 m) to keep the HTML small.
        """
        g = gdf.geometry.values
        if tolerance:
            g = shapely.simplify(g, tolerance, preserve_topology=True)
        if self.shift:
            g = gcrs.from_wgs84(gpd.GeoSeries(g, crs=4326), "gcj02").values
        g = shapely.transform(g, lambda c: np.round(c, 6))
        return gpd.GeoDataFrame(gdf.drop(columns=gdf.geometry.name), geometry=g, crs=4326)

    def _features(self, d: gpd.GeoDataFrame, columns: list[str]) -> dict[str, Any]:
        geoms = [json.loads(x) for x in shapely.to_geojson(d.geometry.values)]
        props = (
            d[columns].astype(object).to_dict("records") if columns else [{} for _ in range(len(d))]
        )
        return {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "geometry": g,
                    "properties": {k: _clean(v) for k, v in p.items()},
                }
                for g, p in zip(geoms, props, strict=True)
            ],
        }

    # -- layers ----------------------------------------------------------------------
    def polygons(
        self,
        gdf: gpd.GeoDataFrame,
        name: str,
        *,
        fill: str | pd.Series | None = None,
        line: str = "#555555",
        weight: float = 1.0,
        dash: str | None = None,
        opacity: float = 0.65,
        tooltip: dict[str, str] | None = None,
        popup: str | None = None,
        show: bool = True,
        overlay: bool = True,
        tolerance: float = 0.0,
    ) -> None:
        """A polygon (or line) layer; ``fill`` a colour or a colour per row; ``tooltip``
        column → label; ``popup`` a column of texts or ``{href, text}`` links.
        """
        cols = list(tooltip or {})
        d = self.display(gdf, tolerance) if len(gdf) else gdf
        if len(d):
            d = d[[*cols, *([popup] if popup else []), "geometry"]].copy()
            fills = (
                [fill] * len(d) if isinstance(fill, str) or fill is None else list(fill.to_numpy())
            )
            d["_fill"] = [None if c is None else _check_colour(str(c)) for c in fills]
        if dash is not None and not re.fullmatch(r"[\d ]+", dash):
            raise ValueError(f"not a dash pattern: {dash!r}")
        self.layer_specs.append({
            "kind": "polygons", "name": self._name(name, len(gdf)), "show": show, "overlay": overlay,
            "style": {"color": _check_colour(line), "weight": weight, "dash": dash, "opacity": opacity,
                      "fill": fill is not None},
            "tooltip": [[c, tooltip[c]] for c in cols] if tooltip else None, "popup": popup,
            "data": self._features(d, [*cols, *([popup] if popup else []), "_fill"]) if len(d)
            else {"type": "FeatureCollection", "features": []},
        })  # fmt: skip

    def points(
        self,
        gdf: gpd.GeoDataFrame,
        name: str,
        *,
        colour: str,
        radius: float = 5,
        label: str | None = None,
        circle_m: float | None = None,
        show: bool = True,
    ) -> None:
        """Circle markers (and, with ``circle_m``, a service circle of that many metres)."""
        d = self.display(gdf) if len(gdf) else gdf
        if len(d):
            d = d.assign(label=d[label].astype(str) if label else None)[["label", "geometry"]]
        self.layer_specs.append({
            "kind": "points", "name": self._name(name, len(gdf)), "show": show,
            "colour": _check_colour(colour), "radius": radius, "circle": circle_m,
            "data": self._features(d, ["label"]) if len(d) else {"type": "FeatureCollection", "features": []},
        })  # fmt: skip

    def switchable(
        self,
        gdf: gpd.GeoDataFrame,
        name: str,
        variants: list[tuple[str, str, str, str]],
        tooltip: dict[str, str],
        *,
        tolerance: float = 0.0,
    ) -> None:
        """One polygon layer shaded by covered share, with a selector between ``variants``
        (label, share column, served column, applies column): the geometry is sent once,
        however many variants (the city overview's facility types) there are.
        """
        d = self.display(gdf, tolerance)
        props = d[list(tooltip)].copy()
        for i, (_, share, served, applies) in enumerate(variants):
            props[f"s{i}"] = pd.to_numeric(d[share], errors="coerce").round(3)
            props[f"n{i}"] = pd.to_numeric(d[served], errors="coerce").round().astype("Int64")
            props[f"a{i}"] = d[applies].fillna(True).astype(bool)
        data = gpd.GeoDataFrame(props, geometry=d.geometry.values, crs=4326)
        zh = self.lang == "zh"
        self.layer_specs.append({
            "kind": "switchable", "name": self._name(name, len(d)), "show": True,
            "variants": [v[0] for v in variants], "tooltip": [[k, v] for k, v in tooltip.items()],
            "breaks": list(SHARE_BREAKS), "colours": list(SHARE_COLOURS), "none": NO_DATA,
            "na": NOT_APPLICABLE,
            "words": {"served": "服务对象" if zh else "served", "share": "覆盖率" if zh else "covered",
                      "na": "不适用" if zh else "does not apply"},
            "data": self._features(data, list(props.columns)),
        })  # fmt: skip

    def _name(self, name: str, n: int) -> str:
        return name if n else f"{name} {self.t['empty']}"

    # -- furniture ---------------------------------------------------------------------
    def vector_tiles(
        self,
        url: str,
        layer: str,
        name: str,
        *,
        fill: str | None = None,
        by: str | None = None,
        breaks: tuple[float, ...] = (),
        colours: tuple[str, ...] = (),
        tooltip: dict[str, str] | None = None,
        radius: float = 3.0,
        show: bool = True,
    ) -> None:
        """A layer drawn from this service's vector tiles (``url``: its relative tile
        template; ``layer``: the layer in the tile) — building-level layers at city scale,
        which embedded GeoJSON could not carry. Points are circles, coloured by the class
        of property ``by`` (``breaks``/``colours``) or ``fill``; ``tooltip``: property →
        label, shown on click. Not for an Amap base map (its streets are shifted, tiles
        are not).
        """
        if not _OWN_TILES.match(url):
            raise ValueError(f"not a tile URL of this service: {url!r}")
        if self.shift:
            raise ValidationError(
                "map",
                ["vector tiles are in WGS84 and Amap's streets are not: use none, osm or tianditu"],
            )
        for c in (*colours, *([fill] if fill else [])):
            _check_colour(c)
        self.layer_specs.append({
            "kind": "mvt", "name": name, "url": url, "layer": layer, "show": show,
            "fill": fill, "by": by, "breaks": list(breaks), "colours": list(colours),
            "radius": radius, "tooltip": list((tooltip or {}).items()),
        })  # fmt: skip

    def legend(
        self, title: str, rows: list[tuple[str, str]], *, kind: str = "fill", note: str = ""
    ) -> None:
        """A legend block: colour swatches (fill, line or dot) with labels, and a note."""
        self.legend_blocks.append(
            {
                "title": title,
                "kind": kind,
                "note": note,
                "rows": [[_check_colour(c), t] for c, t in rows],
            }
        )

    def search(self, label: str, gdf: gpd.GeoDataFrame) -> None:
        """Make the features findable in the search box by ``label``."""
        if not len(gdf):
            return
        d = self.display(gdf)
        b = d.bounds.round(6).to_numpy()
        for text, bb in zip(d[label].astype(str), b, strict=True):
            self.search_index.append({"t": text, "b": [[bb[1], bb[0]], [bb[3], bb[2]]]})

    def side_panel(self, title: str, table: pd.DataFrame) -> None:
        """A panel on the right with a table (e.g. a ranking)."""
        rows = [[_clean(v) for v in r] for r in table.astype(object).itertuples(index=False)]
        self.panel = {"title": title, "columns": [str(c) for c in table.columns], "rows": rows}

    # -- output ------------------------------------------------------------------------
    def _tiles(self) -> list[dict[str, Any]]:
        spec = TILES[self.tiles]
        if not spec:
            return []
        extra = {"subdomains": spec["subdomains"]} if "subdomains" in spec else {}
        if self.tiles == "tianditu":
            return [
                {"name": name, "url": spec["url"].replace("{layer}", layer).replace("{key}", self.key or ""),
                 "attr": spec["attr"], "overlay": layer == "cva", **extra}
                for layer, name in (("vec", "天地图"), ("cva", "天地图注记"))
            ]  # fmt: skip
        return [
            {
                "name": self.tiles,
                "url": spec["url"],
                "attr": spec["attr"],
                "overlay": False,
                **extra,
            }
        ]

    def document(self) -> dict[str, Any]:
        """Everything the page draws, as plain data (what the JSON block holds)."""
        return {
            "title": self.title, "bounds": self.bounds, "tiles": self._tiles(),
            "layers": self.layer_specs, "legend": self.legend_blocks, "search": self.search_index,
            "panel": self.panel, "words": {"search": self.t["search"], "fullscreen": self.t["fullscreen"]},
        }  # fmt: skip

    def html(self) -> str:
        """The map as one self-contained HTML page."""
        leaflet_js, gridgis_js, css = _assets()
        vector = any(spec["kind"] == "mvt" for spec in self.layer_specs)
        return _PAGE.format(
            vectorgrid=f"<script>{_vectorgrid()}</script>" if vector else "",
            lang="zh-CN" if self.lang == "zh" else "en",
            title=html.escape(self.title),
            csp=html.escape(csp(), quote=True),
            leaflet_css=css,
            css=_CSS,
            data=json_block(self.document()),
            leaflet_js=leaflet_js,
            gridgis_js=gridgis_js,
        )

    def save(self, path: str | Path) -> Path:
        """Write the page; returns the path."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(self.html(), encoding="utf-8")
        return p


@lru_cache(maxsize=1)
def _vectorgrid() -> str:
    js = VECTORGRID.read_text(encoding="utf-8")
    if "</script" in js.lower():
        raise RuntimeError("a map asset would close its own element")
    return js


@lru_cache(maxsize=1)
def _assets() -> tuple[str, str, str]:
    js = (LEAFLET / "leaflet.js").read_text(encoding="utf-8")
    mine = (STATIC / "gridgis.js").read_text(encoding="utf-8")
    css = (LEAFLET / "leaflet.css").read_text(encoding="utf-8")
    for png in ("layers.png", "layers-2x.png"):
        data = base64.b64encode((LEAFLET / png).read_bytes()).decode()
        css = css.replace(f"images/{png}", f"data:image/png;base64,{data}")
    for text in (js, mine, css):
        if "</script" in text.lower() or "</style" in text.lower():
            raise RuntimeError("a map asset would close its own element")
    return js, mine, css


def script_hashes() -> list[str]:
    """CSP hashes of the scripts a map page inlines (Leaflet, the renderer, VectorGrid for
    maps with vector tiles) — it runs nothing else.
    """
    js, mine, _ = _assets()
    return [
        "'sha256-" + base64.b64encode(hashlib.sha256(s.encode()).digest()).decode() + "'"
        for s in (js, mine, _vectorgrid())
    ]


def csp() -> str:
    """The Content-Security-Policy of a map page: its own scripts, inline styles, images
    from the page itself and the three tile providers, fetches from this service only
    (its vector tiles), nothing else.
    """
    return (
        f"default-src 'none'; script-src {' '.join(script_hashes())}; style-src 'unsafe-inline'; "
        f"img-src data: {TILE_HOSTS}; connect-src 'self'; base-uri 'none'; form-action 'none'"
    )


_PAGE = """<!DOCTYPE html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{leaflet_css}</style>
<style>{css}</style>
</head>
<body>
<div id="gg-map"></div>
<div id="gg-title"></div>
<div id="gg-legend" class="leaflet-control"></div>
<div id="gg-tools"><input id="gg-search" list="gg-options"><datalist id="gg-options"></datalist><button id="gg-full" type="button"></button></div>
<script type="application/json" id="gg-data">{data}</script>
<script>{leaflet_js}</script>
{vectorgrid}
<script>{gridgis_js}</script>
</body>
</html>
"""

_CSS = """
html, body { margin: 0; height: 100%; font-family: "Noto Sans CJK SC", "Microsoft YaHei", "PingFang SC", sans-serif; }
#gg-map { position: absolute; inset: 0; }
#gg-title { position: absolute; top: 10px; left: 55px; z-index: 1000; background: #fff;
  padding: 6px 12px; border-radius: 4px; font-size: 16px; font-weight: 600;
  box-shadow: 0 1px 4px rgba(0,0,0,.3); max-width: 60%; overflow-wrap: anywhere; }
#gg-legend { position: absolute; bottom: 60px; left: 10px; z-index: 1000; background: #fff;
  padding: 8px 10px; border-radius: 4px; font-size: 12px; line-height: 18px;
  box-shadow: 0 1px 4px rgba(0,0,0,.3); max-height: 60%; overflow-y: auto; max-width: 40%; }
#gg-legend i { width: 14px; height: 14px; display: inline-block; margin-right: 6px;
  vertical-align: middle; opacity: .85; }
#gg-legend .gg-block + .gg-block { margin-top: 6px; }
#gg-legend .gg-note { color: #a50026; overflow-wrap: anywhere; }
#gg-tools { position: absolute; top: 52px; left: 55px; z-index: 1000; }
#gg-search { width: 220px; padding: 4px 6px; }
#gg-full { padding: 3px 7px; }
#gg-variant { display: block; margin-top: 4px; padding: 3px; max-width: 300px; }
#gg-panel { position: absolute; bottom: 30px; right: 10px; z-index: 1000; background: #fff;
  padding: 8px; border-radius: 4px; max-height: 45%; max-width: 40%; overflow: auto; font-size: 12px;
  box-shadow: 0 1px 4px rgba(0,0,0,.3); }
.gg-table td, .gg-table th { padding: 1px 6px; text-align: right; }
.gg-tip td { padding: 0 4px; max-width: 320px; overflow-wrap: anywhere; }
.leaflet-control-layers-list { max-width: 320px; overflow-wrap: anywhere; }
@media print {
  #gg-tools, .leaflet-control-layers, .leaflet-control-zoom { display: none; }
  #gg-legend, #gg-title, #gg-panel { box-shadow: none; border: 1px solid #999; }
}
"""
