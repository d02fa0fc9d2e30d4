"""A folium map that works offline and reads in Chinese: the pieces every gridgis map uses.

Leaflet (vendored under ``maps/static/leaflet``, BSD-2) is inlined into the HTML, so a map
is one self-contained file that opens with no network; folium's other default assets
(jQuery, Bootstrap, Font Awesome) are not used and not linked. Base maps are optional:
none, OpenStreetMap, Tianditu (天地图, with a key) or Amap (高德), whose tiles are drawn in
GCJ-02 — for Amap every overlay is shifted from WGS84 to GCJ-02 so it lines up with the
streets.
"""

from __future__ import annotations

import base64
import html
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import folium
import geopandas as gpd
import shapely

from gis import crs as gcrs
from gis.errors import ValidationError

STATIC = Path(str(resources.files("maps"))) / "static" / "leaflet"

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

# covered share classes, red (little) to green (all)
SHARE_BREAKS = (0.2, 0.4, 0.6, 0.8)
SHARE_COLOURS = ("#d73027", "#fc8d59", "#fee08b", "#91cf60", "#1a9850")
NO_DATA = "#bdbdbd"
# distinguishable colours for neighbouring workers (ColorBrewer Set1/Dark2)
CATEGORY_COLOURS = (
    "#1b9e77",
    "#d95f02",
    "#7570b3",
    "#e7298a",
    "#66a61e",
    "#e6ab02",
    "#a6761d",
    "#377eb8",
    "#e41a1c",
    "#984ea3",
)

TEXT = {
    "zh": {
        "search": "搜索网格代码或社区名称",
        "fullscreen": "全屏",
        "empty": "（无要素）",
        "none": "无",
    },
    "en": {
        "search": "Search grid code or community name",
        "fullscreen": "Full screen",
        "empty": "(no features)",
        "none": "none",
    },
}


def share_colour(share: pd.Series) -> pd.Series:
    """The class colour of each covered share (grey where there is nothing to cover)."""
    s = pd.to_numeric(share, errors="coerce").to_numpy(dtype=float)
    idx = np.searchsorted(SHARE_BREAKS, s, side="right")
    colours = np.asarray(SHARE_COLOURS, dtype=object)[np.clip(idx, 0, len(SHARE_COLOURS) - 1)]
    return pd.Series(np.where(np.isnan(s), NO_DATA, colours), index=share.index)


def share_legend(lang: str) -> list[tuple[str, str]]:
    """Legend rows of the covered-share classes."""
    edges = (0.0, *SHARE_BREAKS, 1.0)
    rows = [(c, f"{edges[i]:.0%}–{edges[i + 1]:.0%}") for i, c in enumerate(SHARE_COLOURS)]
    return rows + [(NO_DATA, "无服务对象" if lang == "zh" else "no one to serve")]


