"""What every request passes before a handler sees it (plain ASGI middleware).

- **body limit**: the bytes of a request body are counted as they arrive, with or without
  ``Content-Length``; one byte over the limit and the request is answered 413, whatever
  route or role (a chunked 400 MB body no longer reaches the handler);
- **rate limit**: a token bucket per API key (per client address without one), answered
  429 with ``Retry-After`` when empty;
- **headers**: ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer`` on
  every answer, and a Content-Security-Policy on HTML: the map pages run only their own two
  inlined scripts, the ``?f=html`` pages none.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from maps.base import csp as map_csp

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

# the API documentation pages load Swagger UI / ReDoc from their CDN (nothing else does)
DOCS_CSP = ("default-src 'none'; script-src 'unsafe-inline' https://cdn.jsdelivr.net; "
            "style-src 'unsafe-inline' https://cdn.jsdelivr.net; img-src data: https://fastapi.tiangolo.com "
            "https://cdn.redoc.ly; connect-src 'self'; worker-src blob:; frame-ancestors 'none'")  # fmt: skip
PAGE_CSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"


async def _problem(
    send: Send, status: int, detail: str, headers: tuple[tuple[bytes, bytes], ...] = ()
) -> None:
    titles = {413: "Too large", 429: "Too many requests"}
    body = json.dumps({"type": "about:blank", "title": titles.get(status, "Error"), "status": status,
                       "detail": detail}).encode()  # fmt: skip
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/problem+json"),
                            (b"content-length", str(len(body)).encode()), *headers]})  # fmt: skip
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Count request body bytes as they arrive; 413 past ``limit``, on every route.

    The body (at most ``limit`` bytes) is read before the request goes on, then handed to
    the application as it came: so a route that never reads its body (a role check that
    refuses first, a route without a body) answers 413 to an oversized one as every other
    route does, and no request holds more than ``limit`` bytes.
    """

    def __init__(self, app: App, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer 413 for a body over the limit, else pass the request on with its body."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        detail = f"request body over {self.limit:,} bytes"
        headers = dict(scope.get("headers") or [])
        size = headers.get(b"content-length")
        if size is not None and (not size.isdigit() or int(size) > self.limit):
            await _problem(send, 413, detail)
            return
        if size in (None, b"0") and b"transfer-encoding" not in headers:
            await self.app(scope, receive, send)  # no body at all
            return
        chunks, seen = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([message]), send)
                return
            seen += len(message.get("body", b""))
            if seen > self.limit:
                await _problem(send, 413, detail)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        await self.app(scope, _replay([body], receive), send)


def _replay(messages: list[Message], then: Receive | None = None) -> Receive:
    """A receive that gives ``messages``, then waits on ``then`` (a disconnect)."""
    queue = list(messages)

    async def receive() -> Message:
        if queue:
            return queue.pop(0)
        if then is not None:
            return await then()
        return {"type": "http.disconnect"}

    return receive


#: how often server processes tell each other (through the store) what they let through
SYNC_S = 0.25


class Shared:
    """The store through which the rate limits of several server processes are shared,
    and the end of its sync thread: :meth:`close` (at the app's shutdown) stops and joins
    it, so no sync runs against a store that is being closed.
    """

    def __init__(self, store: Any) -> None:
        self.store = store
        self.stopped = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self, target: Any) -> threading.Thread:
        """Run ``target`` in a daemon thread, unless closed."""
        t = threading.Thread(target=target, name="gridgis-rates", daemon=True)
        if not self.stopped.is_set():
            self.threads.append(t)
            t.start()
        return t

    def close(self) -> None:
        """Stop the sync and wait for a sync in flight."""
        self.stopped.set()
        for t in self.threads:
            t.join(5)


