"""Benchmark grid division: the whole city, and side by side with PySAL spopt's max-p.

Prints figures; asserts nothing.

    make bench
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import sys
import time
import warnings

import numpy as np
import pandas as pd

import geopandas as gpd
import shapely

from gis.partition import Band, divide, grid_quality, summary
from gis.synth import build_city

BAND = Band()


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def whole_city() -> dict:
    city = build_city()
    t = time.perf_counter()
    d = divide(city["communities"], city["buildings"], city["roads"])
    seconds = time.perf_counter() - t
    q = grid_quality(d.grids, kinds=city["communities"].set_index("code")["kind"])
    fig = summary(d.communities, d.grids, q)
    print("== whole city: gridgis divide() on 2,469 communities ==")
    print(f"time {seconds:.1f} s; peak RSS of the process {peak_mb():.0f} MB (city build included)")
    print(f"{fig['households'] / seconds:,.0f} households per second; {fig['grids']:,} grids")
    print(
        f"in band where reachable {fig['share_in_band_where_reachable']:.2%}; "
        f"median Polsby–Popper {fig['median_polsby_popper']:.3f}"
    )
    return city


def _cells(community: shapely.Geometry, b: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The building cells gridgis groups, as polygons max-p can group too."""
    xy = shapely.get_coordinates(b.geometry.values)
    cells = shapely.get_parts(
        shapely.voronoi_polygons(shapely.multipoints(xy), extend_to=community, ordered=True)
    )
    cells = shapely.intersection(cells, community)
    return gpd.GeoDataFrame(
        {"households": b["households"].to_numpy(), "x": xy[:, 0], "y": xy[:, 1]},
        geometry=cells,
        crs="EPSG:4326",
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
        got = _maxp_limited(_cells(c.geometry, mine), limit)
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
    got = _maxp_limited(_cells(rural.geometry, mine), limit)
    verdict = f"did not finish within {limit:.0f} s" if got is None else f"{got[0]:.2f} s"
    print(f"spopt max-p: {verdict}", flush=True)


if __name__ == "__main__":
    city = whole_city() if "--skip-city" not in sys.argv else build_city()
    versus_maxp(city)
    one_village(city)
