"""Walking distance on a road network: noding, snapping, multi-source shortest paths.

The graph is built with shapely (``union_all`` nodes every crossing) and searched with
SciPy's compiled Dijkstra (``scipy.sparse.csgraph``): one run per facility type from a
virtual source joined to every facility, so each building's distance to the *nearest*
facility comes out of a single search. Buildings and facilities join the network at the
nearest road vertex; the straight walk to it is added to the distance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra
from scipy.spatial import cKDTree

import geopandas as gpd
import shapely


@dataclass
class Network:
    """A noded, undirected road graph in a metric CRS."""

    xy: np.ndarray
    graph: csr_matrix
    tree: cKDTree
    component: np.ndarray

    @property
    def n(self) -> int:
        """Number of vertices."""
        return len(self.xy)


def build(roads: gpd.GeoSeries) -> Network:
    """Node the road lines (every crossing becomes a vertex) and build the graph.

    ``roads`` must be in a metric CRS.
    """
    if roads.crs is None or not roads.crs.is_projected:
        raise ValueError(
            f"roads must be in a metric CRS (got {roads.crs}); use roads.to_crs(metric)"
        )
    lines = shapely.get_parts(shapely.union_all(roads.values))
    coords, line = shapely.get_coordinates(lines, return_index=True)
    same = line[1:] == line[:-1]
    a = np.flatnonzero(same)
    keys = np.round(coords, 3)
    uniq, inv = np.unique(keys, axis=0, return_inverse=True)
    inv = inv.ravel()
    u, v = inv[a], inv[a + 1]
    w = np.hypot(*(coords[a + 1] - coords[a]).T)
    keep = (u != v) & (w > 0)
    u, v, w = u[keep], v[keep], w[keep]
    n = len(uniq)
    g = coo_matrix(
        (np.concatenate([w, w]), (np.concatenate([u, v]), np.concatenate([v, u]))), shape=(n, n)
    ).tocsr()
    g.sum_duplicates()
    _, comp = connected_components(g, directed=False)
    return Network(uniq.astype(float), g, cKDTree(uniq), comp)


def snap(net: Network, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest vertex of each point and the straight distance to it."""
    dist, idx = net.tree.query(xy)
    return idx.astype(np.int64), dist


def nearest(net: Network, sources: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Network distance from each target point to its nearest source point (``inf`` where
    no source is reachable), access walks to and from the network included.
    """
    if len(sources) == 0:
        return np.full(len(targets), np.inf)
    sv, sa = snap(net, sources)
    # several sources on one vertex: the shortest access walk counts (a sparse matrix
    # would add them up)
    best = np.full(net.n, np.inf)
    np.minimum.at(best, sv, sa)
    sv = np.flatnonzero(np.isfinite(best))
    sa = best[sv]
    n = net.n
    # a virtual vertex n joined to every source vertex by that source's access walk
    ext = coo_matrix(
        (sa + 1e-9, (np.full(len(sv), n), sv)), shape=(n + 1, n + 1)
    ).tocsr() + _padded(net.graph, n + 1)
    dist = dijkstra(ext, directed=True, indices=n)
    tv, ta = snap(net, targets)
    return ta + dist[tv] - 1e-9


def _padded(g: csr_matrix, size: int) -> csr_matrix:
    coo = g.tocoo()
    return coo_matrix((coo.data, (coo.row, coo.col)), shape=(size, size)).tocsr()


def reach_areas(net: Network, xy: np.ndarray, radius: float, *, widen: float = 25.0) -> list:
    """For each point of ``xy`` (metric), the road segments it reaches within ``radius``
    metres (its access walk included), widened by ``widen`` metres: a walking service area.
    A point that reaches no segment gets the ``widen`` circle around itself.
    """
    v, a = snap(net, xy)
    d = dijkstra(net.graph, directed=False, indices=v, limit=radius) + a[:, None]
    coo = net.graph.tocoo()
    areas = []
    for i in range(len(xy)):
        ok = (d[i, coo.row] <= radius) & (d[i, coo.col] <= radius) & (coo.row < coo.col)
        segs = (
            shapely.linestrings(np.stack([net.xy[coo.row[ok]], net.xy[coo.col[ok]]], axis=1))
            if ok.any()
            else np.array([shapely.Point(xy[i])], dtype=object)
        )
        areas.append(shapely.union_all(shapely.buffer(segs, widen, quad_segs=2)))
    return areas
