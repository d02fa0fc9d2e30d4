/* gridgis map renderer: draws the map described by the JSON data block #gg-data.
 *
 * Escaping by construction: data only ever arrives as JSON (parsed, never evaluated), and
 * every text from it reaches the page through textContent or DOM nodes — never innerHTML,
 * never a template literal. Leaflet's layer control treats names as HTML, so names are
 * escaped right where they are handed to it (esc).
 */
(function () {
  'use strict';
  var doc = JSON.parse(document.getElementById('gg-data').textContent);

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function esc(s) {
    return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
      .replace(/"/g, '&quot;').replace(/'/g, '&#39;');
  }
  function colour(c, fallback) {  // only #rgb / #rrggbb[aa] reach a style
    return (typeof c === 'string' && /^#[0-9a-fA-F]{3,8}$/.test(c)) ? c : fallback;
  }
  function show(v) {
    return (v === null || v === undefined || v === '') ? '\u2014' : String(v);
  }
  function table(fields, props) {
    var t = el('table', null, 'gg-tip');
    fields.forEach(function (f) {
      var tr = t.insertRow();
      tr.insertCell().textContent = f[1];
      tr.insertCell().textContent = show(props[f[0]]);
    });
    return t;
  }
  function link(v) {  // a popup: plain text, or {href, text} for a relative .html link
    if (v && typeof v === 'object' && typeof v.href === 'string' && /^[\w\-.\/]+\.html$/.test(v.href) &&
        v.href.indexOf('..') < 0) {
      var a = el('a', v.text);
      a.setAttribute('href', v.href);
      return a;
    }
    return el('span', v && typeof v === 'object' ? v.text : v);
  }

  var map = L.map('gg-map', {preferCanvas: true, zoomSnap: 0.25});
  window.gridgisMap = map;
  map.fitBounds(doc.bounds);
  L.control.scale().addTo(map);
  var bases = {}, overlays = {};
  (doc.tiles || []).forEach(function (t) {
    var layer = L.tileLayer(t.url, {attribution: t.attr, subdomains: t.subdomains || 'abc'});
    (t.overlay ? overlays : bases)[esc(t.name)] = layer;
    layer.addTo(map);
  });

  function polygons(spec) {
    var style = spec.style;
    var layer = L.geoJSON(spec.data, {
      style: function (f) {
        return {color: colour(style.color, '#555555'), weight: style.weight, dashArray: style.dash,
                fillOpacity: style.fill ? style.opacity : 0,
                fillColor: colour(f.properties._fill, '#bdbdbd')};
      }
    });
    if (spec.tooltip) layer.bindTooltip(function (l) { return table(spec.tooltip, l.feature.properties); }, {sticky: true});
    if (spec.popup) layer.bindPopup(function (l) { return link(l.feature.properties[spec.popup]); });
    return layer;
  }

  function points(spec) {
    var group = L.featureGroup();
    spec.data.features.forEach(function (f) {
      var ll = [f.geometry.coordinates[1], f.geometry.coordinates[0]];
      if (spec.circle) {
        L.circle(ll, {radius: spec.circle, color: colour(spec.colour, '#2c7bb6'), weight: 1, fill: true,
                      fillOpacity: 0.08, interactive: false}).addTo(group);
      }
      var m = L.circleMarker(ll, {radius: spec.radius, color: '#ffffff', weight: 1.5, fill: true,
                                  fillColor: colour(spec.colour, '#2c7bb6'), fillOpacity: 1});
      if (f.properties.label !== null && f.properties.label !== undefined) m.bindTooltip(el('span', show(f.properties.label)));
      m.addTo(group);
    });
    return group;
  }

  function switchable(spec, tools) {
    var current = 0;
    function fill(p) {
      if (p['a' + current] === false) return spec.na;
      var s = p['s' + current];
      if (s === null || s === undefined) return spec.none;
      var i = 0;
      while (i < spec.breaks.length && s >= spec.breaks[i]) i++;
      return spec.colours[i];
    }
    var layer = L.geoJSON(spec.data, {
      style: function (f) {
        return {color: '#ffffff', weight: 0.3, fillOpacity: 0.7, fillColor: colour(fill(f.properties))};
      }
    });
    layer.bindTooltip(function (l) {
      var p = l.feature.properties, v = spec.variants[current], s = p['s' + current];
      var t = table(spec.tooltip, p);
      [[null, v], [spec.words.served, show(p['n' + current])],
       [spec.words.share, p['a' + current] === false ? spec.words.na
         : s === null || s === undefined ? '\u2014' : Math.round(s * 100) + '%']].forEach(function (r) {
        var tr = t.insertRow();
        if (r[0] === null) { var c = tr.insertCell(); c.colSpan = 2; c.textContent = r[1]; return; }
        tr.insertCell().textContent = r[0];
        tr.insertCell().textContent = r[1];
      });
      return t;
    }, {sticky: true});
    var pick = el('select');
    pick.id = 'gg-variant';
    spec.variants.forEach(function (t, i) { var o = el('option', t); o.value = String(i); pick.appendChild(o); });
    pick.addEventListener('change', function () { current = +pick.value; layer.setStyle(layer.options.style); });
    tools.appendChild(pick);
    return layer;
  }

  // vector tiles of this service (buildings at city scale): the template is relative and
  // checked when the map is made; properties reach the page only through table()
  var pending = 0, vectors = 0;
  function mvt(spec) {
    if (!L.vectorGrid || !/^\/collections\/[a-z_]+\/tiles\/WebMercatorQuad\/\{z\}\/\{x\}\/\{y\}/.test(spec.url)) return L.layerGroup();
    function fill(p) {
      if (!spec.by) return colour(spec.fill, '#2c7bb6');
      var v = p[spec.by], i = 0;
      if (v === null || v === undefined) return '#bdbdbd';
      while (i < spec.breaks.length && v >= spec.breaks[i]) i++;
      return colour(spec.colours[i], '#bdbdbd');
    }
    var styles = {};
    styles[spec.layer] = function (p) {
      return {radius: spec.radius, weight: 0.5, color: '#ffffff', fill: true, fillColor: fill(p), fillOpacity: 0.9};
    };
    var layer = L.vectorGrid.protobuf(spec.url, {
      rendererFactory: L.canvas.tile, vectorTileLayerStyles: styles, interactive: !!spec.tooltip.length,
      maxNativeZoom: 19, fetchOptions: {credentials: 'same-origin'}
    });
    vectors++;
    layer.on('loading', function () { pending++; });
    layer.on('load', function () {
      pending--;
      window.gridgisTilesReady = performance.now();
      window.gridgisTiles = document.querySelectorAll('.leaflet-tile-container canvas').length;
    });
    layer.on('tileerror', function () { window.gridgisTileErrors = (window.gridgisTileErrors || 0) + 1; });
    if (spec.tooltip.length) {
      layer.on('click', function (e) {
        L.popup().setLatLng(e.latlng).setContent(table(spec.tooltip, e.layer.properties || {})).openOn(map);
      });
    }
    return layer;
  }

  var tools = document.getElementById('gg-tools');
  doc.layers.forEach(function (spec) {
    var layer = spec.kind === 'points' ? points(spec) : spec.kind === 'mvt' ? mvt(spec)
      : spec.kind === 'switchable' ? switchable(spec, tools) : polygons(spec);
    (spec.overlay === false ? bases : overlays)[esc(spec.name)] = layer;
    if (spec.show) layer.addTo(map);
  });
  L.control.layers(bases, overlays, {collapsed: false, position: 'topright'}).addTo(map);

  document.getElementById('gg-title').textContent = doc.title;
  var legend = document.getElementById('gg-legend');
  doc.legend.forEach(function (block) {
    var b = el('div', null, 'gg-block');
    b.appendChild(el('b', block.title));
    block.rows.forEach(function (r) {
      var row = el('div'), sw = el('i');
      sw.style.background = block.kind === 'line' ? 'none' : colour(r[0], '#bdbdbd');
      if (block.kind === 'line') sw.style.border = '2px dashed ' + colour(r[0], '#bdbdbd');
      if (block.kind === 'dot') sw.style.borderRadius = '50%';
      row.appendChild(sw);
      row.appendChild(document.createTextNode(r[1]));
      b.appendChild(row);
    });
    if (block.note) b.appendChild(el('div', block.note, 'gg-note'));
    legend.appendChild(b);
  });

  var box = document.getElementById('gg-search'), options = document.getElementById('gg-options');
  box.placeholder = doc.words.search;
  doc.search.forEach(function (x) { var o = el('option'); o.value = x.t; options.appendChild(o); });
  box.addEventListener('change', function () {
    var q = box.value.trim();
    for (var i = 0; i < doc.search.length; i++) {
      if (doc.search[i].t === q || doc.search[i].t.indexOf(q) >= 0) { map.fitBounds(doc.search[i].b); return; }
    }
  });
  var full = document.getElementById('gg-full');
  full.textContent = doc.words.fullscreen;
  full.addEventListener('click', function () {
    var e = document.documentElement;
    if (document.fullscreenElement) { document.exitFullscreen(); } else if (e.requestFullscreen) { e.requestFullscreen(); }
  });

  if (doc.panel) {
    var panel = el('div');
    panel.id = 'gg-panel';
    panel.appendChild(el('b', doc.panel.title));
    var t = el('table', null, 'gg-table'), head = t.createTHead().insertRow();
    doc.panel.columns.forEach(function (c) { head.appendChild(el('th', c)); });
    var body = t.createTBody();
    doc.panel.rows.forEach(function (r) {
      var tr = body.insertRow();
      r.forEach(function (v) { tr.insertCell().textContent = show(v); });
    });
    panel.appendChild(t);
    document.body.appendChild(panel);
  }
  window.gridgisReady = performance.now();
})();
