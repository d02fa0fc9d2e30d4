"""Assertions shared by the tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

import shapely


def assert_layer_equal(a: pd.DataFrame, b: pd.DataFrame, *, tolerance: float = 1e-9) -> None:
    """Attributes equal exactly; geometries equal within ``tolerance`` degrees."""
    a = a.reset_index(drop=True)
    b = b.reset_index(drop=True)
    geom = "geometry" if "geometry" in a.columns else None
    cols = [c for c in a.columns if c != geom]
    pd.testing.assert_frame_equal(pd.DataFrame(a[cols]), pd.DataFrame(b[cols]), check_dtype=True)
    if geom:
        same = shapely.equals_exact(a.geometry.values, b.geometry.values, tolerance=tolerance)
        assert np.all(same), (
            f"{(~same).sum()} geometries differ, first at row {np.flatnonzero(~same)[0]}"
        )


def map_document(page: str) -> dict:
    """What a map page draws: its JSON data block, parsed."""
    import json
    import re

    m = re.search(r'<script type="application/json" id="gg-data">(.*?)</script>', page, re.S)
    assert m, "no data block in the page"
    return json.loads(m.group(1))


def api_routes(app) -> set[tuple[str, str]]:
    """(METHOD, path template) of every route the app documents (its OpenAPI paths)."""
    paths = app.openapi()["paths"]
    return {
        (m.upper(), p)
        for p, ops in paths.items()
        for m in ops
        if m in ("get", "post", "put", "patch", "delete")
    }
