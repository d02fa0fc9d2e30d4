"""Hostile strings through every HTML page the product writes, opened in Chromium.

A corpus of strings an attacker or a careless import would bring — script tags, event
attributes, template-literal breakers, quotes, backticks, ``</script>``, RTL and zero-width
characters, a 10 kB name — goes into every text field that reaches a page: community,
street, district and facility names, worker names, facility type names, the city's name,
scenario names and site ids. Every map (from the command line and from the API) and every
``?f=html`` page is opened with every tooltip and popup opened too: no dialog may open, no
script error or refused script may be logged, and the strings must show as text.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from api.http import create_app
from gis import access, schema, settings
from gis.assign import assign
from gis.coverage import compute
from gis.partition import divide
from gis.store import GeoPackageStore
from gis.workflows import sites as wsites
from gis.workflows.base import StoreInputs, system
from gis.workflows.staff import quota_table
from maps import browser
from tests.api.test_cli import run

CORPUS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(11)>",
    "${alert(7)}",
    "`);alert(8);(`",
    '"><svg onload=alert(9)>',
    "';alert(10);'",
    "</script><script>alert(12)</script>",
    "<!--<b>",
    "\u202eevil\u202c\u200b\u2028\u2029",
    "{{7*7}}{%raw%}",
    "javascript:alert(13)",
    "\\u003cscript\\u003ealert(14)\\u003c/script\\u003e",
    "<a href=javascript:alert(15)>x</a>",
    "社区" + "长" * 5000 + "<b>",  # 10 kB
]
# what a scenario name may hold (no "/"): the rest of the corpus
NAMES = [
    c for c in CORPUS if "/" not in c and "\\" not in c and "\u2028" not in c and len(c) <= 100
]

WATCH = """
window.__dialogs = 0;
['alert', 'confirm', 'prompt', 'print'].forEach(function (n) {
  window[n] = function () { window.__dialogs++; };
});
"""
# open every tooltip and popup; collect what they show
OPEN = """
var texts = [];
var map = window.gridgisMap;
if (map) {
  map.eachLayer(function (l) {
    var subs = l.eachLayer ? [] : [l];
    if (l.eachLayer) l.eachLayer(function (s) { subs.push(s); });
    subs.slice(0, 400).forEach(function (s) {
      [['getTooltip', 'openTooltip', 'closeTooltip'], ['getPopup', 'openPopup', 'closePopup']].forEach(function (m) {
        var owner = l[m[0]] && l[m[0]]() ? l : (s[m[0]] && s[m[0]]() ? s : null);
        if (!owner) return;
        try { owner === l && l !== s ? l[m[1]](s) : s[m[1]](); } catch (e) { return; }
        var el = owner[m[0]]().getElement();
        if (el) texts.push(el.textContent);
        owner[m[2]]();
      });
    });
  });
}
return {dialogs: window.__dialogs, texts: texts, body: document.body.innerText};
"""


def _hostile(frames: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    f = {k: v.copy() for k, v in frames.items()}
    pick = lambda i: CORPUS[i % len(CORPUS)]  # noqa: E731
    for name in ("communities", "streets", "districts", "facilities", "workers"):
        f[name]["name"] = [pick(i) for i in range(len(f[name]))]
    f["facility_types"]["name_zh"] = [pick(i + 3) for i in range(len(f["facility_types"]))]
    f["facility_types"]["name_en"] = [pick(i + 5) for i in range(len(f["facility_types"]))]
    return f


@pytest.fixture(scope="module")
def hostile_store(town, tmp_path_factory):
    f = _hostile(town)
    f["grids"] = divide(f["communities"], f["buildings"], f["roads"]).grids
    f["quotas"] = quota_table(f["communities"], f["buildings"], settings.CityRules().staff)
    staffed = assign(f["grids"], f["quotas"], f["workers"])
    f["workers"] = staffed.workers[schema.layer("workers").columns]
    f["assignments"] = staffed.assignments
    cv = compute(f["buildings"], f["facilities"], f["facility_types"], f["communities"], grids=f["grids"],
                 roads=f["roads"])  # fmt: skip
    f["coverage"], f["gaps"] = cv.table, cv.gaps
    f["settings"] = settings.frame(settings.CityRules(city_name=CORPUS[1]), "test")
    s = GeoPackageStore(tmp_path_factory.mktemp("hostile") / "city.gpkg")
    s.write(f)
    p = wsites.planner(StoreInputs(s), "elderly_day_care")
    b = f["buildings"].geometry
    cands = wsites.siting.candidates([(g.x, g.y) for g in b.iloc[[0, 10, 20]]])
    cands["id"] = [CORPUS[2], CORPUS[1], CORPUS[11]]
    t = wsites.test_sites(p, cands)
    for name in NAMES[:4]:
        wsites.save_scenario(s, system("test"), name, t.sites, t.results)
    return s


def _check(page: browser.Page, where: str) -> str:
    after = page.facts["after"]
    assert after["dialogs"] == 0, where
    assert page.errors == [], (where, page.errors[:3])
    return " ".join(after["texts"]) + " " + after["body"]


def test_cli_maps_show_hostile_text_as_text(chromium, hostile_store, tmp_path):
    s = str(hostile_store.path)
    street = hostile_store.read("streets")["code"].iloc[0]
    pages = {
        "coverage_city": ["coverage"],
        "coverage_street": ["coverage", "-t", "elderly_day_care", "--street", street],
        "staffing_city": ["staffing"],
        "staffing_street": ["staffing", "--street", street],
        **{f"scenario{i}": ["scenario", n] for i, n in enumerate(NAMES[:4])},
    }
    shown = ""
    for name, args in pages.items():
        out = tmp_path / f"{name}.html"
        r = run("map", *args, "--store", s, "--out", str(out))
        assert r.returncode == 0, (name, r.stderr[-500:])
        shown += _check(browser.open_map(out, before=WATCH, after=OPEN), name)
    for text in (CORPUS[0], CORPUS[1], CORPUS[2], CORPUS[3], CORPUS[6]):
        assert text in shown, text  # drawn as text, not dropped


def test_api_pages_show_hostile_text_as_text(chromium, hostile_store, tmp_path):
    key = access.create_key(hostile_store, "admin")[0]
    client = TestClient(create_app(hostile_store))
    client.headers["X-API-Key"] = key
    street = hostile_store.read("streets")["code"].iloc[0]
    scenario = urllib.parse.quote(NAMES[1], safe="")
    urls = [
        "/maps/coverage", f"/maps/coverage?type=kindergarten&street={street}", "/maps/staffing",
        f"/maps/staffing?street={street}", f"/maps/scenario/{scenario}", "/?f=html",
        "/collections?f=html", "/collections/communities/items?f=html&limit=50",
        "/collections/streets/items?f=html", "/collections/facilities/items?f=html&limit=50",
        "/collections/workers/items?f=html&limit=50", "/collections/districts/items/370405?f=html",
    ]  # fmt: skip
    shown = ""
    for i, url in enumerate(urls):
        r = client.get(url)
        assert r.status_code == 200, (url, r.text[:300])
        assert r.headers["x-content-type-options"] == "nosniff" and "script-src" in r.headers[
            "content-security-policy"] or url.find("f=html") > 0, url  # fmt: skip
        path = Path(tmp_path / f"page{i}.html")
        path.write_text(r.text, encoding="utf-8")
        shown += _check(browser.open_map(path, before=WATCH, after=OPEN), url)
    for text in (CORPUS[0], CORPUS[1], CORPUS[6], CORPUS[13][:200]):
        assert text in shown, text[:40]


def test_scenario_names_that_would_be_unreachable_are_refused(hostile_store):
    client = TestClient(create_app(hostile_store))
    client.headers["X-API-Key"] = access.create_key(hostile_store, "admin")[0]
    b = hostile_store.read("buildings").geometry.iloc[0]
    body = {"type": "elderly_day_care", "sites": [{"lon": b.x, "lat": b.y}]}
    for name in ("a/b", "..", " padded", "x" * 101, "tab\there"):
        r = client.post("/scenarios", json={**body, "name": name})
        assert r.status_code == 400, (name, r.text)
    listed = {x["id"] for x in client.get("/scenarios").json()["scenarios"]}
    for name in listed:  # every stored scenario is reachable by its name
        assert client.get(f"/scenarios/{urllib.parse.quote(name, safe='')}").status_code == 200, (
            name
        )
