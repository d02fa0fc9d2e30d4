"""The supervisor city map draws its buildings from the service's vector tiles: opened in
a real browser from a real server (both stores), it shows them in under 3 s, with no
script or tile error, and a street supervisor's tiles hold only that street."""

from __future__ import annotations

import time

import httpx2 as httpx
import pytest

from gis import access
from maps import browser
from tests.api.test_load import server  # noqa: F401  (the served store, a real process)

#: what the page says once its tiles are drawn: how many tile canvases hold a pixel
DRAWN = """
var cs = Array.from(document.querySelectorAll('.leaflet-tile-container canvas'));
var painted = cs.filter(function (c) {
  var d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  for (var i = 3; i < d.length; i += 4) { if (d[i] > 0) return true; }
  return false;
}).length;
return {tiles: cs.length, painted: painted, ready: window.gridgisTilesReady || null,
        errors: window.gridgisTileErrors || 0};
"""


@pytest.mark.parametrize("scope", [None, "370405001"])
def test_city_map_draws_building_tiles_in_under_3_s(server, chromium, scope):  # noqa: F811
    city, base, _ = server
    key = access.create_key(city, "supervisor", scope, f"map-{scope}")[0]
    time.sleep(0.6)  # the server sees the new key
    r = httpx.get(f"{base}/maps/city", headers={"X-API-Key": key})
    assert r.status_code == 200 and "connect-src 'self'" in r.headers["content-security-policy"]
    page = browser.open_map(f"{base}/maps/city", headers={"X-API-Key": key},
                            wait_for="window.gridgisTilesReady", after=DRAWN)  # fmt: skip
    got = page.facts["after"]
    assert page.errors == [], page.errors
    assert got["errors"] == 0 and got["tiles"] > 0 and got["painted"] > 0, got
    # navigation start → the tiles in view drawn
    assert got["ready"] is not None and got["ready"] < 3000, got
    print(
        f"city map ({scope or 'city'}): tiles drawn at {got['ready']:.0f} ms, "
        f"{got['painted']} of {got['tiles']} tile canvases painted"
    )


def test_city_map_needs_a_supervisor_inside_the_jurisdiction(server):  # noqa: F811
    city, base, _ = server
    viewer = access.create_key(city, "viewer", None, "map-viewer")[0]
    sup = access.create_key(city, "supervisor", "370405001", "map-sup")[0]
    time.sleep(0.6)
    assert httpx.get(f"{base}/maps/city", headers={"X-API-Key": viewer}).status_code == 403
    r = httpx.get(f"{base}/maps/city?street=370405100", headers={"X-API-Key": sup})
    assert r.status_code == 403
