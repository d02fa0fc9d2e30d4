"""Benchmark grid division: the whole city, and side by side with PySAL spopt's max-p.

Prints figures; asserts nothing.

    make bench
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import sys
import time
import warnings

import numpy as np
import pandas as pd

import geopandas as gpd
import shapely

from gis import blocks
from gis.partition import Band, border_alignment, divide, grid_quality, scale_and_roads, summary
from gis.regrid import update
from gis.synth import build_city

BAND = Band()


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def whole_city() -> dict:
    city = build_city()
    comms, b, roads = city["communities"], city["buildings"], city["roads"]
    kinds = comms.set_index("code")["kind"]
    t = time.perf_counter()
    d = divide(comms, b, roads)
    seconds = time.perf_counter() - t
    q = grid_quality(d.grids, kinds=kinds)
    fig = summary(d.communities, d.grids, q)
    r = d.communities
    print("== whole city: gridgis divide() on 2,469 communities ==")
    print(f"time {seconds:.1f} s on {os.cpu_count()} cores; peak RSS {peak_mb():.0f} MB "
          f"(this process, city build included), workers' peak {children_mb():.0f} MB")  # fmt: skip
    print(f"{fig['households'] / seconds:,.0f} households per second; {fig['grids']:,} grids; "
          f"empty grids {fig['empty_grids']}; multi-part grids {fig['multipart_grids']}")  # fmt: skip
    print(
        f"packing bound: {int((r['bound'] == 'yes').sum())} communities reachable, "
        f"{int((r['bound'] == 'no').sum())} not, {int((r['bound'] == 'unknown').sum())} unknown; "
        f"in band where reachable {fig['share_in_band_where_reachable']:.2%} "
        f"of {fig['grids_in_reachable']:,} grids; median Polsby–Popper {fig['median_polsby_popper']:.3f}"
    )
    print(
        f"units {int(r['units'].sum()):,}; blocks split (alone over the band) {int(r['split_blocks'].sum())}; "
        f"road ends snapped (≤5 m) {int(r['snapped'].sum()):,}; empty units joined {int(r['empty_joined'].sum()):,}; "
        f"islets joined {int(r['islands'].sum())}; exact solves {int(r['exact'].sum())} "
        f"({int(r['exact_optimal'].sum())} proved optimal)"
    )
    # where the grids out of band lie, by what the exact search said of their community
    reach = r.loc[r["bound"] == "yes", ["community_code", "cover"]]
    g = d.grids.merge(reach, on="community_code")
    out = g[~g["households"].between(BAND.min, BAND.max)]
    by = out.groupby("cover").size().to_dict()
    print(
        f"out of band where reachable: {len(out)} grids, by the exact search's verdict on "
        f"their community: {by} ('impossible': proved that no division into connected grids "
        f"of the units the rule allows — whole blocks, a block over the band down to its "
        f"buildings — puts every grid in band)"
    )
    t = time.perf_counter()
    d0 = divide(comms, b, None)
    t0 = time.perf_counter() - t
    ours = border_alignment(d.grids, comms, roads)
    ignored = border_alignment(d0.grids, comms, roads)
    side = ours[["district_code", "inner_m", "share"]].merge(
        ignored[["district_code", "share"]], on="district_code", suffixes=("", "_roads_ignored")
    )
    side["points_more"] = (side["share"] - side["share_roads_ignored"]) * 100
    print(
        f"\n== inner grid border within 10 m of a street or internal path (roads ignored: {t0:.1f} s) =="
    )
    print(side.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    # a year's change of ±5 % per building: how many grids `grids update` keeps
    rng = np.random.default_rng(2024)
    b2 = b.assign(
        households=np.round(b["households"] * rng.uniform(0.95, 1.05, len(b))).astype(np.int64)
    )
    t = time.perf_counter()
    u = update(d.grids, comms, b2, roads)
    print(f"\n== grids update after ±5 % per building: kept {u.kept:,} of {len(d.grids):,} grids "
          f"({u.stable_share:.1%}), retired {u.retired}, created {u.created}, {time.perf_counter() - t:.1f} s ==")  # fmt: skip
    return city


def children_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def _cells(
    community: shapely.Geometry, b: gpd.GeoDataFrame, roads: gpd.GeoDataFrame
) -> gpd.GeoDataFrame:
    """The units gridgis groups (street blocks, pieces of blocks over the band), as
    polygons max-p can group too.
    """
    one = gpd.GeoDataFrame({"code": ["x"]}, geometry=[community], crs="EPSG:4326")
    scale, rd = scale_and_roads(one, roads)
    to = lambda c: np.column_stack([c[:, 0] * scale, c[:, 1]])  # noqa: E731
    back = lambda c: np.column_stack([c[:, 0] / scale, c[:, 1]])  # noqa: E731
    xy = to(shapely.get_coordinates(b.geometry.values))
    u = blocks.build(
        shapely.transform(community, to), xy, b["households"].to_numpy(float), BAND, rd
    )
    polys = shapely.transform(u.polys, back)
    c = shapely.get_coordinates(shapely.point_on_surface(polys))
    return gpd.GeoDataFrame(
        {"households": u.w, "x": c[:, 0], "y": c[:, 1]}, geometry=polys, crs="EPSG:4326"
    )


def _maxp(cells: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    import libpysal
    from spopt.region import MaxPHeuristic

    w = libpysal.weights.Rook.from_dataframe(cells, use_index=False, silence_warnings=True)
    np.random.seed(0)
    model = MaxPHeuristic(cells, w, ["x", "y"], "households", BAND.min, top_n=2)
    model.solve()
    return (
        cells.assign(label=model.labels_)
        .dissolve("label", aggfunc={"households": "sum"})
        .reset_index()
    )


def _quality(regions: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Households and Polsby–Popper compactness of each region."""
    metric = regions.to_crs(4548)
    return regions["households"].to_numpy(), (4 * np.pi * metric.area / metric.length**2).to_numpy()


