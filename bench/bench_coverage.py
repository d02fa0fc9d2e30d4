"""Benchmark coverage: every facility type on the whole city, straight line and network.

Prints figures; asserts nothing.
"""

from __future__ import annotations

import resource
import time

from gis.coverage import compute
from gis.synth import build_city


def main() -> None:
    city = build_city()
    args = (city["buildings"], city["facilities"], city["facility_types"], city["communities"])
    print(
        f"== coverage of {len(city['facility_types'])} facility types, {len(city['buildings']):,} buildings =="
    )
    for mode in ("line", "network"):
        for gaps in (False, True):
            t = time.perf_counter()
            cv = compute(*args, roads=city["roads"], mode=mode, gaps=gaps)
            print(
                f"{mode:<8} gap areas {'on ' if gaps else 'off'}  {time.perf_counter() - t:6.1f} s   "
                f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:6.0f} MB   "
                f"gaps {len(cv.gaps):,}",
                flush=True,
            )


if __name__ == "__main__":
    main()
