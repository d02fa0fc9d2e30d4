"""Urban communities of the demo city: streets forming blocks, gated compounds (小区) in the
blocks with their internal paths, residential buildings in rows whose households follow
floors × units, and an address on every building (小区 + 楼号).

All coordinates are metres in the city's Gauss–Krüger zone. A community is drawn in a frame
turned by its township's street orientation, so its streets run in two directions like a
real grid plan; the blocks nearest the community's centre are built first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import shapely

from gis.synth.places import largest_remainder

#: building types: floors, units (单元), households per floor of a unit; and how common
TYPES = np.array([(6, 2, 2), (6, 3, 2), (11, 2, 2), (11, 3, 2), (18, 2, 3), (26, 2, 2), (33, 2, 3)])
TYPE_P = np.array([0.22, 0.18, 0.16, 0.12, 0.14, 0.10, 0.08])
UNIT_LENGTH = 26.0  # metres of building per unit
ROW_GAP = {6: 36.0, 11: 44.0, 18: 55.0, 26: 62.0, 33: 70.0}  # between rows (sun spacing)
SETBACK = 14.0  # from the street to the first building
COMPOUND = ("花园", "家园", "小区", "新村", "苑", "嘉园", "华府", "公寓")


@dataclass
class Drawn:
    """What one community's drawing adds to the city."""

    xy: list[np.ndarray] = field(default_factory=list)  # building positions
    households: list[np.ndarray] = field(default_factory=list)
    address: list[str] = field(default_factory=list)
    roads: list[tuple[str, shapely.Geometry]] = field(default_factory=list)
    office: np.ndarray | None = None  # the committee's office (its service station)


def _turn(theta: float, origin: np.ndarray):  # noqa: ANN202 - two small closures
    c, s = np.cos(theta), np.sin(theta)

    def to(xy: np.ndarray) -> np.ndarray:
        d = xy - origin
        return np.column_stack([d[:, 0] * c + d[:, 1] * s, -d[:, 0] * s + d[:, 1] * c])

    def back(uv: np.ndarray) -> np.ndarray:
        return np.column_stack([uv[:, 0] * c - uv[:, 1] * s, uv[:, 0] * s + uv[:, 1] * c]) + origin

    return to, back


def street_grid(poly: shapely.Geometry, theta: float, origin: np.ndarray, spacing: tuple[float, float],
                phase: tuple[float, float]) -> np.ndarray:  # fmt: skip
    """Lines in two directions every ``spacing`` metres across ``poly``, clipped to it."""
    to, back = _turn(theta, origin)
    uv = to(shapely.get_coordinates(poly))
    (u0, v0), (u1, v1) = uv.min(axis=0) - 1.0, uv.max(axis=0) + 1.0
    lines = []
    for a in np.arange(u0 + phase[0] % spacing[0], u1, spacing[0]):
        lines.append(back(np.array([[a, v0], [a, v1]])))
    for b in np.arange(v0 + phase[1] % spacing[1], v1, spacing[1]):
        lines.append(back(np.array([[u0, b], [u1, b]])))
    if not lines:
        return np.empty(0, dtype=object)
    g = shapely.intersection(shapely.linestrings(np.array(lines)), poly)
    g = shapely.get_parts(g)
    return g[(shapely.get_type_id(g) == 1) & (shapely.length(g) > 20.0)]


def blocks_of(poly: shapely.Geometry, lines: np.ndarray) -> np.ndarray:
    """The faces ``lines`` cut ``poly`` into (the blocks)."""
    work = shapely.union_all(np.concatenate([[shapely.boundary(poly)], lines]))
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(work)))
    inside = shapely.contains_xy(poly, *shapely.get_coordinates(shapely.point_on_surface(faces)).T)
    return faces[inside & (shapely.area(faces) > 100.0)]


