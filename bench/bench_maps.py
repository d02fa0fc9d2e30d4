"""Benchmark the maps: HTML size and render time in headless Chromium (off the network).

Runs ``gridgis demo`` into a scratch store (which writes the demo maps), then opens each map
three times and prints the median time from navigation start until the map's own script
has drawn every layer, and the page-load wall time. Also saves a screenshot of each.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from maps import browser


def main() -> None:
    if not browser.available():
        print("no Chromium: run `make test` once (it installs chromium and chromium-driver)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run(
            [sys.executable, "-c", "from api.cli import main; main()", "demo", "--json",
             "--store", str(Path(tmp) / "city.gpkg")],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        maps = [Path(p) for p in json.loads(r.stdout)["maps"]]
        print(f"{'map':<44} {'HTML':>8} {'ready (median of 3)':>20} {'page load':>10}")
        for path in maps:
            pages = [
                browser.open_map(
                    path, Path("out/screenshots") / f"{path.stem}.png" if i == 0 else None
                )
                for i in range(3)
            ]
            errors = {e for p in pages for e in p.errors}
            ready = statistics.median(p.ready_ms for p in pages)
            load = statistics.median(p.load_ms for p in pages)
            print(
                f"{path.name:<44} {path.stat().st_size / 1e6:>6.2f} MB {ready:>17.0f} ms "
                f"{load:>7.0f} ms{'  JS errors: ' + str(len(errors)) if errors else ''}",
                flush=True,
            )


if __name__ == "__main__":
    main()