class RateLimit:
    """A token bucket per API key (per client address without one): ``rate`` requests a
    second on average, bursts of ``burst``; an empty bucket answers 429 with Retry-After.
    With ``shared`` (the store, :class:`Shared`; ``serve --workers N``) the buckets of the N processes drain
    together: each learns from the store what the others let through (every
    :data:`SYNC_S` s), so a key gets its rate whichever process its connections reach.
    ``rate`` 0 switches it off; ``exempt_loopback`` lets requests from this machine pass
    (benchmarks, tests), so a proxy on this machine must not be trusted with it.
    """

    def __init__(
        self,
        app: App,
        rate: float,
        burst: int,
        exempt_loopback: bool = False,
        shared: Shared | None = None,
        sync: float | None = None,
        processes: int = 1,
    ) -> None:
        self.app, self.rate, self.burst, self.exempt = app, rate, burst, exempt_loopback
        self.buckets: dict[str, tuple[float, float]] = {}
        self.lock = threading.Lock()
        #: several server processes: the store (``Store.count_requests``) through which
        #: each learns what the others let through, every ``sync`` seconds
        self.shared, self.sync = shared, SYNC_S if sync is None else sync
        self.taken: dict[str, int] = {}  # let through here since the last sync
        self.syncer: threading.Thread | None = None
        # a caller new to this process starts with its share of the burst, until the
        # first sync (a fraction of a second) says how full its bucket is
        self.first = float(burst) / max(1, processes) if shared is not None else float(burst)

    def _share(self) -> None:
        """Every ``sync`` seconds: send what this process let through and take each
        caller's bucket as the store has it for all processes (``Store.count_requests``),
        less what passed here since — so a key's rate holds across processes however its
        connections are spread. A store that cannot be asked leaves the buckets local
        until it can.
        """
        shared = self.shared
        assert shared is not None  # started only when shared
        while not shared.stopped.wait(self.sync):
            with self.lock:
                mine, self.taken = self.taken, {}
                now = time.monotonic()
                asked = {
                    k: mine.get(k, 0) for k, (_, last) in self.buckets.items() if now - last < 60
                }
                if not asked:  # a minute without a request: stop; the next one starts it again
                    self.syncer = None
                    return
            try:
                left = shared.store.count_requests(asked, self.rate, self.burst)
            except Exception:  # noqa: BLE001 — the limit stays local; nothing to report per request
                with self.lock:
                    for k, n in mine.items():
                        self.taken[k] = self.taken.get(k, 0) + n
                continue
            with self.lock:
                now = time.monotonic()
                for k, tokens in left.items():
                    self.buckets[k] = (tokens - self.taken.get(k, 0), now)

    def _take(self, who: str) -> float:
        """0 when the request may pass, else the seconds until it may."""
        now = time.monotonic()
        with self.lock:
            tokens, last = self.buckets.get(who, (self.first, now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens >= 1:
                self.buckets[who] = (tokens - 1, now)
                if self.shared is not None:
                    self.taken[who] = self.taken.get(who, 0) + 1
                    if self.syncer is None:
                        self.syncer = self.shared.start(self._share)
                return 0.0
            self.buckets[who] = (tokens, now)
            if len(self.buckets) > 100_000:  # forget idle clients rather than grow for ever
                self.buckets = {k: v for k, v in self.buckets.items() if now - v[1] < 60}
            return (1 - tokens) / self.rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer 429 when the caller's bucket is empty, else pass the request on."""
        if scope["type"] != "http" or self.rate <= 0:
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("?", 0))[0]
        if self.exempt and client in ("127.0.0.1", "::1"):
            await self.app(scope, receive, send)
            return
        key = dict(scope.get("headers") or []).get(b"x-api-key")
        who = "key:" + hashlib.sha256(key).hexdigest() if key else f"ip:{client}"
        wait = self._take(who)
        if wait:
            await _problem(send, 429, "too many requests; slow down",
                           ((b"retry-after", str(max(1, math.ceil(wait))).encode()),))  # fmt: skip
            return
        await self.app(scope, receive, send)


class SecurityHeaders:
    """nosniff and Referrer-Policy on every answer; a Content-Security-Policy on HTML."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.maps = (map_csp() + "; frame-ancestors 'none'").encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the headers to its answer."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")

        async def headed(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                have = {k.lower() for k, _ in headers}
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer"),
                ]
                ctype = dict(headers).get(b"content-type", b"")
                if ctype.startswith(b"text/html") and b"content-security-policy" not in have:
                    policy = (self.maps if path.startswith("/maps/")
                              else DOCS_CSP.encode() if path in ("/docs", "/redoc") else PAGE_CSP.encode())  # fmt: skip
                    headers.append((b"content-security-policy", policy))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, headed)


class Errors:
    """The last line: an exception no handler took becomes a logged 500 that shows the
    client only an id; a normal answer after an outage tells ``outage`` the store is back.
    """

    def __init__(
        self, app: App, outage: Any, internal: Callable[[Any, BaseException], Any]
    ) -> None:
        self.app, self.outage, self.internal = app, outage, internal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; answer 500 for what escaped it."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if message["status"] < 500:
                    self.outage.up()
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as exc:  # a bug must not show its trace or SQL to the client
            if started:
                raise
            from starlette.requests import Request

            await self.internal(Request(scope), exc)(scope, receive, send)
