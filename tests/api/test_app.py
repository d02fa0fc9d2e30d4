"""The HTTP service's maps at /maps/…, problems as application/problem+json."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from api.http import create_app
from gis import access

STREET = "370405001"


@pytest.fixture(scope="module")
def client(map_store):
    c = TestClient(create_app(map_store, anonymous_read=True))
    c.headers["X-API-Key"] = access.create_key(map_store, "planner")[0]  # scenarios need it
    return c


@pytest.mark.parametrize(
    "url, text",
    [
        ("/maps/coverage", "社区覆盖率"),
        (f"/maps/coverage?type=elderly_day_care&street={STREET}", "老年人日间照料中心"),
        (f"/maps/staffing?street={STREET}&lang=en", "grids by worker"),
        ("/maps/scenario/示例", "候选/选中站点"),
    ],
)
def test_maps_are_served(client, url, text):
    r = client.get(url)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert text in r.text and "cdn." not in r.text  # self-contained
    again = client.get(url)
    assert again.text == r.text  # the cached page


@pytest.mark.parametrize(
    "url, status, detail",
    [
        ("/maps/coverage?street=370405999", 400, "no street '370405999'"),
        ("/maps/coverage?tiles=google", 400, "tiles: Input should be"),
        ("/maps/scenario/none", 404, "no scenario named 'none'"),
    ],
)
def test_bad_map_requests_are_problems(client, url, status, detail):
    r = client.get(url)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/problem+json"
    assert detail in r.json()["detail"] and "Traceback" not in r.text