def _rows(
    block: shapely.Geometry, theta: float, kind: np.ndarray
) -> tuple[np.ndarray, list[shapely.Geometry]]:
    """Building positions in rows inside ``block`` (set back from its streets), and the
    block's internal paths (宅间路): one between every two rows and one across the rows
    through the gap between their middle buildings.
    """
    floors, units = int(kind[0]), int(kind[1])
    c = np.asarray(shapely.get_coordinates(shapely.centroid(block))[0])
    to, back = _turn(theta, c)
    inner = shapely.buffer(block, -SETBACK)
    if inner.is_empty:
        return np.empty((0, 2)), []
    uv = to(shapely.get_coordinates(inner))
    (u0, v0), (u1, v1) = uv.min(axis=0), uv.max(axis=0)
    gap, length = ROW_GAP[floors], units * UNIT_LENGTH + 14.0
    nrows = max(1, int((v1 - v0) // gap))
    vs = (np.arange(nrows) - (nrows - 1) / 2) * gap
    nb = max(1, int((u1 - u0) // length))
    us = (np.arange(nb) - (nb - 1) / 2) * length
    grid = np.array([(u, v) for v in vs for u in us])
    xy = back(grid)
    ok = shapely.contains_xy(inner, xy[:, 0], xy[:, 1])
    lines = [np.array([[u0 - 40.0, v], [u1 + 40.0, v]]) for v in (vs[:-1] + vs[1:]) / 2]
    if nb >= 2:
        mid = (us[(nb - 1) // 2] + us[(nb - 1) // 2 + 1]) / 2
        lines.append(np.array([[mid, v0 - 40.0], [mid, v1 + 40.0]]))
    paths = []
    for ln in lines:
        cut = shapely.intersection(shapely.linestrings(back(ln)), block)
        for part in shapely.get_parts(cut):
            if part.geom_type == "LineString" and part.length > 30.0:
                paths.append(part)
    return xy[ok], paths


def draw(
    poly: shapely.Geometry,
    centre: np.ndarray,
    households: int,
    theta: float,
    through: np.ndarray,
    short: str,
    rng: np.random.Generator,
) -> Drawn:
    """One urban community: its streets and blocks, compounds in the blocks nearest its
    centre until ``households`` are housed (exactly), the buildings' addresses, the office.

    ``through``: roads of the city crossing the community (arterials), block borders too.
    """
    out = Drawn()
    spacing = (float(rng.uniform(260, 380)), float(rng.uniform(260, 380)))
    streets = street_grid(
        poly, theta, centre, spacing, (float(rng.uniform(0, 380)), float(rng.uniform(0, 380)))
    )
    out.roads += [("residential", g) for g in streets]
    blocks = blocks_of(poly, np.concatenate([streets, through]) if len(through) else streets)
    order = np.argsort(shapely.distance(blocks, shapely.Point(centre)), kind="stable")
    placed: list[np.ndarray] = []
    capacity: list[int] = []
    names: list[str] = []
    for attempt in range(3):  # taller buildings when the blocks cannot hold everyone
        placed, capacity, names = [], [], []
        total = 0.0
        for bi in order:
            kind = (
                TYPES[rng.choice(len(TYPES), p=TYPE_P)]
                if attempt == 0
                else TYPES[-1 - (attempt - 1)]
            )
            xy, paths = _rows(blocks[bi], theta, kind)
            if not len(xy):
                continue
            cap = int(np.prod(kind))
            name = _compound_name(short, len(names), rng)
            names.append(name)
            for j, p in enumerate(xy):
                placed.append(p)
                capacity.append(cap)
                out.address.append(f"{name}{j + 1}号楼")
            out.roads += [("path", p) for p in paths]
            total += cap * len(xy) * 0.92
            if total >= households:
                break
        if sum(capacity) * 1.0 >= households:
            break
        out.address.clear()
        out.roads = [r for r in out.roads if r[0] != "path"]
    cap_arr = np.asarray(capacity, dtype=np.int64)
    if not len(cap_arr) or cap_arr.sum() < households:  # a sliver of a community: scatter
        return _scattered(poly, centre, households, short, rng, out)
    occupied = _occupancy(cap_arr, households, rng)
    keep = occupied > 0
    xy = np.asarray(placed)[keep]
    out.xy.append(xy)
    out.households.append(occupied[keep])
    out.address = [a for a, k in zip(out.address, keep, strict=True) if k]
    out.office = xy[int(np.argmin(np.hypot(*(xy - centre).T)))]
    return out


def _compound_name(short: str, n: int, rng: np.random.Generator) -> str:
    suffix = COMPOUND[(n + int(rng.integers(0, len(COMPOUND)))) % len(COMPOUND)]
    return f"{short}{suffix}" + ("" if n < len(COMPOUND) else f"{n // len(COMPOUND) + 1}期")


def _occupancy(capacity: np.ndarray, households: int, rng: np.random.Generator) -> np.ndarray:
    """Households per building: each at most its capacity, together exactly ``households``
    (filled in order, most buildings 85–100 % occupied).
    """
    want = capacity * rng.uniform(0.85, 1.0, len(capacity))
    n = min(len(capacity), int(np.searchsorted(np.cumsum(want), households)) + 1)
    while capacity[:n].sum() < households and n < len(capacity):
        n += 1
    share = np.minimum(largest_remainder(want[:n], households), capacity[:n])
    short = households - int(share.sum())
    for j in range(n):  # what the caps left over goes where there is room, in order
        if short <= 0:
            break
        add = min(short, int(capacity[j] - share[j]))
        share[j] += add
        short -= add
    return np.concatenate([share, np.zeros(len(capacity) - n, dtype=np.int64)])


def _scattered(
    poly: shapely.Geometry,
    centre: np.ndarray,
    households: int,
    short: str,
    rng: np.random.Generator,
    out: Drawn,
) -> Drawn:
    """A community too small for a compound: mid-rise buildings where there is room."""
    from gis.synth.places import _scatter_in

    n = max(1, households // 44)
    xy = _scatter_in(poly, centre[None, :], 60.0, n, rng)
    hh = largest_remainder(np.ones(n), households)
    out.xy.append(xy)
    out.households.append(hh)
    out.address = [f"{short}小区{i + 1}号楼" for i in range(n)]
    out.office = xy[0]
    return out
