"""OGC API – Tiles on both stores: the conformance walk (tile matrix sets, tileset
metadata, matrix limits, empty tiles, 404 outside the matrix), access, and a decoded tile
that equals the features it came from."""

from __future__ import annotations

import mapbox_vector_tile
import morecantile
import numpy as np
import pytest
from fastapi.testclient import TestClient

import shapely

from api.http import create_app
from gis import tiles as gt

TMS = morecantile.tms.get("WebMercatorQuad")


@pytest.fixture(scope="module")
def tiled(served):
    store, keys = served
    return store, TestClient(create_app(store, anonymous_read=False)), keys


def _h(keys, name="admin"):
    return {"X-API-Key": keys[name]}


def _busy_tile(store, z):
    """A tile at zoom ``z`` over the middle of the grids (features in it)."""
    g = store.read("grids")
    c = g.geometry.values[len(g) // 2].representative_point()
    return TMS.tile(c.x, c.y, z)


def test_the_tiles_conformance_walk(tiled):
    store, c, keys = tiled
    h = _h(keys)
    sets = c.get("/tileMatrixSets", headers=h).json()["tileMatrixSets"]
    assert [s["id"] for s in sets] == ["WebMercatorQuad"]
    tms = c.get("/tileMatrixSets/WebMercatorQuad", headers=h).json()
    assert tms["id"] == "WebMercatorQuad" and len(tms["tileMatrices"]) >= gt.MAX_ZOOM
    assert c.get("/tileMatrixSets/CGCS2000Quad", headers=h).status_code == 404
    listed = c.get("/collections/grids/tiles", headers=h).json()["tilesets"]
    assert listed[0]["tileMatrixSetId"] == "WebMercatorQuad"
    ts = c.get("/collections/grids/tiles/WebMercatorQuad", headers=h).json()
    assert ts["tiles"][0].endswith("/collections/grids/tiles/WebMercatorQuad/{z}/{x}/{y}")
    limits = {lim["tileMatrix"]: lim for lim in ts["tileMatrixSetLimits"]}
    assert limits["3"]["maxTileRow"] == 7 and limits["3"]["maxTileCol"] == 7
    assert "households" in ts["vector_layers"][0]["fields"]
    t = _busy_tile(store, 14)
    r = c.get(f"/collections/grids/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}", headers=h)
    assert (
        r.status_code == 200 and r.headers["content-type"] == "application/vnd.mapbox-vector-tile"
    )
    assert mapbox_vector_tile.decode(r.content)["grids"]["features"]
    # an empty tile (the open sea at zoom 14) is 204 with no body
    r = c.get("/collections/grids/tiles/WebMercatorQuad/14/0/0", headers=h)
    assert r.status_code == 204 and r.content == b""
    # outside the matrix: a column or row past the zoom's last, a zoom past the last,
    # an unknown set: 404 problems
    for path in ("3/8/0", "3/0/8", f"{gt.MAX_ZOOM + 1}/0/0", "-1/0/0"):
        r = c.get(f"/collections/grids/tiles/WebMercatorQuad/{path}", headers=h)
        assert r.status_code in (404, 422), (path, r.status_code)
        if r.status_code == 404:
            assert r.headers["content-type"].startswith("application/problem+json")
    assert c.get("/collections/grids/tiles/Nope/3/0/0", headers=h).status_code == 404
    assert c.get("/collections/nope/tiles/WebMercatorQuad/3/0/0", headers=h).status_code == 404


def test_tiles_keep_the_access_rules_of_the_features(tiled):
    store, c, keys = tiled
    t = _busy_tile(store, 15)
    path = f"/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}"
    # buildings are for supervisors: a viewer gets 403, not a tile of households
    assert c.get("/collections/buildings" + path, headers=_h(keys, "viewer")).status_code == 403
    # a supervisor's tile holds only buildings of its jurisdiction
    r = c.get("/collections/buildings" + path, headers=_h(keys, "supervisor_other"))
    if r.status_code == 200:
        codes = {
            f["properties"]["community_code"]
            for f in mapbox_vector_tile.decode(r.content)["buildings"]["features"]
        }
        assert all(code.startswith("370405100") for code in codes)
    else:
        assert r.status_code == 204
    mine = c.get("/collections/buildings" + path, headers=_h(keys, "admin"))
    assert mine.status_code == 200
    # an ETag, and a repeat that still holds is 304
    again = c.get(
        "/collections/buildings" + path,
        headers={**_h(keys, "admin"), "If-None-Match": mine.headers["etag"]},
    )
    assert again.status_code == 304


@pytest.mark.parametrize("layer,z", [("grids", 14), ("buildings", 16), ("facilities", 13)])
def test_a_decoded_tile_equals_the_features_it_came_from(tiled, layer, z):
    store, c, keys = tiled
    t = _busy_tile(store, z)
    r = c.get(f"/collections/{layer}/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}", headers=_h(keys))
    assert r.status_code in (200, 204)
    got = mapbox_vector_tile.decode(r.content)[layer]["features"] if r.status_code == 200 else []
    key = store._spec(layer).key[0]
    xy, _ = gt.bounds("WebMercatorQuad", t.z, t.x, t.y)
    unit = (xy[2] - xy[0]) / gt.EXTENT
    pad = unit * gt.BUFFER
    df = store.read(layer, bbox=gt.lonlat_with_buffer("WebMercatorQuad", t.z, t.x, t.y))
    merc = shapely.transform(
        df.geometry.values, lambda a: np.column_stack(gt._TO_3857.transform(a[:, 0], a[:, 1]))
    )
    inside = shapely.intersects(
        merc, shapely.box(xy[0] - pad, xy[1] - pad, xy[2] + pad, xy[3] + pad)
    )
    want = df[inside].set_index(key, drop=False)
    assert sorted(f["properties"][key] for f in got) == sorted(want.index)
    m = merc[inside]
    by_key = dict(zip(want.index, m, strict=True))
    # the same properties as the features of the OGC API (a grid's worker and covered
    # shares too; a null is left out of a tile)
    ids = ", ".join(f"'{k}'" for k in want.index)
    feats = c.get(f"/collections/{layer}/items", headers=_h(keys),
                  params={"filter": f"{key} IN ({ids})", "limit": 10_000}).json()["features"]  # fmt: skip
    props = {f["id"]: {k: v for k, v in f["properties"].items() if v is not None} for f in feats}
    assert len(props) == len(got)
    if layer == "grids":
        assert any("worker_id" in p["properties"] for p in got)
        assert any(k.startswith("share_") for p in got for k in p["properties"])
    for f in got:
        p = f["properties"]
        assert set(p) == set(props[p[key]]), p[key]
        for col, v in p.items():
            w = props[p[key]][col]
            assert w == pytest.approx(v) if isinstance(v, float) else w == v, (col, v, w)
        # the geometry, back in Web Mercator, within a tile unit or two of the feature's
        # (clipped to the tile and its buffer)
        g = shapely.transform(shapely.geometry.shape(f["geometry"]), lambda a: np.column_stack(
            [xy[0] + a[:, 0] * unit, xy[1] + a[:, 1] * unit]))  # fmt: skip
        clip = shapely.clip_by_rect(
            by_key[p[key]], xy[0] - pad, xy[1] - pad, xy[2] + pad, xy[3] + pad
        )
        assert shapely.hausdorff_distance(g, clip) < 3 * unit, p[key]


@pytest.mark.parametrize("z", [11, 13])
def test_buildings_at_city_zoom_come_per_cell_with_their_sums(tiled, z):
    """Below zoom 14 a building tile holds one point per cell and community: how many
    buildings and their households, which add up to those of the tile and its buffer."""
    store, c, keys = tiled
    t = _busy_tile(store, z)
    r = c.get(f"/collections/buildings/tiles/WebMercatorQuad/{t.z}/{t.x}/{t.y}", headers=_h(keys))
    assert r.status_code == 200
    got = mapbox_vector_tile.decode(r.content)["buildings"]["features"]
    xy, _ = gt.bounds("WebMercatorQuad", t.z, t.x, t.y)
    pad = (xy[2] - xy[0]) / gt.EXTENT * gt.BUFFER
    df = store.read("buildings", bbox=gt.lonlat_with_buffer("WebMercatorQuad", t.z, t.x, t.y))
    x, y = gt._TO_3857.transform(df.geometry.x.to_numpy(), df.geometry.y.to_numpy())
    inside = df[(x >= xy[0] - pad) & (x <= xy[2] + pad) & (y >= xy[1] - pad) & (y <= xy[3] + pad)]
    assert sum(f["properties"]["n"] for f in got) == len(inside)
    assert sum(f["properties"]["households"] for f in got) == int(inside["households"].sum())
    per = inside.groupby("community_code")["households"].sum()
    mine = {}
    for f in got:
        mine[f["properties"]["community_code"]] = (
            mine.get(f["properties"]["community_code"], 0) + f["properties"]["households"]
        )
    assert mine == {k: int(v) for k, v in per.items()}
    assert len(got) < len(inside) / 3  # fewer points than buildings: that is the point
    assert all(f["geometry"]["type"] == "Point" for f in got)


def test_tile_bounds_are_morecantiles():
    """The closed-form bounds (metres and degrees, tile and buffer) are morecantile's and
    PROJ's."""
    tms = morecantile.tms.get("WebMercatorQuad")
    rng = np.random.default_rng(7)
    for _ in range(500):
        z = int(rng.integers(0, gt.MAX_ZOOM + 1))
        x, y = (int(v) for v in rng.integers(0, 2**z, 2))
        t = morecantile.Tile(x, y, z)
        xy, ll = gt.bounds("WebMercatorQuad", z, x, y)
        assert np.allclose(xy, tuple(tms.xy_bounds(t)), rtol=0, atol=1e-6)
        assert np.allclose(ll, tuple(tms.bounds(t)), rtol=0, atol=1e-9)
        x0, y0, x1, y1 = tms.xy_bounds(t)
        pad = (x1 - x0) * gt.BUFFER / gt.EXTENT
        lo = gt._TO_3857.transform(x0 - pad, y0 - pad, direction="INVERSE")  # PROJ's
        hi = gt._TO_3857.transform(x1 + pad, y1 + pad, direction="INVERSE")
        d = np.subtract(gt.lonlat_with_buffer("WebMercatorQuad", z, x, y), (*lo, *hi))
        d[[0, 2]] = (d[[0, 2]] + 180) % 360 - 180  # PROJ wraps a buffer over ±180°
        assert np.abs(d).max() < 1e-9
    with pytest.raises(gt.OutsideMatrix):
        gt.bounds("WebMercatorQuad", 3, 8, 0)