class _Map(folium.Map):
    # only Leaflet, inlined by GridMap.html()
    default_js = [("leaflet", "gridgis-static:leaflet.js")]
    default_css = [("leaflet_css", "gridgis-static:leaflet.css")]


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
        self.title, self.tiles, self.lang = title, tiles, lang
        self.t = TEXT[lang]
        self.shift = tiles == "amap"
        (x0, y0), (x1, y1) = self._xy([(bounds[0], bounds[1]), (bounds[2], bounds[3])])
        self.m = _Map(
            location=[(y0 + y1) / 2, (x0 + x1) / 2],
            tiles=None,
            control_scale=True,
            prefer_canvas=True,
            zoom_start=12,
            zoom_snap=0.25,
        )
        root: Any = self.m.get_root()  # a folium Figure
        self.root = root
        root.header.add_child(folium.Element(f"<title>{html.escape(title)}</title>"))
        spec = TILES[tiles]
        if spec:
            extra = {"subdomains": spec["subdomains"]} if "subdomains" in spec else {}
            if tiles == "tianditu":
                for layer, name in (("vec", "天地图"), ("cva", "天地图注记")):
                    folium.TileLayer(
                        spec["url"].replace("{layer}", layer).replace("{key}", key or ""),
                        attr=spec["attr"],
                        name=name,
                        overlay=layer == "cva",
                        **extra,
                    ).add_to(self.m)
            else:
                folium.TileLayer(spec["url"], attr=spec["attr"], name=tiles, **extra).add_to(self.m)
        self.m.fit_bounds([[y0, x0], [y1, x1]])
        self.legend_rows: list[str] = []
        self.search_index: list[dict[str, Any]] = []
        self.layers: list[str] = []
        self.panel: str | None = None
        self.scripts: list[str] = []

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
        """A GeoJSON layer; ``fill`` a colour or a colour per row; ``tooltip`` column → label."""
        group = folium.FeatureGroup(name=self._name(name, len(gdf)), show=show, overlay=overlay)
        if len(gdf):
            d = self.display(gdf, tolerance)
            cols = list(tooltip or {})
            d = d[[*cols, *([popup] if popup else []), "geometry"]].copy()
            d["_fill"] = fill if isinstance(fill, str) or fill is None else fill.to_numpy()
            style = {
                "color": line,
                "weight": weight,
                "fillOpacity": opacity if fill is not None else 0,
                "dashArray": dash,
            }
            gj = folium.GeoJson(
                d.to_json(na="null", drop_id=True),
                style_function=lambda f, s=style: {**s, "fillColor": f["properties"]["_fill"]},
                tooltip=folium.GeoJsonTooltip(
                    fields=cols, aliases=[tooltip[c] for c in cols], localize=True
                )
                if tooltip
                else None,
                popup=folium.GeoJsonPopup(fields=[popup], labels=False) if popup else None,
                smooth_factor=1.0,
            )
            gj.add_to(group)
        group.add_to(self.m)
        self.layers.append(name)

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
        group = folium.FeatureGroup(name=self._name(name, len(gdf)), show=show)
        if len(gdf):
            d = self.display(gdf)
            for row, g in zip(d.itertuples(index=False), d.geometry, strict=True):
                tip = str(getattr(row, label)) if label else None
                if circle_m:
                    folium.Circle(
                        [g.y, g.x],
                        radius=circle_m,
                        color=colour,
                        weight=1,
                        fill=True,
                        fill_opacity=0.08,
                        interactive=False,
                    ).add_to(group)
                folium.CircleMarker(
                    [g.y, g.x],
                    radius=radius,
                    color="#ffffff",
                    weight=1.5,
                    fill=True,
                    fill_color=colour,
                    fill_opacity=1,
                    tooltip=tip,
                ).add_to(group)
        group.add_to(self.m)
        self.layers.append(name)

    def switchable(
        self,
        gdf: gpd.GeoDataFrame,
        name: str,
        variants: list[tuple[str, str, str]],
        tooltip: dict[str, str],
        *,
        tolerance: float = 0.0,
    ) -> None:
        """One polygon layer shaded by covered share, with a selector between
        ``variants`` (label, share column, served column): the geometry is sent once,
        however many variants (the city overview's facility types) there are.
        """
        d = self.display(gdf, tolerance)
        keep = list(tooltip)
        props = d[keep].copy()
        for i, (_, share, served) in enumerate(variants):
            props[f"s{i}"] = pd.to_numeric(d[share], errors="coerce").round(3)
            props[f"n{i}"] = pd.to_numeric(d[served], errors="coerce").round().astype("Int64")
        data = gpd.GeoDataFrame(props, geometry=d.geometry.values, crs=4326).to_json(
            na="null", drop_id=True, separators=(",", ":")
        )
        self.scripts.append(
            _SWITCH_JS.format(
                data=data,
                name=json.dumps(self._name(name, len(d)), ensure_ascii=False),
                labels=json.dumps([v[0] for v in variants], ensure_ascii=False),
                tips=json.dumps(tooltip, ensure_ascii=False),
                breaks=json.dumps(list(SHARE_BREAKS)),
                colours=json.dumps(list(SHARE_COLOURS)),
                none=json.dumps(NO_DATA),
                served=json.dumps("服务对象" if self.lang == "zh" else "served"),
                share=json.dumps("覆盖率" if self.lang == "zh" else "covered"),
            )
        )
        self.layers.append(name)

    def _name(self, name: str, n: int) -> str:
        return name if n else f"{name} {self.t['empty']}"

    # -- furniture ---------------------------------------------------------------------
    def legend(
        self, title: str, rows: list[tuple[str, str]], *, kind: str = "fill", note: str = ""
    ) -> None:
        """A legend block: colour swatches (fill, line or dot) with labels, and a note."""
        items = []
        for colour, text in rows:
            if kind == "line":
                sw = f'<i style="border:2px dashed {colour};background:none"></i>'
            elif kind == "dot":
                sw = f'<i style="background:{colour};border-radius:50%"></i>'
            else:
                sw = f'<i style="background:{colour}"></i>'
            items.append(f"<div>{sw}{html.escape(text)}</div>")
        note_html = f'<div class="gg-note">{html.escape(note)}</div>' if note else ""
        self.legend_rows.append(
            f"<div class='gg-block'><b>{html.escape(title)}</b>{''.join(items)}{note_html}</div>"
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
        self.panel = (
            f"<div id='gg-panel'><b>{html.escape(title)}</b>"
            f"{table.to_html(index=False, border=0, classes='gg-table', na_rep='—')}</div>"
        )

    # -- output ------------------------------------------------------------------------
    def html(self) -> str:
        """The map as one self-contained HTML page."""
        root = self.root
        control = folium.LayerControl(collapsed=False, position="topright")
        control.add_to(self.m)
        t = self.t
        index = json.dumps(self.search_index, ensure_ascii=False, separators=(",", ":"))
        options = "".join(
            f"<option value='{html.escape(x['t'], quote=True)}'>" for x in self.search_index
        )
        legend = "".join(self.legend_rows)
        root.html.add_child(
            folium.Element(
                f"""
<div id="gg-title">{html.escape(self.title)}</div>
<div id="gg-legend" class="leaflet-control">{legend}</div>
<div id="gg-tools">
  <input id="gg-search" list="gg-options" placeholder="{html.escape(t["search"])}">
  <datalist id="gg-options">{options}</datalist>
  <button id="gg-full">{t["fullscreen"]}</button>
</div>
{self.panel or ""}"""
            )
        )
        root.header.add_child(folium.Element(f"<style>{_CSS}</style>"))
        root.script.add_child(
            folium.Element(
                f"""
// after folium's own script (which builds the map and the layer control) has run
window.addEventListener('load', function() {{
  var map = {self.m.get_name()};
  var index = {index};
  var box = document.getElementById('gg-search');
  box.addEventListener('change', function() {{
    var q = box.value.trim();
    for (var i = 0; i < index.length; i++) {{
      if (index[i].t === q || index[i].t.indexOf(q) >= 0) {{ map.fitBounds(index[i].b); return; }}
    }}
  }});
  document.getElementById('gg-full').addEventListener('click', function() {{
    var el = document.documentElement;
    if (document.fullscreenElement) {{ document.exitFullscreen(); }}
    else if (el.requestFullscreen) {{ el.requestFullscreen(); }}
  }});
  var control = {control.get_name()};
  {"".join(self.scripts)}
  window.gridgisReady = performance.now();
}});"""
            )
        )
        page = root.render()
        return _inline(page)

    def save(self, path: str | Path) -> Path:
        """Write the page; returns the path."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(self.html(), encoding="utf-8")
        return p


def _inline(page: str) -> str:
    js = (STATIC / "leaflet.js").read_text(encoding="utf-8")
    css = (STATIC / "leaflet.css").read_text(encoding="utf-8")
    for png in ("layers.png", "layers-2x.png"):
        data = base64.b64encode((STATIC / png).read_bytes()).decode()
        css = css.replace(f"images/{png}", f"data:image/png;base64,{data}")
    page = re.sub(
        r'<script src="gridgis-static:leaflet.js"></script>',
        lambda _: f"<script>{js}</script>",
        page,
    )
    page = re.sub(
        r'<link rel="stylesheet" href="gridgis-static:leaflet.css"/>',
        lambda _: f"<style>{css}</style>",
        page,
    )
    if "gridgis-static:" in page:
        raise RuntimeError("a map asset was not inlined")  # a folium template changed
    return page


_SWITCH_JS = """
  (function() {{
    var labels = {labels}, tips = {tips}, breaks = {breaks}, colours = {colours};
    var current = 0;
    function colour(s) {{
      if (s === null || s === undefined) return {none};
      var i = 0; while (i < breaks.length && s >= breaks[i]) i++;
      return colours[i];
    }}
    var layer = L.geoJson({data}, {{
      style: function(f) {{
        return {{color: '#ffffff', weight: 0.3, fillOpacity: 0.7,
                fillColor: colour(f.properties['s' + current])}};
      }}
    }});
    layer.bindTooltip(function(l) {{
      var p = l.feature.properties, out = [];
      for (var k in tips) out.push(tips[k] + ': ' + p[k]);
      var s = p['s' + current];
      out.push(labels[current]);
      out.push({served} + ': ' + (p['n' + current] === null ? '—' : p['n' + current]));
      out.push({share} + ': ' + (s === null ? '—' : Math.round(s * 100) + '%'));
      return out.join('<br>');
    }});
    layer.addTo(map);
    control.addOverlay(layer, {name});
    var pick = document.createElement('select');
    pick.id = 'gg-variant';
    labels.forEach(function(t, i) {{
      var o = document.createElement('option'); o.value = i; o.textContent = t; pick.appendChild(o);
    }});
    pick.addEventListener('change', function() {{ current = +pick.value; layer.setStyle(layer.options.style); }});
    document.getElementById('gg-tools').appendChild(pick);
  }})();
"""

_CSS = """
html, body { font-family: "Noto Sans CJK SC", "Microsoft YaHei", "PingFang SC", sans-serif; }
#gg-title { position: absolute; top: 10px; left: 55px; z-index: 1000; background: #fff;
  padding: 6px 12px; border-radius: 4px; font-size: 16px; font-weight: 600;
  box-shadow: 0 1px 4px rgba(0,0,0,.3); }
