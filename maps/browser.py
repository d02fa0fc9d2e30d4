"""Open a map in headless Chromium (Debian's ``chromium`` and ``chromium-driver``), kept off
the network, and report what a user would see: render time, JavaScript errors, what is on
the page; optionally a screenshot. Used by the tests, ``make bench`` and the README images.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
DRIVER = "/usr/bin/chromedriver"

# no request leaves the machine: every host resolves to nothing, and a dead proxy catches
# anything that would still try
OFFLINE_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--proxy-server=http://127.0.0.1:9",
    "--proxy-bypass-list=<-loopback>",
    "--lang=zh-CN",
)


def available() -> bool:
    """Whether Chromium and its driver are installed."""
    return bool(shutil.which(CHROMIUM) and shutil.which(DRIVER))


@dataclass
class Page:
    """What the browser saw."""

    ready_ms: float  # navigation start until the map's own script finished
    load_ms: float  # wall time of the page load as the driver saw it
    errors: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)


_FACTS = """
var q = function(s) { return document.querySelectorAll(s).length; };
var legend = document.getElementById('gg-legend');
return {
  ready: window.gridgisReady || null,
  leaflet: typeof L !== 'undefined',
  map: q('.leaflet-container'),
  paths: q('path.leaflet-interactive') + q('.leaflet-overlay-pane canvas'),
  layers: Array.from(document.querySelectorAll('.leaflet-control-layers-overlays label, .leaflet-control-layers-base label')).map(function(e) { return e.textContent.trim(); }),
  legend: legend ? legend.innerText : null,
  title: (document.getElementById('gg-title') || {}).innerText || null,
  search: q('#gg-search'),
  scale: q('.leaflet-control-scale'),
  panel: (document.getElementById('gg-panel') || {}).innerText || null
};
"""


def open_map(
    path: str | Path,
    screenshot: str | Path | None = None,
    size: tuple[int, int] = (1400, 900),
    *,
    before: str | None = None,
    after: str | None = None,
    headers: dict[str, str] | None = None,
    wait_for: str | None = None,
    timeout: float = 15.0,
) -> Page:
    """Load ``path`` (an HTML file, or an ``http://`` URL of a running service) and read
    the page; save a PNG when asked.

    ``before``: a script run in the page before any of its own (to watch it); ``after``: a
    script run once it has loaded, whose return value is ``facts["after"]``; ``headers``:
    sent with every request the page makes (an API key, as a gateway adds it);
    ``wait_for``: a JavaScript expression waited for (``timeout`` seconds) before the
    page is read — the map's vector tiles drawn, say.
    """
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    served = str(path).startswith("http://127.0.0.1:")
    for flag in OFFLINE_FLAGS:
        if served and flag.startswith("--proxy-bypass-list"):
            flag = "--proxy-bypass-list=127.0.0.1"  # the service under test, nothing else
        if served and flag.startswith("--host-resolver-rules"):
            flag += ", EXCLUDE 127.0.0.1"
        opts.add_argument(flag)
    opts.add_argument(f"--window-size={size[0]},{size[1]}")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        if before:
            driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": before})
        if headers:
            driver.execute_cdp_cmd("Network.enable", {})
            driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": headers})
        t = time.perf_counter()
        url = str(path)
        driver.get(
            url if url.startswith(("http://", "https://")) else Path(path).resolve().as_uri()
        )
        if wait_for:
            end = time.perf_counter() + timeout
            while (
                not driver.execute_script(f"return !!({wait_for});") and time.perf_counter() < end
            ):
                time.sleep(0.05)
        load_ms = (time.perf_counter() - t) * 1000
        facts = driver.execute_script(_FACTS)
        if after:
            facts["after"] = driver.execute_script(after)
        errors = [
            e["message"] for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")
        ]
        if screenshot is not None:
            Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
            time.sleep(0.3)  # let the canvas finish its last frame
            driver.save_screenshot(str(screenshot))
        return Page(float(facts.get("ready") or -1), load_ms, errors, facts)
    finally:
        driver.quit()
