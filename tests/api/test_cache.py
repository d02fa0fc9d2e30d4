"""HTTP caching and compression, on both stores: strong ETags from the layers' versions,
304 on a repeat, a new tag after any edit, private answers for keys; gzip, brotli and zstd
answers that decode to the same document."""

from __future__ import annotations

import json
import time

import cramjam
import pytest
from fastapi.testclient import TestClient

from api.http.app import create_app
from gis import access

IN = "370405001"


@pytest.fixture
def served_cache(city):
    keys = {
        name: access.create_key(city, role, scope, name)[0]
        for name, role, scope in (("viewer", "viewer", None), ("supervisor", "supervisor", IN))
    }
    return city, TestClient(create_app(city, anonymous_read=True)), keys


def _items(c, headers=None, **params):
    return c.get("/collections/grids/items", params={"limit": 100, **params}, headers=headers or {})


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_compressed_answers_decode_to_the_same_document(served_cache, coding):
    _, c, keys = served_cache
    plain = _items(c, {"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and "content-encoding" not in plain.headers
    packed = c.get(
        "/collections/grids/items",
        params={"limit": 100},
        headers={"Accept-Encoding": coding},
    )
    assert packed.headers["content-encoding"] == coding
    raw = packed.content  # the test client decodes gzip itself, not brotli or zstd
    body = (
        raw
        if coding == "gzip"
        else bytes(getattr(cramjam, {"br": "brotli"}.get(coding, coding)).decompress(raw))
    )
    # the same document but for its time stamp, which may fall in the next second
    assert {**json.loads(body), "timeStamp": None} == {**plain.json(), "timeStamp": None}
    assert (
        len(packed.headers.get("content-length", raw))
        and int(packed.headers["content-length"]) < len(plain.content) / 3
    )
    # the coded answer is another representation: its strong tag names the coding
    assert packed.headers["etag"] == plain.headers["etag"][:-1] + f'-{coding}"'
    assert "Accept-Encoding" in packed.headers["vary"]
    # a small answer goes as it is
    small = c.get("/conformance", headers={"Accept-Encoding": coding})
    assert "content-encoding" not in small.headers


def test_a_repeat_with_the_tag_is_304_without_a_body(served_cache):
    _, c, keys = served_cache
    for path in ("/collections/grids/items", "/collections/grids", "/collections", "/conformance"):
        r = c.get(path, headers={"Accept-Encoding": "identity"})
        assert r.status_code == 200 and r.headers["etag"].startswith('"'), path
        again = c.get(
            path, headers={"If-None-Match": r.headers["etag"], "Accept-Encoding": "identity"}
        )
        assert again.status_code == 304 and again.content == b"", path
        assert again.headers["etag"] == r.headers["etag"]
        # the tag of the gzip answer holds too, and an unknown one does not
        assert (
            c.get(path, headers={"If-None-Match": r.headers["etag"][:-1] + '-gzip"'}).status_code
            == 304
        )
        assert c.get(path, headers={"If-None-Match": '"nope"'}).status_code == 200
    r = _items(c)
    assert r.headers["cache-control"].startswith("public")  # anonymous
    since = c.get("/collections/grids/items", params={"limit": 100},
                  headers={"If-Modified-Since": r.headers["last-modified"]})  # fmt: skip
    assert since.status_code == 304


def test_keys_get_private_answers_with_tags_of_their_own(served_cache):
    _, c, keys = served_cache
    anon = _items(c)
    viewer = _items(c, {"X-API-Key": keys["viewer"]})
    sup = _items(c, {"X-API-Key": keys["supervisor"]})
    assert viewer.headers["cache-control"].startswith("private")
    # the same view (a viewer key reads what anonymous clients may) is the same tag;
    # a supervisor sees more, so another
    assert anon.headers["etag"] == viewer.headers["etag"] != sup.headers["etag"]
    # another key's tag does not make a 304 for this one
    r = _items(c, {"X-API-Key": keys["supervisor"], "If-None-Match": viewer.headers["etag"]})
    assert r.status_code == 200 and r.content


def test_any_edit_changes_the_tag(served_cache):
    store, c, keys = served_cache
    sup = {"X-API-Key": keys["supervisor"], "Accept-Encoding": "identity"}
    first = _items(c, sup)
    a, w = store.read("assignments"), store.read("workers")
    grid, worker = next(
        (g, o) for g, cur in zip(a["grid_code"], a["worker_id"], strict=True) if g.startswith(IN)
        for o in w.loc[w["community_code"] == g[:12], "id"] if o != cur
    )  # fmt: skip
    assert c.put(f"/assignments/{grid}", json={"worker_id": worker}, headers=sup).status_code == 200
    after = _items(c, {**sup, "If-None-Match": first.headers["etag"]})
    assert after.status_code == 200 and after.headers["etag"] != first.headers["etag"]
    # a write that did not come through this server (another process, the CLI) is seen
    # within half a second
    g = store.read("grids").iloc[0]
    with store.transaction() as tx:
        tx.update("grids", g["code"], {"households": int(g["households"]) + 1})
        tx.audit("test", "grids.update", g["code"])
    time.sleep(0.6)
    last = _items(c, {**sup, "If-None-Match": after.headers["etag"]})
    assert last.status_code == 200 and last.headers["etag"] != after.headers["etag"]


def _at_once(n, ask):
    """``ask()`` in ``n`` threads started together; their answers."""
    import threading

    start, got = threading.Barrier(n), []

    def one():
        start.wait()
        got.append(ask())

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return got


def test_eight_threads_wanting_one_memo_build_it_once(city):
    """The first look-ups after a start: one thread builds, the others wait for its value."""
    import threading

    from api.http.context import Layers

    layers, built = Layers(city), []

    def make():
        built.append(threading.get_ident())
        time.sleep(0.2)  # as a locator takes to build
        return object()

    got = _at_once(8, lambda: layers.memo(("locator",), ("grids",), make))
    assert len(built) == 1 and len(got) == 8 and len({id(v) for v in got}) == 1
    assert not layers.building  # nothing left behind
    # a build that fails leaves no lock: the next one builds
    with pytest.raises(ZeroDivisionError):
        layers.memo(("bad",), (), lambda: 1 / 0)
    assert layers.memo(("bad",), (), lambda: 2) == 2 and not layers.building


def _bump(store, layer="grids"):
    """A write through another connection (as another process or the CLI makes)."""
    g = store.read(layer).iloc[0]
    with store.transaction() as tx:
        tx.update(layer, g["code"], {"households": int(g["households"]) + 1})
        tx.audit("test", f"{layer}.update", g["code"])


def _wait(pred, seconds=5.0):
    end = time.monotonic() + seconds
    while not pred():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.01)


def test_under_load_the_version_check_runs_ahead_in_the_background(city):
    """A peek (the event loop's way in) never asks the store: past AHEAD it starts one
    check on a thread of its own and answers from memory; a change that check finds
    drops what was built from the layer.
    """
    from api.http.context import AHEAD, FRESH, Layers

    layers = Layers(city)
    value = layers.memo(("locator",), ("grids",), object)
    assert layers.peek(("locator",)) is value  # fresh: held
    time.sleep(AHEAD + 0.05)
    before = layers.checked
    assert layers.peek(("locator",)) is value  # past AHEAD: still answered from memory…
    _wait(lambda: layers.checked > before and not layers.ahead)  # …and checked behind it
    assert time.monotonic() - layers.checked < FRESH
    assert layers.peek(("locator",)) is value  # nothing changed: still held
    _bump(city)
    time.sleep(AHEAD + 0.05)
    before = layers.checked
    layers.peek(("locator",))  # starts the check that finds the write
    _wait(lambda: layers.checked > before and not layers.ahead)
    assert layers.peek(("locator",)) is None  # dropped: the next request builds anew
    assert layers.memo(("locator",), ("grids",), object) is not value
    # past FRESH with no check since (an idle service): the request goes the slow way
    layers.checked -= FRESH
    assert layers.peek(("locator",)) is None


def test_a_peek_does_not_wait_for_a_check_under_way(city):
    """The store is asked outside the lock the event loop takes: a slow answer to the
    version check (a busy database) holds no request that is served from memory.
    """
    import threading

    from api.http.context import AHEAD, Layers

    layers = Layers(city)
    value = layers.memo(("locator",), ("grids",), object)
    asked, release = threading.Event(), threading.Event()
    stamps = city.stamps

    def slow():
        asked.set()
        release.wait(10)
        return stamps()

    layers.store = type("Slow", (), {"stamps": staticmethod(slow), "names": city.names})()
    try:
        time.sleep(AHEAD + 0.05)
        assert layers.peek(("locator",)) is value  # starts the check, which now hangs
        assert asked.wait(5)
        got = []
        t = threading.Thread(target=lambda: got.append(layers.peek(("locator",))))
        t.start()
        t.join(2)
        assert not t.is_alive() and got == [value]  # answered while the store is asked
    finally:
        release.set()
    _wait(lambda: not layers.ahead)


def test_a_value_built_while_its_layer_changed_is_not_kept(city):
    """A locator built from grids that changed while it was built is handed to its
    caller but not kept: the next request builds it from the new grids.
    """
    from api.http.context import Layers

    layers = Layers(city)
    built = []

    def make():
        built.append(len(built))
        if len(built) == 1:  # a write, seen by this process, while the value is built
            _bump(city)
            layers.refresh(force=True)
        return len(built)

    assert layers.memo(("locator",), ("grids",), make) == 1
    assert layers.memo(("locator",), ("grids",), make) == 2  # built again, then kept
    assert layers.memo(("locator",), ("grids",), make) == 2
    # the same for a layer read while it changed
    first = layers.get(("grids",))["grids"]
    assert layers.get(("grids",))["grids"] is first  # kept
    _bump(city)
    layers.refresh(force=True)
    assert layers.get(("grids",))["grids"] is not first  # read anew after the change


def test_the_threads_waiting_for_a_build_take_its_value_even_when_it_is_not_kept(city):
    """While the grids change under a build, the threads that waited for it take the
    built value rather than each building again (they queued one after the other)."""

    from api.http.context import Layers

    layers, built = Layers(city), []

    def make():
        built.append(1)
        time.sleep(0.3)  # the others queue meanwhile
        _bump(city)  # and the grids change under the build
        layers.refresh(force=True)
        return object()

    got = _at_once(4, lambda: layers.memo(("locator",), ("grids",), make))
    assert len(built) == 1 and len({id(v) for v in got}) == 1 and len(got) == 4
    assert ("locator",) not in layers.cache  # not kept: built across a change


def test_a_failing_check_is_not_retried_by_every_request(city):
    """With the store unreachable, the checks ahead stop for a while after one fails,
    rather than one per request (each request then reports the outage itself)."""
    from api.http.context import AHEAD, FRESH, Layers

    layers = Layers(city)
    value = layers.memo(("locator",), ("grids",), object)
    asked = []

    def down():
        asked.append(1)
        raise ConnectionError("the database is down")

    layers.store = type("Down", (), {"stamps": staticmethod(down), "names": city.names})()
    time.sleep(AHEAD + 0.01)
    end = time.monotonic() + (FRESH - AHEAD) * 0.8
    served = 0
    while time.monotonic() < end:  # requests served from memory until FRESH
        served += layers.peek(("locator",)) is value
        time.sleep(0.001)
    assert served > 20 and len(asked) == 1


def test_a_warm_start_builds_the_lookups_before_the_first_request(city):
    import gc

    from api.http.app import _warm
    from api.settings import Settings

    app = create_app(city, settings=Settings(warm=True))
    ctx = app.state.ctx
    assert ("locator",) not in ctx.layers.cache
    try:
        _warm(ctx)
        assert ("locator",) in ctx.layers.cache and ("grid_extra",) in ctx.layers.cache
        assert gc.get_freeze_count() > 0  # the cached layers out of the collector's walks
        assert ctx.ready.is_set()
    finally:
        gc.unfreeze()


def test_ready_says_when_the_warm_up_is_over(city):
    """GET /ready: 503 with Retry-After while the service warms up, 200 after; it needs a
    caller like every route.
    """
    from api.settings import Settings

    key = access.create_key(city, "viewer", None, "probe")[0]
    app = create_app(city, settings=Settings(warm=True))
    c = TestClient(app)
    r = c.get("/ready", headers={"X-API-Key": key})
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert r.headers["content-type"] == "application/problem+json"
    assert c.get("/ready").status_code == 401
    with TestClient(app) as started:  # the app's start runs the warm-up
        _wait(lambda: started.get("/ready", headers={"X-API-Key": key}).status_code == 200, 60)
        assert ("locator",) in app.state.ctx.layers.cache  # ready means warm
    import gc

    gc.unfreeze()
