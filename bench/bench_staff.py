"""Benchmark staffing: quotas and assignment of workers to grids for the whole city.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import resource
import time

import numpy as np

from gis.assign import assign
from gis.partition import divide
from gis.regrid import update
from gis.staffing import quotas
from gis.synth import build_city


def main() -> None:
    city = build_city()
    grids = divide(city["communities"], city["buildings"], city["roads"]).grids
    t = time.perf_counter()
    hh = city["buildings"].groupby("community_code")["households"].sum()
    q = quotas(city["communities"], hh)
    a = assign(grids, q, city["workers"])
    seconds = time.perf_counter() - t
    urban = q["kind"] == "urban"
    print("== whole city: quota + assignment ==")
    print(
        f"time {seconds:.1f} s; peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )
    print(
        f"urban rule quota {int(q.loc[urban, 'rule_quota'].sum()):,} → {int(q.loc[urban, 'quota'].sum()):,} (cap 1,540)"
    )
    print(
        f"{len(a.assignments):,} grids, {len(a.loads):,} grid workers; 300–400 households where the "
        f"numbers allow: {a.share_in_band_where_possible:.1%}"
    )
    b = city["buildings"].copy()
    rng = np.random.default_rng(5)
    b["households"] = np.round(b["households"] * rng.uniform(0.95, 1.05, len(b))).astype(np.int64)
    u = update(grids, city["communities"], b, city["roads"])
    q2 = quotas(city["communities"], b.groupby("community_code")["households"].sum())
    t = time.perf_counter()
    a2 = assign(u.grids, q2, city["workers"], previous=a.assignments)
    print(
        f"after a seeded ±5 % change: grids kept {u.stable_share:.1%}; workers moved {a2.moved} of "
        f"{len(a2.loads):,} ({a2.moved / len(a2.loads):.1%}); re-assignment {time.perf_counter() - t:.1f} s"
    )


if __name__ == "__main__":
    main()
