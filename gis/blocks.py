"""The units grids are made of: street blocks, split only where one alone is too big.

Grid rules (属地管理, 边界清晰) draw grids along streets, lanes, walls and rivers and never
through a compound that fits in one grid. So a community is first cut by its roads into
**blocks** (街坊) — the enclosures of Fleischmann et al.'s morphological tessellation,
made here with shapely's ``polygonize`` on the noded roads and the community outline
(momepy's ``enclosures`` does the same but wants a GeoDataFrame per call and is about 20×
slower on the city's 2,469 small communities) — and grids are unions of whole blocks. A
block is split only when it alone holds more households than the band allows: first
along its internal paths (小区道路), then, where a piece is still too big, into the cells
of its buildings (Voronoi cells, or footprints' cells when footprints are given). A block
with no buildings joins the neighbour it shares most border with; an uninhabited piece of
a community (an islet, an exclave) joins the nearest inhabited unit.

Every shared border between two units is classed by how it was made: ``street`` (between
blocks: the border is a road), ``path`` (between pieces of one block cut by its paths) or
``open`` (between building cells). Division cuts streets first, paths next, open ground
last.

Coordinates are the division's scaled degrees (x·cos φ, y), so lengths × 111,320 are
metres.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import shapely

from gis.graphcut import METRES_PER_DEGREE, shared_borders
from gis.rules import Band

#: road kinds that are a compound's internal paths (小区道路), not streets
PATH_KINDS = frozenset({"path", "footway", "service"})
#: a road end this close to another road or the outline is joined to it (metres)
SNAP_M = 5.0

STREET, PATH, OPEN = 0, 1, 2


@dataclass
class Roads:
    """The roads of a division in scaled coordinates: streets and internal paths apart."""

    streets: np.ndarray
    paths: np.ndarray
    street_tree: shapely.STRtree = field(init=False)
    path_tree: shapely.STRtree = field(init=False)

    def __post_init__(self) -> None:
        self.street_tree = shapely.STRtree(self.streets)
        self.path_tree = shapely.STRtree(self.paths)

    def clip(self, area: shapely.Geometry, which: str) -> np.ndarray:
        """The lines of ``which`` ("streets" or "paths") inside ``area``."""
        tree, geoms = (
            (self.street_tree, self.streets) if which == "streets" else (self.path_tree, self.paths)
        )
        if not len(geoms):
            return np.empty(0, dtype=object)
        hit = geoms[tree.query(area, predicate="intersects")]
        if not len(hit):
            return hit
        parts = shapely.get_parts(shapely.intersection(hit, area))
        return parts[(shapely.get_type_id(parts) == 1) & (shapely.length(parts) > 0)]


@dataclass
class Units:
    """One community's units and their adjacency."""

    polys: np.ndarray  # unit polygons (scaled coordinates)
    w: np.ndarray  # households per unit
    members: list[np.ndarray]  # building indices of each unit
    a: np.ndarray  # edges: unit pairs a < b …
    b: np.ndarray
    length: np.ndarray  # … their shared border (metres) by class, shape (edges, 3)
    virtual: np.ndarray  # edges joining pieces of a community that do not touch
    split_blocks: int = 0  # blocks split because alone they exceed the band
    snapped: int = 0  # road ends joined to a road or the outline within SNAP_M
    empty_joined: int = 0  # units with no households joined to a touching empty one
    islands: int = 0  # uninhabited pieces joined to the nearest unit (a MultiPolygon grid)
    # the pieces before empty ones were joined: polygons, the unit each is in, their edges
    raw_polys: np.ndarray | None = None
    raw_unit: np.ndarray | None = None
    raw_a: np.ndarray | None = None
    raw_b: np.ndarray | None = None

    def spread_empty(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Give each empty block of an empty unit to the grid that reaches it first across
        the empty land (breadth first from the grids around it), so one grid does not
        take a whole park or field belt; kept only where every grid stays connected.

        Returns the raw pieces' polygons and their grid labels.
        """
        assert self.raw_polys is not None and self.raw_unit is not None
        assert self.raw_a is not None and self.raw_b is not None
        lab = labels[self.raw_unit].copy()
        n = len(lab)
        nbrs: list[list[int]] = [[] for _ in range(n)]
        for i, j in zip(self.raw_a.tolist(), self.raw_b.tolist(), strict=True):
            nbrs[i].append(j)
            nbrs[j].append(i)
        for u in np.flatnonzero(self.w <= 0):
            pieces = np.flatnonzero(self.raw_unit == u)
            if len(pieces) < 2:
                continue
            mine = set(pieces.tolist())
            trial = lab.copy()
            trial[pieces] = -1
            frontier = [p for p in pieces.tolist() if any(q not in mine for q in nbrs[p])]
            for p in frontier:  # first ring: the neighbouring grid with most neighbours
                outside = [int(lab[q]) for q in nbrs[p] if q not in mine]
                trial[p] = max(sorted(set(outside)), key=outside.count)
            queue = list(frontier)
            while queue:
                nxt = []
                for p in queue:
                    for q in nbrs[p]:
                        if trial[q] < 0:
                            trial[q] = trial[p]
                            nxt.append(q)
                queue = nxt
            if (trial < 0).any() or not _all_connected(trial, nbrs):
                continue
            lab = trial
        return self.raw_polys, lab

    @property
    def xy(self) -> np.ndarray:
        """A point inside each unit."""
        if not len(self.polys):
            return np.empty((0, 2))
        return shapely.get_coordinates(shapely.point_on_surface(self.polys))


def _snap(lines: np.ndarray, outline: shapely.Geometry, tol: float) -> tuple[np.ndarray, int]:
    """Join each dangling road end within ``tol`` of another road or the outline to it."""
    if not len(lines):
        return lines, 0
    ends = np.concatenate([shapely.get_point(lines, 0), shapely.get_point(lines, -1)])
    owner = np.concatenate([np.arange(len(lines)), np.arange(len(lines))])
    targets = np.concatenate([lines, [outline]])
    tree = shapely.STRtree(targets)
    ei, ti = tree.query(ends, predicate="dwithin", distance=tol)
    other = ti != owner[ei]
    ei, ti = ei[other], ti[other]
    d = shapely.distance(ends[ei], targets[ti])
    touching = np.unique(ei[d <= tol * 1e-6])
    dangling = np.setdiff1d(np.unique(ei), touching)
    joins = []
    for e in dangling:
        cand = ti[ei == e]
        t = cand[int(np.argmin(shapely.distance(ends[e], targets[cand])))]
        joins.append(shapely.shortest_line(ends[e], targets[t]))
    if not joins:
        return lines, 0
    return np.concatenate([lines, np.asarray(joins, dtype=object)]), len(joins)


def faces(area: shapely.Geometry, lines: np.ndarray) -> np.ndarray:
    """The faces ``lines`` cut ``area`` into (they tile it)."""
    if not len(lines):
        return np.asarray([p for p in shapely.get_parts(area) if p.area > 0], dtype=object)
    noded = shapely.union_all(np.concatenate([[shapely.boundary(area)], lines]))
    out = shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
    if not len(out):
        return np.asarray([p for p in shapely.get_parts(area) if p.area > 0], dtype=object)
    # slivers of noding are kept (as empty units they join a neighbour), so faces tile
    rep = shapely.get_coordinates(shapely.point_on_surface(out))
    inside = shapely.contains_xy(area, rep[:, 0], rep[:, 1])
    return out[inside & (shapely.area(out) > 0)]


def locate(polys: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Index of the polygon holding each point (the nearest one for points on none)."""
    out = np.full(len(xy), -1, dtype=np.int64)
    if not len(xy) or not len(polys):
        return out
    tree = shapely.STRtree(polys)
    pts = shapely.points(xy)
    pi, gi = tree.query(pts, predicate="intersects")
    out[pi[::-1]] = gi[::-1]  # the first polygon where a point lies on a shared border
    lost = np.flatnonzero(out < 0)
    if len(lost):
        out[lost] = tree.query_nearest(pts[lost], return_distance=False)[1]
    return out


def cells(
    region: shapely.Geometry, xy: np.ndarray, footprints: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Cells of the buildings at ``xy`` tiling ``region``: per distinct position, its
    Voronoi cell clipped to the region, and the cell of each building.

    With footprints, the Voronoi seeds are points along each footprint's outline (every
    ~2 m), so a cell follows the house's shape rather than its centre; a building's cell
    is the union of its seeds' cells.
    """
    uniq, inv = np.unique(np.round(xy, 12), axis=0, return_inverse=True)
    inv = inv.ravel()
    if len(uniq) == 1:
        return np.asarray([region], dtype=object), inv
    minx, miny, maxx, maxy = region.bounds
    pad = max(maxx - minx, maxy - miny) + 1.0
    frame = shapely.box(minx - pad, miny - pad, maxx + pad, maxy + pad)
    if footprints is not None:
        seeds, seed_of = [], []
        step = 2.0 / METRES_PER_DEGREE
        first = np.unique(inv, return_index=True)[1]
        for u, j in enumerate(first):
            ring = shapely.segmentize(shapely.boundary(footprints[j]), step)
            c = shapely.get_coordinates(ring)[:-1]
            if not len(c):  # a building without a footprint: its point is the seed
                c = uniq[u][None, :]
            seeds.append(c)
            seed_of.append(np.full(len(c), u))
        s = np.vstack(seeds)
        s, keep = np.unique(np.round(s, 12), axis=0, return_index=True)
        owner = np.concatenate(seed_of)[keep]
        vc = shapely.get_parts(
            shapely.voronoi_polygons(shapely.multipoints(s), extend_to=frame, ordered=True)
        )
        out = np.empty(len(uniq), dtype=object)
        for u in range(len(uniq)):
            out[u] = shapely.intersection(shapely.union_all(vc[owner == u]), region)
        return out, inv
    vc = shapely.get_parts(
        shapely.voronoi_polygons(shapely.multipoints(uniq), extend_to=frame, ordered=True)
    )
    return shapely.intersection(vc, region), inv


def build(
    area: shapely.Geometry,
    xy: np.ndarray,
    w: np.ndarray,
    band: Band,
    roads: Roads | None,
    footprints: np.ndarray | None = None,
    *,
    fine: bool = False,
) -> Units:
    """Units of one community (or of a region being re-divided).

    ``xy``/``w``: building positions (scaled) and households; ``footprints`` (optional,
    scaled) their polygons. With ``fine``, a block too big for one grid is split into its
    buildings' cells throughout (each cell inside its path piece), for when its path
    pieces cannot be grouped into the band; blocks that fit stay whole either way.
    """
    snapped = 0
    lines = np.empty(0, dtype=object)
    if roads is not None:
        lines, snapped = _snap(
            roads.clip(area, "streets"), shapely.boundary(area), SNAP_M / METRES_PER_DEGREE
        )
    blocks = faces(area, lines)
    where = locate(blocks, xy)
    polys: list[shapely.Geometry] = []
    members: list[np.ndarray] = []
    kind_of: list[tuple[int, int, int]] = []  # (block, path piece, cell); -1: whole
    split = 0
    for bi, block in enumerate(blocks):
        idx = np.flatnonzero(where == bi)
        if w[idx].sum() <= band.max or len(idx) <= 1:
            polys.append(block)
            members.append(idx)
            kind_of.append((bi, -1, -1))
            continue
        split += 1
        pieces = np.asarray([block], dtype=object)
        if roads is not None:
            pieces = faces(block, roads.clip(block, "paths"))
        pw = locate(pieces, xy[idx])
        for pj, piece in enumerate(pieces):
            sub = idx[pw == pj]
            if (w[sub].sum() <= band.max and not fine) or len(sub) <= 1:
                polys.append(piece)
                members.append(sub)
                kind_of.append((bi, pj, -1))
                continue
            cell, inv = cells(piece, xy[sub], None if footprints is None else footprints[sub])
            extra = len(cell)
            for c in range(len(cell)):
                mine = sub[inv == c]
                parts = [p for p in shapely.get_parts(cell[c]) if p.area > 0]
                if len(parts) > 1:  # a cell clipped by a concave piece: keep the building's part
                    x, y = xy[mine[0]]
                    main = max(
                        range(len(parts)),
                        key=lambda j: (parts[j].intersects(shapely.Point(x, y)), parts[j].area),
                    )
                    for j, part in enumerate(parts):
                        if j != main:  # the stray part: an empty unit, to join a neighbour
                            polys.append(part)
                            members.append(np.zeros(0, dtype=np.int64))
                            kind_of.append((bi, pj, extra))
                            extra += 1
                    polys.append(parts[main])
                else:
                    polys.append(cell[c])
                members.append(mine)
                kind_of.append((bi, pj, c))
    units = _join_empty(
        np.asarray(polys, dtype=object),
        np.array([float(w[m].sum()) for m in members]),
        members,
        np.array(kind_of, dtype=np.int64).reshape(-1, 3),
    )
    units.split_blocks, units.snapped = split, snapped
    # islets: pieces of the area without a building (each joined the nearest unit above)
    parts = [p for p in shapely.get_parts(area) if p.area > 0]
    if len(parts) > 1:
        units.islands = sum(
            not shapely.contains_xy(p, xy[:, 0], xy[:, 1]).any() if len(xy) else True for p in parts
        )
    return units


def _edges(polys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs of units sharing more than half a metre of border, and its length (metres)."""
    if len(polys) < 2:
        z = np.zeros(0, dtype=np.int64)
        return z, z, np.zeros(0)
    a, b, length = shared_borders(polys)
    metres = length * METRES_PER_DEGREE
    ok = metres > 0.5  # a real shared border, not a touch
    return a[ok], b[ok], metres[ok]


def _join_empty(
    polys: np.ndarray, w: np.ndarray, members: list[np.ndarray], kind_of: np.ndarray
) -> Units:
    """Units with no households join a neighbour; then the edges, classed.

    ``kind_of``: per unit (block, path piece or -1, cell or -1).
    """
    a, b, length = _edges(polys)
    n = len(polys)
    owner = np.arange(n)  # the unit each one has joined (a root joins itself)
    joined = 0
    if (w > 0).any() and (w <= 0).any():
        # touching empty units become one (a park, a works, fields): the division gives
        # each such piece whole to one grid, and the grids may reach each other through it
        from scipy.sparse import coo_matrix
        from scipy.sparse.csgraph import connected_components

        empty = w <= 0
        both = empty[a] & empty[b]
        g = coo_matrix((np.ones(int(both.sum())), (a[both], b[both])), shape=(n, n))
        _, comp = connected_components(g, directed=False)
        first = np.full(n, n)
        np.minimum.at(first, comp, np.arange(n))
        owner = np.where(empty, first[comp], np.arange(n))
        joined = int(empty.sum() - len(np.unique(owner[empty])))
        # an empty piece touching nothing inhabited (an islet): the nearest inhabited unit
        touches = np.zeros(n, dtype=bool)
        edge_mixed = empty[a] != empty[b]
        touches[owner[a[edge_mixed]]] = True
        touches[owner[b[edge_mixed]]] = True
        targets = np.flatnonzero(~empty)
        lone = np.unique(owner[empty & ~touches[owner]])
        if len(lone):
            tree = shapely.STRtree(polys[targets])
            for r in lone:
                mine = shapely.union_all(polys[owner == r])
                t = tree.query_nearest(mine, all_matches=False)
                owner[owner == r] = targets[int(t[0])]
    roots, new = np.unique(owner, return_inverse=True)
    new = new.ravel()
    m = len(roots)
    out_polys = np.empty(m, dtype=object)
    out_members: list[np.ndarray] = []
    for i, r in enumerate(roots):
        mine = np.flatnonzero(new == i)
        out_polys[i] = polys[r] if len(mine) == 1 else shapely.union_all(polys[mine])
        out_members.append(np.sort(np.concatenate([members[j] for j in mine])))
    out_w = np.bincount(new, weights=w, minlength=m)
    # edges between the new units, classed by how the two were made
    na, nb = new[a], new[b]
    keep = na != nb
    na, nb, ln = np.minimum(na, nb)[keep], np.maximum(na, nb)[keep], length[keep]
    ka, kb = kind_of[roots[na]], kind_of[roots[nb]]
    cls = np.where(ka[:, 0] != kb[:, 0], STREET, np.where(ka[:, 1] != kb[:, 1], PATH, OPEN))
    uk, inv = np.unique(na * m + nb, return_inverse=True)
    L = np.zeros((len(uk), 3))
    np.add.at(L, (inv.ravel(), cls), ln)
    ea, eb, virtual = _link_pieces(out_polys, uk // max(m, 1), uk % max(m, 1))
    L = np.vstack([L, np.zeros((len(ea) - len(L), 3))])
    return Units(
        out_polys, out_w, out_members, ea, eb, L, virtual, empty_joined=joined,
        raw_polys=polys, raw_unit=new, raw_a=a, raw_b=b,
    )  # fmt: skip


def _all_connected(labels: np.ndarray, nbrs: list[list[int]]) -> bool:
    """Whether the pieces of each label form one connected group."""
    seen = np.zeros(len(labels), dtype=bool)
    groups: set[int] = set()
    for s in range(len(labels)):
        if seen[s]:
            continue
        if int(labels[s]) in groups:
            return False
        groups.add(int(labels[s]))
        seen[s] = True
        stack = [s]
        while stack:
            p = stack.pop()
            for q in nbrs[p]:
                if not seen[q] and labels[q] == labels[s]:
                    seen[q] = True
                    stack.append(q)
    return True


def _link_pieces(
    polys: np.ndarray, a: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Virtual edges joining the pieces of a community that share no border (nearest
    pieces first, as a spanning tree), so a grid may hold a whole multi-part village.
    """
    n = len(polys)
    virtual = np.zeros(len(a), dtype=bool)
    if n < 2:
        return a, b, virtual
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    m = coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    count, comp = connected_components(m, directed=False)
    if count == 1:
        return a, b, virtual
    shapes = [shapely.union_all(polys[comp == c]) for c in range(count)]
    links = []
    joined = {0}
    while len(joined) < count:  # Prim's tree over the pieces by distance
        best = None
        for c in joined:
            for d in range(count):
                if d in joined:
                    continue
                dist = shapely.distance(shapes[c], shapes[d])
                if best is None or dist < best[0]:
                    best = (dist, c, d)
        assert best is not None
        _, c, d = best
        uc, ud = np.flatnonzero(comp == c), np.flatnonzero(comp == d)
        dc = shapely.distance(polys[uc], shapes[d])
        i = int(uc[np.argmin(dc)])
        j = int(ud[np.argmin(shapely.distance(polys[ud], polys[i]))])
        links.append((min(i, j), max(i, j)))
        joined.add(d)
    la = np.array([x for x, _ in links], dtype=np.int64)
    lb = np.array([y for _, y in links], dtype=np.int64)
    return (
        np.concatenate([a, la]),
        np.concatenate([b, lb]),
        np.concatenate([virtual, np.ones(len(la), dtype=bool)]),
    )
