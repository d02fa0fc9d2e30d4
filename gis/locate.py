"""Dispatch look-up (派单定位): which district, street, community, grid and worker are
responsible for a point, and the nearest facility of each type.

Built once per store version: R-trees of communities and grids, one KD-tree of the
facilities (each type on a plane of its own) in the metric zone; a batch of points is
answered with vectorised queries.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

import shapely

from gis import crs as gcrs
from gis.crs import metric_crs_of

#: metres between the planes the facility types are lifted onto in one KD-tree (see
#: :class:`Locator`): beyond any distance on a province's plane
LIFT = 1e8
#: the layers a locator is built from
LAYERS = ("districts", "streets", "communities", "grids", "assignments", "workers", "facilities")


class Locator:
    """Answers look-ups for one version of the store's layers."""

    def __init__(self, f: dict[str, pd.DataFrame]) -> None:
        comms = f["communities"]
        self.comms = comms.reset_index(drop=True)
        self.ctree = shapely.STRtree(self.comms.geometry.values)
        self.streets: dict[str, Any] = (
            dict(zip(f["streets"]["code"], f["streets"]["name"], strict=True))
            if "streets" in f
            else {}
        )
        self.districts: dict[str, Any] = (
            dict(zip(f["districts"]["code"], f["districts"]["name"], strict=True))
            if "districts" in f
            else {}
        )
        grids = f.get("grids")
        self.grids = grids.reset_index(drop=True) if grids is not None else None
        self.gtree = shapely.STRtree(self.grids.geometry.values) if self.grids is not None else None
        workers = f.get("workers")
        a = f.get("assignments")
        self.worker_of: dict[str, dict[str, Any]] = {}
        if a is not None:
            w = workers.set_index("id") if workers is not None else pd.DataFrame()
            cname = comms.set_index("code")["name"]
            for g, wid in zip(a["grid_code"], a["worker_id"], strict=True):
                if wid in w.index:
                    phone = w.at[wid, "phone"] if "phone" in w.columns else None
                    self.worker_of[g] = {
                        "id": wid,
                        "name": w.at[wid, "name"],
                        "phone": None if pd.isna(phone) else phone,
                        "vacant": False,
                    }
                else:  # a post from the quota nobody holds yet: named, so a call can go somewhere
                    self.worker_of[g] = {
                        "id": wid,
                        "name": vacant_post_name(str(cname.get(g[:12], "")), wid),
                        "phone": None,
                        "vacant": True,
                    }
        self.metric = metric_crs_of(comms)
        # plain lists for the per-point answers (a pandas row per point costs more than
        # the spatial query itself)
        self._comm_rows = self.comms[["code", "name", "street_code", "district_code"]].to_dict(
            "records"
        )
        self._grid_codes = self.grids["code"].tolist() if self.grids is not None else []
        self._to_metric = gcrs.transformer(
            gcrs.crs_uri(int(self.metric.to_epsg() or 4548)), axis_order=False
        )
        fac = f.get("facilities")
        #: every existing facility in one KD-tree, each type lifted onto a plane of its own
        #: (z = the type's rank × LIFT, farther than any two points of a province): the
        #: nearest facility of each of T types for a point is one query of T points, where
        #: one tree per type took T queries (numpy's overhead per query was most of a
        #: look-up). The distances are the plane's, exactly: the lift differs by 0 there.
        self.types: list[str] = []
        self._fac_ids: list[Any] = []
        self._fac_names: list[Any] = []
        self._ftree: cKDTree | None = None
        if fac is not None and len(fac):
            status = fac["status"].fillna("existing") if "status" in fac else "existing"
            fac = fac[pd.Series(status, index=fac.index).eq("existing")]
            xy = shapely.get_coordinates(fac.to_crs(self.metric).geometry.values)
            self.types = sorted(set(fac["type"].astype(str)))
            rank = np.searchsorted(self.types, fac["type"].astype(str).to_numpy())
            if len(fac):
                self._ftree = cKDTree(np.column_stack([xy, rank * LIFT]))
            self._fac_ids, self._fac_names = fac["id"].tolist(), fac["name"].tolist()

    def locate(
        self, x: np.ndarray, y: np.ndarray, crs: str = gcrs.CRS84, *, facilities: bool = True
    ) -> list[dict[str, Any] | None]:
        """One answer per point (``None`` outside the city); ``x, y`` are longitude and
        latitude (or easting and northing) in ``crs``, a URI of :func:`gis.crs.resolve`;
        without ``facilities`` the nearest facilities are left out (dispatch needs only
        the grid and its worker).
        """
        lon, lat = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        if crs != gcrs.CRS84:
            lon, lat = gcrs.transformer(crs, inverse=True, axis_order=False)(lon, lat)
            lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
        pts = shapely.points(lon, lat)
        comm = _first_hit(self.ctree, pts).tolist()
        grid = _first_hit(self.gtree, pts).tolist() if self.gtree is not None else [-1] * len(pts)
        # distances only for points in the city: far away the metric zone is meaningless
        inside = [i for i, c in enumerate(comm) if c >= 0] if facilities else []
        # per inside point: the distance to, and the row of, the nearest facility of each
        # type, as Python lists taken once (numpy's overhead per element was a look-up's bulk)
        dist: list[list[float]] = []
        row: list[list[int]] = []
        if inside and self._ftree is not None:
            mx, my = self._to_metric(lon[inside], lat[inside])
            n_t = len(self.types)
            q = np.empty((len(inside) * n_t, 3))
            q[:, 0] = np.repeat(np.asarray(mx, dtype=float), n_t)
            q[:, 1] = np.repeat(np.asarray(my, dtype=float), n_t)
            q[:, 2] = np.tile(np.arange(n_t) * LIFT, len(inside))
            d, j = self._ftree.query(q)
            dist, row = d.reshape(-1, n_t).tolist(), j.reshape(-1, n_t).tolist()
        slot = {i: k for k, i in enumerate(inside)}
        lons, lats = lon.tolist(), lat.tolist()
        out: list[dict[str, Any] | None] = []
        for i, ci in enumerate(comm):
            if ci < 0:
                out.append(None)
                continue
            c = self._comm_rows[ci]
            g = self._grid_codes[grid[i]] if grid[i] >= 0 and self._grid_codes else None
            k = slot.get(i)
            near = (
                {}
                if k is None or not dist
                else {
                    t: {
                        "id": self._fac_ids[r],
                        "name": self._fac_names[r],
                        "distance_m": round(d, 1),
                    }
                    for t, d, r in zip(self.types, dist[k], row[k], strict=True)
                }
            )
            out.append(
                {
                    "lon": lons[i],
                    "lat": lats[i],
                    "district": {
                        "code": c["district_code"],
                        "name": self.districts.get(c["district_code"]),
                    },
                    "street": {
                        "code": c["street_code"],
                        "name": self.streets.get(c["street_code"]),
                    },
                    "community": {"code": c["code"], "name": c["name"]},
                    "grid": {"code": g},
                    "worker": dict(self.worker_of[g]) if g in self.worker_of else None,
                    "facilities": near,
                }
            )
        return out


def _first_hit(tree: shapely.STRtree, pts: np.ndarray) -> np.ndarray:
    """Index of the (lowest-numbered) polygon holding each point, -1 where none."""
    p, g = tree.query(pts, predicate="intersects")
    none = np.iinfo(np.int64).max
    out = np.full(len(pts), none, dtype=np.int64)
    np.minimum.at(out, p, g)
    out[out == none] = -1
    return out


def vacant_post_name(community: str, post_id: str) -> str:
    """The name a vacant post (``<community>-Vnn``) is shown under: 某社区 第n网格员岗位（空缺）.

    >>> vacant_post_name("光明路社区居民委员会", "370402001001-V02")
    '光明路社区居民委员会 第2网格员岗位（空缺）'
    """
    seq = post_id.rsplit("-V", 1)[-1]
    n = int(seq) if seq.isdigit() else seq
    return f"{community} 第{n}网格员岗位（空缺）".strip()
