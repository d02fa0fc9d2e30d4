"""Grids along streets: blocks as units, empty pieces, exact solving and the packing bound."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import geopandas as gpd
import shapely

from gis import blocks, exact
from gis.partition import border_alignment, divide
from gis.rules import Band

LON0, LAT0 = 117.55, 34.86  # central Zaozhuang
M = 1 / 111_320  # a metre in degrees of latitude
KX = 1 / (111_320 * np.cos(np.radians(LAT0)))  # … and of longitude
BAND = Band()


def _xy(x_m: float, y_m: float) -> tuple[float, float]:
    return LON0 + x_m * KX, LAT0 + y_m * M


def _box(x0: float, y0: float, x1: float, y1: float) -> shapely.Polygon:
    return shapely.box(*_xy(x0, y0), *_xy(x1, y1))


def _line(*pts: tuple[float, float]) -> shapely.LineString:
    return shapely.LineString([_xy(*p) for p in pts])


def _city(
    parts: list[shapely.Polygon],
    houses: list[tuple[float, float, int]],
    roads: list[tuple[str, shapely.LineString]],
    code: str = "370402001001",
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, gpd.GeoDataFrame | None]:
    comm = gpd.GeoDataFrame(
        {"code": [code], "name": ["测试社区居民委员会"], "kind": ["urban"],
         "street_code": [code[:9]], "district_code": [code[:6]]},
        geometry=[shapely.MultiPolygon(parts)], crs="EPSG:4326",
    )  # fmt: skip
    b = gpd.GeoDataFrame(
        {"id": [f"B{i}" for i in range(len(houses))], "community_code": code,
         "households": [h for _, _, h in houses]},
        geometry=[shapely.Point(_xy(x, y)) for x, y, _ in houses], crs="EPSG:4326",
    )  # fmt: skip
    r = (
        gpd.GeoDataFrame(
            {"id": [f"R{i}" for i in range(len(roads))], "kind": [k for k, _ in roads]},
            geometry=[g for _, g in roads],
            crs="EPSG:4326",
        )  # fmt: skip
        if roads
        else None
    )
    return comm, b, r


def _lattice(n: int, size: float = 200.0) -> list[tuple[str, shapely.LineString]]:
    """Streets every ``size`` m across an n×n-block square (inner lines only)."""
    out = []
    for i in range(1, n):
        out.append(("residential", _line((i * size, 0), (i * size, n * size))))
        out.append(("residential", _line((0, i * size), (n * size, i * size))))
    return out


def _tiles(grids: gpd.GeoDataFrame, area: shapely.Geometry) -> None:
    g = grids.to_crs(4548)
    a = gpd.GeoSeries([area], crs=4326).to_crs(4548)[0]
    union = shapely.union_all(g.geometry.values)
    assert abs(union.area - a.area) < 1e-6 * a.area + 1.0
    assert abs(g.area.sum() - union.area) < 1e-6 * a.area + 1.0  # no overlaps


def test_grids_are_unions_of_whole_blocks_and_borders_run_on_streets():
    # 3×3 blocks of 200 m, each with four buildings of 40 households (160 per block)
    houses = [
        (bx * 200 + dx, by * 200 + dy, 40)
        for bx in range(3) for by in range(3) for dx in (60, 140) for dy in (60, 140)
    ]  # fmt: skip
    comm, b, r = _city([_box(0, 0, 600, 600)], houses, _lattice(3))
    d = divide(comm, b, r)
    _tiles(d.grids, comm.geometry[0])
    assert d.grids["households"].sum() == 9 * 160
    assert (d.grids["households"] > 0).all()
    # every block falls whole into one grid
    for bx in range(3):
        for by in range(3):
            block = _box(bx * 200 + 1, by * 200 + 1, bx * 200 + 199, by * 200 + 199)
            hits = [g for g in d.grids.geometry if g.intersection(block).area > 1e-12]
            assert len(hits) == 1
    rep = d.communities.iloc[0]
    assert rep["split_blocks"] == 0 and rep["empty_grids"] == 0
    al = border_alignment(d.grids, comm.assign(district_code="370402"), r)
    assert al.iloc[-1]["share"] > 0.99
    # with the roads ignored the same city's borders run between buildings instead
    d0 = divide(comm, b, None)
    al0 = border_alignment(d0.grids, comm.assign(district_code="370402"), r)
    assert al0.iloc[-1]["share"] < al.iloc[-1]["share"]


def test_a_block_over_the_band_is_split_along_its_path_and_only_that_one():
    # west block 600 households in two rows with a path between them; east block 300
    houses = [(x, y, 100) for x in (50, 100, 150) for y in (60, 140)]
    houses += [(x, y, 100) for x in (250, 300, 350) for y in (100,)]
    roads = [("residential", _line((200, 0), (200, 200))), ("path", _line((0, 100), (200, 100)))]
    comm, b, r = _city([_box(0, 0, 400, 200)], houses, roads)
    d = divide(comm, b, r)
    rep = d.communities.iloc[0]
    assert rep["split_blocks"] == 1
    assert sorted(d.grids["households"]) == [300, 300, 300]
    g = d.grids.to_crs(4548)
    path = gpd.GeoSeries([roads[1][1]], crs=4326).to_crs(4548)[0]
    inner = shapely.intersection(g.geometry[0].boundary, g.geometry[1].boundary)
    # the west block's two halves meet along the path
    borders = [
        shapely.intersection(g.geometry[i].boundary, g.geometry[j].boundary)
        for i in range(3) for j in range(i + 1, 3)
    ]  # fmt: skip
    assert any(x.length > 150 and x.distance(path) < 1 for x in borders), inner


def test_an_uninhabited_islet_joins_the_nearest_grid_and_no_grid_is_empty():
    main = _box(0, 0, 400, 200)
    islet = _box(600, 0, 700, 100)  # no buildings
    houses = [(x, y, 70) for x in (50, 150, 250, 350) for y in (50, 150)]
    comm, b, r = _city([main, islet], houses, [("residential", _line((200, 0), (200, 200)))])
    d = divide(comm, b, r)
    assert (d.grids["households"] > 0).all()
    assert d.grids["households"].sum() == 560
    _tiles(d.grids, comm.geometry[0])
    rep = d.communities.iloc[0]
    assert rep["islands"] == 1 and rep["multipart_grids"] == 1


def test_a_village_in_nine_pieces_is_one_grid():
    parts = [_box(i * 300, 0, i * 300 + 200, 200) for i in range(9)]
    hh = [279, 85, 0, 0, 0, 0, 0, 0, 0]  # 364 households in two of the pieces
    houses = [(i * 300 + 100, 100, h) for i, h in enumerate(hh) if h]
    comm, b, _ = _city(parts, houses, [], code="370402001201")
    comm["kind"] = "rural"
    d = divide(comm, b, None)
    assert list(d.grids["households"]) == [364]
    assert d.grids.geometry[0].geom_type == "MultiPolygon"


def test_a_community_with_no_households_gets_one_grid_reported():
    comm, b, r = _city([_box(0, 0, 300, 300)], [(100, 100, 0)], [])
    d = divide(comm, b, r)
    assert len(d.grids) == 1 and d.grids["households"].iloc[0] == 0
    assert d.communities.iloc[0]["empty_grids"] == 1
    assert d.communities.iloc[0]["bound"] == "no"


def test_a_small_gap_in_the_streets_is_snapped_and_reported():
    houses = [(100, y, 180) for y in (50, 150)] + [(300, y, 180) for y in (50, 150)]
    # the middle street stops 3 m short of the community's edge: still two blocks
    roads = [("residential", _line((200, 3), (200, 200)))]
    comm, b, r = _city([_box(0, 0, 400, 200)], houses, roads)
    d = divide(comm, b, r)
    assert d.communities.iloc[0]["snapped"] == 1
    assert sorted(d.grids["households"]) == [360, 360]
    # 30 m short is a real gap, not snapped
    roads = [("residential", _line((200, 30), (200, 200)))]
    comm, b, r = _city([_box(0, 0, 400, 200)], houses, roads)
    assert divide(comm, b, r).communities.iloc[0]["snapped"] == 0


def test_fourteen_big_buildings_make_four_grids_in_band():
    # 14 large buildings, 1,534 households, in a row of cells: the case
    sizes = [160, 120, 105, 110, 100, 130, 95, 150, 85, 140, 90, 100, 75, 74]
    assert sum(sizes) == 1534
    houses = [(30 + 60 * (i % 7), 25 + 50 * (i // 7), h) for i, h in enumerate(sizes)]
    comm, b, _ = _city([_box(0, 0, 420, 100)], houses, [])
    d = divide(comm, b, None)
    assert d.grids["households"].between(300, 400).all(), list(d.grids["households"])
    assert d.communities.iloc[0]["bound"] == "yes"


# --- properties ------------------------------------------------------------------------


def _lattice_graph(rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = [], []
    for r in range(rows):
        for c in range(cols):
            i = r * cols + c
            if c + 1 < cols:
                a.append(i)
                b.append(i + 1)
            if r + 1 < rows:
                a.append(i)
                b.append(i + cols)
    return np.array(a), np.array(b)


def _connected(nodes: np.ndarray, a: np.ndarray, b: np.ndarray) -> bool:
    s = set(nodes.tolist())
    seen, stack = {int(nodes[0])}, [int(nodes[0])]
    while stack:
        n = stack.pop()
        for x, y in zip(a.tolist(), b.tolist(), strict=True):
            for u, v in ((x, y), (y, x)):
                if u == n and v in s and v not in seen:
                    seen.add(v)
                    stack.append(v)
    return seen == s


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(2, 4), st.data())
def test_exact_cover_finds_a_planted_division(rows, data):
    # each row of a rows×4 lattice is planted to hold 300–400 households
    cols = 4
    w = []
    for _ in range(rows):
        total = data.draw(st.integers(300, 400))
        cuts = sorted(data.draw(st.lists(st.integers(1, total - 1), min_size=cols - 1,
                                         max_size=cols - 1, unique=True)))  # fmt: skip
        w += list(np.diff([0, *cuts, total]))
    w = np.array(w, dtype=float)
    a, b = _lattice_graph(rows, cols)
    # planted divisions can be tight (every grid exactly 300): give the solver time
    got, verdict = exact.cover(w, a, b, np.ones(len(a), dtype=np.int64), BAND, [rows], time=3.0)
    assert got is not None and verdict == "found"
    assert got.out_of_band == 0
    for p in range(got.labels.max() + 1):
        part = np.flatnonzero(got.labels == p)
        assert BAND.contains(w[part].sum())
        assert _connected(part, a, b)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(1, 300), min_size=2, max_size=9), st.integers(2, 3))
def test_exact_partition_parts_are_connected_and_no_worse_than_any_hint(weights, k):
    w = np.array(weights, dtype=float)
    k = min(k, len(w))
    a, b = np.arange(len(w) - 1), np.arange(1, len(w))  # a path of units
    hint = np.minimum(np.arange(len(w)) * k // len(w), k - 1)
    got = exact.partition(w, a, b, np.ones(len(a), dtype=np.int64), k, BAND, hint=hint)
    assert got is not None
    assert len(np.unique(got.labels)) == k
    for p in range(k):
        assert _connected(np.flatnonzero(got.labels == p), a, b)
    assert (got.out_of_band, got.worst) <= exact.score(w, hint, k, BAND)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5), st.data())
def test_packing_says_yes_to_a_planted_packing_and_no_when_no_k_fits(k, data):
    items = []
    for _ in range(k):
        total = data.draw(st.integers(300, 400))
        n = data.draw(st.integers(1, 6))
        cuts = sorted(data.draw(st.sets(st.integers(1, total - 1), min_size=n - 1, max_size=n - 1)))
        items += list(np.diff([0, *cuts, total]))
    rng = np.random.default_rng(len(items))
    rng.shuffle(items)
    assert exact.packing(np.array(items), BAND, [k]) == "yes"
    assert exact.packing(np.array([*items, 401]), BAND, range(1, k + 3)) == "no"
    assert exact.packing(np.array([250.0]), BAND, [1]) == "no"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.floats(5, 395), st.floats(5, 195), st.integers(0, 150)),
        min_size=1,
        max_size=30,
    ),  # fmt: skip
    st.lists(st.floats(20, 380), max_size=3),
    st.booleans(),
)
def test_units_tile_the_area_and_hold_every_building_once(houses, streets, islet):
    parts = [_box(0, 0, 400, 200)] + ([_box(500, 0, 560, 60)] if islet else [])
    roads = [("residential", _line((x, 0), (x, 200))) for x in streets]
    comm, b, r = _city(parts, houses, roads)
    area = comm.geometry[0]
    xy = shapely.get_coordinates(b.geometry.values)
    s = np.cos(np.radians(LAT0))
    scaled = lambda c: np.column_stack([c[:, 0] * s, c[:, 1]])  # noqa: E731
    from gis.partition import scale_and_roads

    _, rd = scale_and_roads(comm, r)
    u = blocks.build(
        shapely.transform(area, scaled), scaled(xy), b["households"].to_numpy(float), BAND, rd
    )
    members = np.sort(np.concatenate(u.members))
    assert list(members) == list(range(len(houses)))
    union = shapely.union_all(u.polys)
    assert abs(union.area - shapely.transform(area, scaled).area) < 1e-9
    assert abs(shapely.area(u.polys).sum() - union.area) < 1e-9
    if b["households"].sum() > 0:
        assert (u.w > 0).sum() >= 1
        # no unit but an inhabited one, or an empty piece joined to the others
        d = divide(comm, b, r)
        assert (d.grids["households"] > 0).all()
        assert d.grids["households"].sum() == b["households"].sum()


# --- real geometry ---------------------------------------------------------------------


def test_bubenec_prague_real_streets_and_footprints():
    """momepy's Bubeneč (Prague): 144 surveyed footprints and 35 streets. Households are
    estimated as footprint area × 5 floors / 70 m²; the neighbourhood is one community.
    """
    import momepy

    path = momepy.datasets.get_path("bubenec")
    fp = gpd.read_file(path, layer="buildings").to_crs(4326)
    streets = gpd.read_file(path, layer="streets").to_crs(4326)
    metric = fp.to_crs(fp.estimate_utm_crs())
    hh = np.maximum(1, np.round(metric.area.to_numpy() * 5 / 70)).astype(int)
    area = shapely.convex_hull(shapely.union_all(streets.geometry.values))
    code = "370402001001"
    comm = gpd.GeoDataFrame(
        {"code": [code], "name": ["Bubeneč"], "kind": ["urban"], "street_code": [code[:9]],
         "district_code": [code[:6]]},
        geometry=[shapely.MultiPolygon([area])], crs="EPSG:4326",
    )  # fmt: skip
    b = gpd.GeoDataFrame(
        {"id": [f"B{i}" for i in range(len(fp))], "community_code": code, "households": hh},
        geometry=fp.geometry.representative_point().values, crs="EPSG:4326",
    )  # fmt: skip
    inside = b.within(area)
    b = b[inside].reset_index(drop=True)
    roads = streets.assign(id=[f"S{i}" for i in range(len(streets))], kind="residential")
    footprints = gpd.GeoDataFrame(
        {"building_id": b["id"]}, geometry=fp.geometry[inside.to_numpy()].values, crs="EPSG:4326"
    )
    d = divide(comm, b, roads, footprints=footprints)
    g = d.grids
    assert g["households"].sum() == b["households"].sum()
    assert (g["households"] > 0).all()
    _tiles(g, area)
    rep = d.communities.iloc[0]
    # the band, wherever the footprints' sizes allow it
    in_band = g["households"].between(300, 400)
    assert in_band.mean() >= 0.8, sorted(g["households"])
    # borders run along the real streets
    al = border_alignment(g, comm, roads)
    assert al.iloc[-1]["share"] >= 0.8, al
    ignored = border_alignment(divide(comm, b, None).grids, comm, roads)
    assert al.iloc[-1]["share"] > ignored.iloc[-1]["share"] + 0.2
    assert rep["units"] > len(g)


# --- footprints ------------------------------------------------------------------------


def _footprint_files(tmp_path, overlap: bool = False):
    houses = [(x, y, 120) for x in (50, 150, 250, 350) for y in (50, 150)]
    comm, b, r = _city(
        [_box(0, 0, 400, 200)], houses, [("residential", _line((200, 0), (200, 200)))]
    )
    b = b.copy()
    b["geometry"] = [_box(x - 20, y - 10, x + 20 + (70 if overlap and i == 0 else 0), y + 10)
                     for i, (x, y, _) in enumerate(houses)]  # fmt: skip
    paths = {}
    for name, df in (("communities", comm), ("buildings", b), ("roads", r)):
        paths[name] = tmp_path / f"{name}.gpkg"
        df.to_file(paths[name], layer=name)
    return paths


def test_buildings_may_come_as_footprints_and_shape_the_division(tmp_path):
    from gis import io

    got = io.load(_footprint_files(tmp_path))
    b, fp = got["buildings"], got["footprints"]
    assert (b.geom_type == "Point").all() and len(fp) == len(b) == 8
    assert set(fp["building_id"]) == set(b["id"])
    # each point lies inside its own footprint
    own = fp.set_index("building_id").geometry.reindex(b["id"]).to_numpy()
    assert shapely.contains(own, b.geometry.to_numpy()).all()
    d = divide(got["communities"], b, got["roads"], footprints=fp)
    assert d.grids["households"].sum() == 960 and (d.grids["households"] > 0).all()
    # no grid border cuts a footprint
    for poly in fp.geometry:
        inside = [g for g in d.grids.geometry if g.intersection(poly).area > 1e-3 * poly.area]
        assert len(inside) == 1


def test_overlapping_footprints_are_one_error_with_their_rows(tmp_path):
    from gis import io
    from gis.errors import ValidationError

    with pytest.raises(ValidationError) as exc:
        io.load(_footprint_files(tmp_path, overlap=True))
    text = str(exc.value)
    assert "overlaps" in text and "feature 1 (id B0)" in text and "feature 3 (id B2)" in text


def test_the_exact_solver_proves_when_adjacency_rules_the_band_out():
    # a street of four units 200-200-100-100: the sizes pack (200+100 twice) but no two
    # connected runs both hold 300-400 households
    w = np.array([200.0, 200.0, 100.0, 100.0])
    a, b = np.arange(3), np.arange(1, 4)
    got, verdict = exact.cover(w, a, b, np.ones(3, dtype=np.int64), BAND, [2])
    assert got is None and verdict == "impossible"
    assert exact.packing(w, BAND, [2]) == "yes"
    # the lexicographic optimum: one grid out of band, by as little as possible
    best = exact.partition(w, a, b, np.ones(3, dtype=np.int64), 2, BAND)
    assert best is not None and best.out_of_band == 1 and best.worst == 100


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.floats(4, 18), st.floats(4, 9), st.integers(1, 160)), min_size=2, max_size=16
    ),  # fmt: skip
    st.booleans(),
)
def test_footprints_keep_whole_and_the_grids_tile(sizes, street):
    # footprints on a lattice of 50 m × 25 m lots (never overlapping), random sizes
    fps, houses = [], []
    for i, (w, h, hh) in enumerate(sizes):
        x, y = 25 + 50 * (i % 8), 12.5 + 25 * (i // 8)
        fps.append(_box(x - w, y - h, x + w, y + h))
        houses.append((x, y, hh))
    roads = [("residential", _line((200, 0), (200, 50)))] if street else []
    comm, b, r = _city([_box(0, 0, 400, 50)], houses, roads)
    fp = gpd.GeoDataFrame({"building_id": b["id"]}, geometry=fps, crs="EPSG:4326")
    b = b.assign(geometry=shapely.point_on_surface(fp.geometry.values))
    d = divide(comm, b, r, footprints=fp)
    _tiles(d.grids, comm.geometry[0])
    assert d.grids["households"].sum() == b["households"].sum()
    assert (d.grids["households"] > 0).all()
    for poly in fp.geometry:  # no grid border through a house
        inside = [g for g in d.grids.geometry if g.intersection(poly).area > 1e-3 * poly.area]
        assert len(inside) == 1


def test_buildings_without_a_footprint_keep_their_cell_beside_those_with_one(tmp_path):
    from gis import io

    got = io.load(_footprint_files(tmp_path))
    b, fp = got["buildings"], got["footprints"]
    fp = fp[fp["building_id"] != b["id"].iloc[0]]  # one building surveyed as a point only
    d = divide(got["communities"], b, got["roads"], footprints=fp)
    _tiles(d.grids, got["communities"].geometry[0])
    assert d.grids["households"].sum() == b["households"].sum() == 960
    # each grid's households are those of the buildings inside it
    gi = shapely.STRtree(d.grids.geometry.values).query(b.geometry.values, predicate="within")
    inside = np.bincount(gi[1], weights=b["households"].to_numpy()[gi[0]], minlength=len(d.grids))
    assert list(inside) == list(d.grids["households"])


def _brute_force_division_exists(w: np.ndarray, a: np.ndarray, b: np.ndarray) -> bool:
    """Whether the units can be cut into connected grids each in band (or a unit over the
    band alone), by trying every set partition."""
    n = len(w)

    def ok(part: list[int]) -> bool:
        idx = np.array(part)
        if len(part) == 1 and w[part[0]] > BAND.max:
            return True
        return BAND.contains(float(w[idx].sum())) and _connected(idx, a, b)

    def rec(left: list[int]) -> bool:
        if not left:
            return True
        first, rest = left[0], left[1:]
        for r in range(len(rest) + 1):
            for combo in itertools.combinations(rest, r):
                part = [first, *combo]
                if ok(part) and rec([u for u in rest if u not in combo]):
                    return True
        return False

    return rec(list(range(n)))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(0, 420), min_size=2, max_size=8), st.integers(0, 2**16))
def test_exact_cover_search_agrees_with_brute_force(weights, seed):
    # a random connected graph: a path plus random chords
    w = np.array(weights, dtype=float)
    n = len(w)
    rng = np.random.default_rng(seed)
    pairs = {(i, i + 1) for i in range(n - 1)}
    pairs |= {tuple(sorted(rng.choice(n, 2, replace=False).tolist())) for _ in range(n // 2)}
    a = np.array([p[0] for p in sorted(pairs)])
    b = np.array([p[1] for p in sorted(pairs)])
    nbr = [0] * n
    for i, j in zip(a.tolist(), b.tolist(), strict=True):
        nbr[i] |= 1 << j
        nbr[j] |= 1 << i
    sets = exact.connected_sets(w, nbr, BAND.min, BAND.max)
    got = exact.exact_cover(sets, n, w, nbr, BAND)
    assert got != "unknown"
    assert (got is not None) == _brute_force_division_exists(w, a, b)
    if got is not None:
        covered = 0
        for s in got:
            assert sets[s] & covered == 0  # each unit once
            covered |= sets[s]
        assert covered == (1 << n) - 1


def _ring_of_grids() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Units on a street, cut into four grids where only a chain of three moves puts the
    first in band: 280 | 25+280 | 25+280 | 60+300 (each neighbour just above the floor).
    """
    w = np.array([280, 25, 280, 25, 280, 60, 300], dtype=float)
    a, b = np.arange(6), np.arange(1, 7)
    labels = np.array([0, 1, 1, 2, 2, 3, 3])
    return w, a, b, labels


