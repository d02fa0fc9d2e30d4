"""OGC API – Tiles: vector tiles (MVT) of every collection on WebMercatorQuad.

``/tileMatrixSets`` and ``/tileMatrixSets/{tms}`` describe the grid; a collection's
``/tiles`` lists its tilesets, ``/tiles/{tms}`` is the tileset (OGC tileset metadata and
TileJSON 3.0 fields, so MapLibre/Mapbox clients can open it as it is), and
``/tiles/{tms}/{z}/{x}/{y}`` the tile (column ``x``, row ``y``, as TiPg and the XYZ
convention order them). The same access rules as the features: the collection's role,
the jurisdiction's filter, the properties the caller may not see left out. An empty tile
is ``204 No Content``; a tile outside the matrix, or an unknown matrix set, 404.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from api.http import cache
from api.http.deps import Caller, Ctx, base
from api.http.errors import Problem
from api.http.features import collection, depends_on, extent, grid_extra, hidden, scope_where
from gis import schema
from gis import tiles as gt
from gis.access import Principal

router = APIRouter(tags=["OGC API – Tiles"])
MVT = "application/vnd.mapbox-vector-tile"
_KINDS = {"str": "String", "int": "Number", "float": "Number", "bool": "Boolean"}


def _matrix_set(tms_id: str):  # noqa: ANN202
    try:
        return gt.matrix_set(tms_id)
    except gt.OutsideMatrix as exc:
        raise Problem(404, str(exc)) from None


def _extra_in(
    c: Any, who: Principal, ctx: Ctx, tms_id: str, zxy: tuple[int, int, int]
) -> dict[str, dict[str, Any]] | None:
    """The extra properties (a grid's worker and covered shares, as its features carry)
    of the features that may lie in the tile: found by their bounds in this process's
    grids, so the store gets a few hundred, not the city's.
    """
    import shapely

    extra = grid_extra(c, ctx)
    if not extra:
        return None

    def index() -> tuple[Any, list[str]]:
        g = ctx.layers.get(("grids",))["grids"]
        return shapely.STRtree(g.geometry.values), [str(x) for x in g["code"]]

    tree, codes = ctx.layers.memo(("grid_tree",), ("grids",), index)
    drop = hidden(c, who)
    near = tree.query(shapely.box(*gt.lonlat_with_buffer(tms_id, *zxy)))
    return {codes[i]: {k: v for k, v in extra[codes[i]].items() if k not in drop}
            for i in near if codes[i] in extra}  # fmt: skip


@router.get("/tileMatrixSets")
def tile_matrix_sets(request: Request, who: Caller) -> JSONResponse:
    """The tile matrix sets offered."""
    b = base(request)
    return JSONResponse({"tileMatrixSets": [
        {"id": t, "title": t, "links": [{"rel": "self", "href": f"{b}/tileMatrixSets/{t}",
                                         "type": "application/json"}]}
        for t in gt.TMS_IDS
    ]})  # fmt: skip


@router.get("/tileMatrixSets/{tms_id}")
def tile_matrix_set(tms_id: str, who: Caller) -> JSONResponse:
    """A tile matrix set's definition (OGC 2D Tile Matrix Set 2.0)."""
    return JSONResponse(_matrix_set(tms_id).model_dump(mode="json", exclude_none=True))


@router.get("/collections/{cid}/tiles")
def tilesets(request: Request, cid: str, who: Caller, ctx: Ctx) -> JSONResponse:
    """The tilesets of a collection."""
    c = collection(cid, who, ctx)
    b = base(request)
    return JSONResponse({"tilesets": [
        {"title": f"{c.title} ({t})", "dataType": "vector", "tileMatrixSetId": t,
         "links": [{"rel": "self", "href": f"{b}/collections/{cid}/tiles/{t}", "type": "application/json"},
                   {"rel": "item", "href": f"{b}/collections/{cid}/tiles/{t}/{{z}}/{{x}}/{{y}}", "type": MVT,
                    "templated": True}]}
        for t in gt.TMS_IDS
    ]})  # fmt: skip


@router.get("/collections/{cid}/tiles/{tms_id}")
def tileset(request: Request, cid: str, tms_id: str, who: Caller, ctx: Ctx) -> JSONResponse:
    """A tileset: its tile template, zoom levels, bounds and the layer's fields."""
    c = collection(cid, who, ctx)
    _matrix_set(tms_id)
    b = base(request)
    drop = hidden(c, who)
    fields = {f.name: _KINDS[f.kind] for f in schema.layer(c.layer).fields if f.name not in drop}
    template = f"{b}/collections/{cid}/tiles/{tms_id}/{{z}}/{{x}}/{{y}}"
    return JSONResponse({
        "title": c.title, "dataType": "vector", "tileMatrixSetId": tms_id,
        "tileMatrixSetURI": f"http://www.opengis.net/def/tilematrixset/OGC/1.0/{tms_id}",
        "crs": "http://www.opengis.net/def/crs/EPSG/0/3857",
        "links": [{"rel": "self", "href": f"{b}/collections/{cid}/tiles/{tms_id}", "type": "application/json"},
                  {"rel": "item", "href": template, "type": MVT, "templated": True},
                  {"rel": "http://www.opengis.net/def/rel/ogc/1.0/tiling-scheme",
                   "href": f"{b}/tileMatrixSets/{tms_id}", "type": "application/json"}],
        "tileMatrixSetLimits": [{"tileMatrix": str(z), "minTileRow": 0, "maxTileRow": 2**z - 1,
                                 "minTileCol": 0, "maxTileCol": 2**z - 1}
                                for z in range(gt.MIN_ZOOM, gt.MAX_ZOOM + 1)],
        "layers": [{"id": c.layer, "dataType": "vector", "propertiesSchema": {
            "type": "object", "properties": {f.name: {"type": schema.JSON_TYPES[f.kind]}
                                             for f in schema.layer(c.layer).fields if f.name in fields}}}],
        # TileJSON 3.0, for map clients that open a tileset by its URL
        "tilejson": "3.0.0", "tiles": [template], "minzoom": gt.MIN_ZOOM, "maxzoom": gt.MAX_ZOOM,
        "bounds": list(extent(ctx) or (-180, -85.0511, 180, 85.0511)),
        "vector_layers": [{"id": c.layer, "fields": fields, "minzoom": gt.MIN_ZOOM,
                           "maxzoom": gt.MAX_ZOOM}],
    })  # fmt: skip


@router.get(
    "/collections/{cid}/tiles/{tms_id}/{z}/{x}/{y}",
    responses={200: {"content": {MVT: {}}}, 204: {"description": "an empty tile"}},
)
def tile(
    request: Request, cid: str, tms_id: str, z: int, x: int, y: int, who: Caller, ctx: Ctx
) -> Response:
    """One vector tile (MVT) of the collection."""
    c = collection(cid, who, ctx)
    _matrix_set(tms_id)
    h = cache.conditional(request, ctx.layers, who, depends_on(c))
    if isinstance(h, Response):
        return h
    drop = hidden(c, who)
    cols = [f.name for f in schema.layer(c.layer).fields if f.name not in drop]
    try:
        data = ctx.store.tile(c.layer, tms_id, z, x, y, where=scope_where(c, who, ctx) or None,
                              columns=cols, extra=_extra_in(c, who, ctx, tms_id, (z, x, y)))  # fmt: skip
    except gt.OutsideMatrix as exc:
        raise Problem(404, str(exc)) from None
    if not data:
        return Response(status_code=204, headers=h)
    return Response(data, media_type=MVT, headers=h)
