"""Limits that hold whatever the client sends: bodies counted as they stream in (with or
without ``Content-Length``) on every route that takes one, for every kind of caller; a rate
limit per key; security headers on every answer."""

from __future__ import annotations

import re
import time

import pytest
from fastapi.testclient import TestClient

from api.http import create_app
from api.settings import Settings
from gis import access
from tests.helpers import api_routes

LIMIT = 50_000


@pytest.fixture(scope="module")
def limited(map_store):
    keys = {
        r: access.create_key(map_store, r)[0] for r in ("viewer", "supervisor", "planner", "admin")
    }
    app = create_app(
        map_store, settings=Settings(max_body=LIMIT, anonymous_read=True, rate_limit=0)
    )
    return TestClient(app), keys


def _routes(client: TestClient) -> list[tuple[str, str]]:
    return sorted(
        (m, re.sub(r"\{[^}]+\}", "x", p))
        for m, p in api_routes(client.app)
        if m in ("POST", "PUT", "PATCH")
    )


def _stream(n: int, chunk: int = 8192):
    sent = 0
    while sent < n:
        part = min(chunk, n - sent)
        sent += part
        yield b" " * part


@pytest.mark.parametrize("role", ["anonymous", "viewer", "supervisor", "planner", "admin"])
def test_streamed_bodies_over_the_limit_are_413_on_every_route(limited, role):
    client, keys = limited
    routes = _routes(client)
    assert len(routes) >= 6  # the walk sees the write routes (an empty walk would pass)
    headers = {"content-type": "application/json"} | (
        {"X-API-Key": keys[role]} if role != "anonymous" else {}
    )
    for method, path in routes:
        # chunked: no Content-Length, so only counting the bytes can stop it
        r = client.request(method, path, content=_stream(LIMIT + 1), headers=headers)
        assert r.status_code == 413, (role, method, path, r.status_code, r.text[:200])
        assert r.headers["content-type"] == "application/problem+json"
        r = client.request(method, path, content=b" " * (LIMIT + 1), headers=headers)
        assert r.status_code == 413, (role, method, path)
        # just under the limit is not refused for its size
        r = client.request(method, path, content=_stream(LIMIT - 10), headers=headers)
        assert r.status_code != 413, (role, method, path)


def test_a_huge_chunked_body_is_stopped_early(limited):
    client, _ = limited
    t = time.perf_counter()
    r = client.post(
        "/locate",
        content=_stream(400_000_000, 1 << 20),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413 and time.perf_counter() - t < 5


def test_rate_limit_per_key(map_store):
    keys = [access.create_key(map_store, "viewer")[0] for _ in range(2)]
    client = TestClient(create_app(map_store, settings=Settings(rate_limit=1.0, rate_burst=5)))
    got = [client.get("/conformance", headers={"X-API-Key": keys[0]}) for _ in range(7)]
    assert [r.status_code for r in got[:5]] == [200] * 5
    assert got[5].status_code == 429 and int(got[5].headers["retry-after"]) >= 1
    assert got[5].headers["content-type"] == "application/problem+json"
    # another key has a bucket of its own
    assert client.get("/conformance", headers={"X-API-Key": keys[1]}).status_code == 200


def test_security_headers(limited):
    client, keys = limited
    for url in ("/conformance", "/collections/grids/items?limit=1", "/?f=html", "/maps/coverage"):
        r = client.get(url)
        assert (
            r.headers["x-content-type-options"] == "nosniff"
            and r.headers["referrer-policy"] == "no-referrer"
        )
    page = client.get("/maps/coverage")
    csp = page.headers["content-security-policy"]
    assert (
        "script-src 'sha256-" in csp
        and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    )
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp
    assert "script-src" not in client.get("/?f=html").headers["content-security-policy"]


def test_server_processes_share_a_keys_rate_through_the_store(store, monkeypatch):
    """Two server processes (two apps on one store, as ``serve --workers 2`` runs): a key
    whose requests all reach one process gets its whole burst there (after the first
    sync: until then a new key has its share), and what one process let through is taken
    from the other's bucket, so together they let through no more than the key's rate."""
    from api.http import guard

    monkeypatch.setattr(guard, "SYNC_S", 0.05)
    key = access.create_key(store, "viewer")[0]
    settings = Settings(rate_limit=2.0, rate_burst=10, processes=2)
    # as context managers: the apps' shutdown stops their syncs before the store closes
    with (
        TestClient(create_app(store, settings=settings)) as a,
        TestClient(create_app(store, settings=settings)) as b,
    ):
        _two_processes(store, a, b, {"X-API-Key": key})
    import threading

    assert not [t for t in threading.enumerate() if t.name == "gridgis-rates"]  # stopped


def _two_processes(store, a, b, h):
    t = time.perf_counter()
    assert a.get("/conformance", headers=h).status_code == 200
    time.sleep(0.3)  # a sync: process a knows the key's bucket is the whole burst
    first = [a.get("/conformance", headers=h).status_code for _ in range(9)]
    assert first == [200] * 9  # the whole burst on one process, not its half
    first.append(200)
    time.sleep(0.3)  # a few syncs: the store has what a let through
    assert b.get("/conformance", headers=h).status_code in (200, 429)  # b meets the key
    time.sleep(0.3)  # and learns its bucket
    second = [b.get("/conformance", headers=h).status_code for _ in range(10)]
    elapsed = time.perf_counter() - t
    passed = first.count(200) + second.count(200)
    assert second.count(429) >= 5, second
    assert passed <= 10 + 2 * elapsed + 2, (passed, elapsed)
    # the buckets are in the store, per key: a new one is full, less what was taken
    assert store.count_requests({"key:other": 3}, 10.0, 10) == {"key:other": 7.0}