def test_ejection_chains_reach_a_grid_two_neighbours_away():
    from gis.graphcut import Graph, Refiner, chains

    w, a, b, labels = _ring_of_grids()
    nbrs = [np.array([j for j in (i - 1, i + 1) if 0 <= j < len(w)]) for i in range(len(w))]
    g = Graph(
        np.zeros((len(w), 2)), w, nbrs, {(int(i), int(j)): 1 for i, j in zip(a, b, strict=True)}
    )
    # moves and swaps alone cannot help: every step would take a neighbour out of band
    r = Refiner(g, np.arange(len(w)), labels, BAND)
    r.run(100)
    assert exact.score(w, r.labels(np.arange(len(w))), 4, BAND)[0] == 1
    got = chains(g, labels, BAND)
    loads = np.bincount(got, weights=w)
    assert all(BAND.contains(x) for x in loads), loads
    for p in range(4):
        assert _connected(np.flatnonzero(got == p), a, b)


def test_repair_divides_the_neighbourhood_of_a_grid_out_of_band_anew():
    w, a, b, labels = _ring_of_grids()
    got = exact.repair(w, a, b, np.ones(len(a), dtype=np.int64), BAND, labels)
    loads = np.bincount(got, weights=w)
    assert all(BAND.contains(x) for x in loads), loads
    for p in range(int(got.max()) + 1):
        assert _connected(np.flatnonzero(got == p), a, b)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(1, 250), min_size=4, max_size=14), st.integers(2, 4))