#gg-legend { position: absolute; bottom: 60px; left: 10px; z-index: 1000; background: #fff;
  padding: 8px 10px; border-radius: 4px; font-size: 12px; line-height: 18px;
  box-shadow: 0 1px 4px rgba(0,0,0,.3); max-height: 60%; overflow-y: auto; }
#gg-legend i { width: 14px; height: 14px; display: inline-block; margin-right: 6px;
  vertical-align: middle; opacity: .85; }
#gg-legend .gg-block + .gg-block { margin-top: 6px; }
#gg-legend .gg-note { color: #a50026; }
#gg-tools { position: absolute; top: 52px; left: 55px; z-index: 1000; }
#gg-search { width: 220px; padding: 4px 6px; }
#gg-full { padding: 3px 7px; }
#gg-variant { display: block; margin-top: 4px; padding: 3px; max-width: 300px; }
#gg-panel { position: absolute; bottom: 30px; right: 10px; z-index: 1000; background: #fff;
  padding: 8px; border-radius: 4px; max-height: 45%; overflow: auto; font-size: 12px;
  box-shadow: 0 1px 4px rgba(0,0,0,.3); }
.gg-table td, .gg-table th { padding: 1px 6px; text-align: right; }
@media print {
  #gg-tools, .leaflet-control-layers, .leaflet-control-zoom { display: none; }
  #gg-legend, #gg-title, #gg-panel { box-shadow: none; border: 1px solid #999; }
}
"""