def _maxp_child(cells: gpd.GeoDataFrame, out: mp.Queue) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        regions = _maxp(cells)
        out.put((time.perf_counter() - t, *_quality(regions)))


def _maxp_limited(
    cells: gpd.GeoDataFrame, limit: float
) -> tuple[float, np.ndarray, np.ndarray] | None:
    """max-p in a child process, stopped after ``limit`` seconds (None when stopped)."""
    ctx = mp.get_context("fork")
    q: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=_maxp_child, args=(cells, q))
    proc.start()
    proc.join(limit)
    if proc.is_alive():
        proc.terminate()
        proc.join()
        return None
    return q.get() if not q.empty() else None


def versus_maxp(city: dict, districts: tuple[str, ...] = ("370405",), limit: float = 10.0) -> None:
    """The same communities through both tools; max-p gets ``limit`` seconds each."""
    comms = city["communities"]
    chosen = comms[(comms["kind"] == "urban") & comms["district_code"].isin(districts)]
    b = city["buildings"]
    print(
        f"\n== side by side with spopt MaxPHeuristic (threshold {BAND.min}) on the {len(chosen)} urban communities "
        f"of {', '.join(districts)}; max-p stopped after {limit:.0f} s per community ==",
        flush=True,
    )
    ours_t, ours_h, ours_pp = 0.0, [], []
    theirs_t, theirs_h, theirs_pp, stopped = 0.0, [], [], 0
    for c in chosen.itertuples():
        mine = b[b["community_code"] == c.code]
        t = time.perf_counter()
        d = divide(chosen[chosen["code"] == c.code], mine, city["roads"])
        ours_t += time.perf_counter() - t
        h, pp = _quality(d.grids)
        ours_h.append(h)
        ours_pp.append(pp)
        got = _maxp_limited(_cells(c.geometry, mine, city["roads"]), limit)
        if got is None:
            stopped += 1
            theirs_t += limit
            continue
        theirs_t += got[0]
        theirs_h.append(got[1])
        theirs_pp.append(got[2])
    oh, op = np.concatenate(ours_h), np.concatenate(ours_pp)
    th = np.concatenate(theirs_h) if theirs_h else np.zeros(0)
    tp = np.concatenate(theirs_pp) if theirs_pp else np.zeros(0)
    table = pd.DataFrame(
        {
            "tool": ["gridgis", "spopt max-p"],
            "seconds": [round(ours_t, 2), round(theirs_t, 2)],
            "communities solved": [len(chosen), len(chosen) - stopped],
            "regions": [len(oh), len(th)],
            "share in 300–400": [
                f"{BAND.contains(oh).mean():.1%}",
                f"{BAND.contains(th).mean():.1%}" if len(th) else "—",
            ],
            "median Polsby–Popper": [
                round(float(np.median(op)), 3),
                round(float(np.median(tp)), 3) if len(tp) else "—",
            ],
        }
    )
    print(table.to_string(index=False))
    print(
        f"time ratio spopt / gridgis: at least {theirs_t / ours_t:.0f}x "
        f"({stopped} max-p runs stopped at {limit:.0f} s and counted as {limit:.0f} s)",
        flush=True,
    )


def one_village(city: dict, limit: float = 60.0) -> None:
    comms, b = city["communities"], city["buildings"]
    hh = b.groupby("community_code")["households"].sum()
    rural = comms[(comms["kind"] == "rural") & comms["code"].map(hh).ge(600)].iloc[0]
    mine = b[b["community_code"] == rural["code"]]
    print(
        f"\n== one village: {rural['name']} ({len(mine)} courtyards, {int(mine['households'].sum())} households) =="
    )
    t = time.perf_counter()
    divide(comms[comms["code"] == rural["code"]], mine, city["roads"])
    print(f"gridgis: {time.perf_counter() - t:.2f} s")
    got = _maxp_limited(_cells(rural.geometry, mine, city["roads"]), limit)
    verdict = f"did not finish within {limit:.0f} s" if got is None else f"{got[0]:.2f} s"
    print(f"spopt max-p: {verdict}", flush=True)


if __name__ == "__main__":
    city = whole_city() if "--skip-city" not in sys.argv else build_city()
    versus_maxp(city)
    one_village(city)