def test_chains_and_repair_never_take_a_grid_out_of_band_nor_break_one(weights, k):
    from gis.graphcut import Graph, chains

    w = np.array(weights, dtype=float)
    n = len(w)
    a, b = np.arange(n - 1), np.arange(1, n)  # a street of units
    k = min(k, n)
    labels = np.minimum(np.arange(n) * k // n, k - 1)
    before = exact.score(w, labels, k, BAND)[0]
    nbrs = [np.array([j for j in (i - 1, i + 1) if 0 <= j < n]) for i in range(n)]
    g = Graph(np.zeros((n, 2)), w, nbrs, {(int(i), int(j)): 1 for i, j in zip(a, b, strict=True)})
    for got in (chains(g, labels, BAND), exact.repair(w, a, b, np.ones(n - 1), BAND, labels)):
        kk = int(got.max()) + 1
        assert exact.score(w, got, kk, BAND)[0] <= before
        in_before = {tuple(np.flatnonzero(labels == p)) for p in range(k)
                     if BAND.contains(w[labels == p].sum())}  # fmt: skip
        for p in range(kk):
            part = np.flatnonzero(got == p)
            assert len(part) and _connected(part, a, b)
        # a grid in band before is in band after or was re-divided into grids in band
        loads = np.bincount(got, weights=w)
        assert sum(BAND.contains(x) for x in loads) >= len(in_before)
