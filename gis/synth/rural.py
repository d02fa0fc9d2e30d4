"""Villages of the demo city: one to three settlements, each a grid of lanes with
courtyards (院落) of one to three households along both sides, two village roads through
the main settlement out to the fields, and a door number on every courtyard (村 + 门牌).

Coordinates are metres in the city's Gauss–Krüger zone.
"""

from __future__ import annotations

import numpy as np

import shapely

from gis.synth.places import _sample_in, _scatter_in
from gis.synth.urban import Drawn, _turn

LANE_GAP = 60.0  # between parallel lanes
YARD = 16.0  # courtyard frontage along a lane
OFFSET = 9.0  # from the lane's centre line to the courtyard's


def _yards(
    poly: shapely.Geometry, hub: np.ndarray, n: int, theta: float
) -> tuple[np.ndarray, np.ndarray]:
    """Up to ``n`` courtyard positions along a square grid of lanes around ``hub`` (those
    nearest it first), and the lanes.
    """
    side = float(np.sqrt(240.0 * n)) + LANE_GAP
    to, back = _turn(theta, hub)
    for _ in range(4):
        k = max(1, int(side // LANE_GAP))
        ticks = (np.arange(k + 1) - k / 2) * LANE_GAP
        half = ticks[-1] + 1e-6
        lanes = [back(np.array([[t, -half], [t, half]])) for t in ticks]
        lanes += [back(np.array([[-half, t], [half, t]])) for t in ticks]
        along = np.arange(-half + YARD, half - YARD / 2, YARD)
        pts = [(t + o, a) for t in ticks for a in along for o in (-OFFSET, OFFSET)]
        pts += [(a, t + o) for t in ticks for a in along for o in (-OFFSET, OFFSET)]
        uv = np.array(pts)
        near_cross = (
            np.min(np.abs(uv[:, :, None] - ticks[None, None, :]), axis=2).min(axis=1) < OFFSET - 1
        )
        uv = uv[~near_cross]
        xy = back(uv)
        xy = xy[shapely.contains_xy(poly, xy[:, 0], xy[:, 1])]
        if len(xy) >= n:
            break
        side *= 1.35
    xy = xy[np.argsort(np.hypot(*(xy - hub).T), kind="stable")[:n]]
    lines = shapely.intersection(shapely.linestrings(np.array(lanes)), poly)
    lines = shapely.get_parts(lines)
    return xy, lines[(shapely.get_type_id(lines) == 1) & (shapely.length(lines) > 10.0)]


def draw(
    poly: shapely.Geometry,
    centre: np.ndarray,
    sizes: np.ndarray,
    theta: float,
    short: str,
    rng: np.random.Generator,
) -> Drawn:
    """One village: its settlements, lanes and courtyards (households ``sizes``), the
    village roads, the door numbers, the committee's office.
    """
    out = Drawn()
    m = 1 + int(rng.integers(0, 3)) if len(sizes) > 150 else 1
    hubs = np.vstack([centre, _sample_in(poly, m - 1, rng)]) if m > 1 else centre[None, :]
    counts = np.bincount(
        np.minimum(rng.choice(m, size=len(sizes), p=_weights(m, rng)), m - 1), minlength=m
    )
    xy_parts = []
    for s in range(m):
        if not counts[s]:
            continue
        xy, lanes = _yards(poly, hubs[s], int(counts[s]), theta + float(rng.normal(0, 0.15)))
        if len(xy) < counts[s]:  # a sliver of a village: the rest scattered near the hub
            xy = np.vstack(
                [xy, _scatter_in(poly, hubs[s][None, :], 40.0, int(counts[s]) - len(xy), rng)]
            )
        xy_parts.append(xy)
        out.roads += [("lane", g) for g in lanes]
    out.roads += [("lane", g) for g in _village_roads(poly, centre, theta)]
    xy = np.vstack(xy_parts)
    out.xy.append(xy)
    out.households.append(sizes)
    out.address = [f"{short}村{i + 1}号" for i in range(len(sizes))]
    out.office = xy[0]
    return out


def _village_roads(poly: shapely.Geometry, centre: np.ndarray, theta: float) -> np.ndarray:
    """Two roads crossing at the village centre, out to the fields on every side."""
    to, back = _turn(theta, centre)
    r = float(np.abs(to(shapely.get_coordinates(poly))).max()) + 10.0
    lines = shapely.linestrings(np.array([back(np.array([[-r, 0.0], [r, 0.0]])),
                                          back(np.array([[0.0, -r], [0.0, r]]))]))  # fmt: skip
    g = shapely.get_parts(shapely.intersection(lines, poly))
    return g[(shapely.get_type_id(g) == 1) & (shapely.length(g) > 10.0)]


def _weights(m: int, rng: np.random.Generator) -> np.ndarray:
    w = rng.lognormal(0.0, 0.5, m)
    w[0] *= 2.0  # the main settlement is the largest
    return w / w.sum()
