"""HTTP caching and compression.

- **Conditional requests**: an answer built from stored layers carries a strong ``ETag``
  made from the versions of those layers (the store keeps a cheap write counter per
  layer, so the tag is known before any work), the request (path, query, ``Accept``) and
  who asks (role, jurisdiction, worker): two callers who see different things never share
  a tag. ``Last-Modified`` is the newest write of those layers. A repeat with
  ``If-None-Match`` (or ``If-Modified-Since``) that still holds gets ``304 Not Modified``
  and no body, before the store is read. A tag changes within half a second of a write
  made through another server process (the layer cache asks the store that often), at
  once for a write through this one.
- **Cache-Control**: keyed answers are ``private`` (a shared cache must not hand one key's
  view to another); anonymous ones ``public``; ``max-age`` per kind of answer (reference
  layers change about once a year, coverage and grids when they are recomputed).
- **Compression**: gzip, brotli or zstd when the client asks (``Accept-Encoding``), above
  :data:`MIN_SIZE` bytes, by starlette-cramjam (Rust codecs; measured against Starlette's
  GZip middleware in ``bench/bench_api.py``). A compressed answer's tag names its coding
  (``"…-gzip"``), as a strong tag must.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gis.access import Principal

#: seconds an answer may be kept, by kind
MAX_AGE = {"static": 3600, "reference": 300, "features": 60, "maps": 60}
#: answers smaller than this are sent as they are (compression costs more than it saves)
MIN_SIZE = 1024
#: codings, in the order the server prefers them when the client takes several
CODINGS = ("br", "zstd", "gzip")
#: a middling level: brotli's default (11) costs ~30 ms on a 100-grid page; 5 costs ~2 ms
#: and keeps most of the gain
LEVEL = 5


def _tags(header: str) -> set[str]:
    out = set()
    for t in header.split(","):
        t = t.strip().removeprefix("W/")
        for c in CODINGS:  # a tag of a compressed answer names its coding
            t = t.replace(f'-{c}"', '"')
        out.add(t)
    return out


def conditional(
    request: Request,
    layers: Any,
    who: Principal,
    deps: Iterable[str],
    kind: str = "features",
) -> dict[str, str] | Response:
    """The caching headers of an answer built from layers ``deps`` (a
    :class:`api.http.context.Layers`), or a ``304`` when the client's copy still holds.
    """
    deps = sorted(set(deps))
    layers.refresh()
    stamps = layers.stamps
    raw = json.dumps(
        [
            [[n, stamps.get(n, (0, None))[0]] for n in deps],
            request.url.path,
            sorted(request.query_params.multi_items()),
            request.headers.get("accept", ""),
            who.role,
            who.scope,
            who.worker_id,
        ],
        default=str,
    )
    tag = '"' + hashlib.sha256(raw.encode()).hexdigest()[:32] + '"'
    keyed = request.headers.get("x-api-key") is not None
    headers = {
        "ETag": tag,
        "Cache-Control": f"{'private' if keyed else 'public'}, max-age={MAX_AGE[kind]}",
        "Vary": "Accept, Accept-Encoding, X-API-Key",
    }
    times = [stamps[n][1] for n in deps if n in stamps and stamps[n][1] is not None]
    last: datetime | None = max(times) if times else None
    if last is not None:
        last = last.astimezone(UTC).replace(microsecond=0)
        headers["Last-Modified"] = format_datetime(last, usegmt=True)
    inm = request.headers.get("if-none-match")
    if inm is not None:
        if inm.strip() == "*" or tag in _tags(inm):
            return Response(status_code=304, headers=headers)
        return headers
    ims = request.headers.get("if-modified-since")
    if ims and last is not None:
        try:
            since = parsedate_to_datetime(ims)
        except (TypeError, ValueError):
            return headers
        if since.tzinfo is not None and last <= since:
            return Response(status_code=304, headers=headers)
    return headers


def feature_tag(content: str, request: Request, who: Principal) -> str:
    """The strong ``ETag`` of one editable feature: its content tag (a hash of the stored
    row, :func:`gis.edits.content_tag`) and, after a dot, the representation (CRS, format,
    who asks) — ``If-Match`` on an edit is checked against the first part only.
    """
    raw = json.dumps([request.url.path, sorted(request.query_params.multi_items()),
                      request.headers.get("accept", ""), who.role, who.scope, who.worker_id])  # fmt: skip
    return f'"{content}.{hashlib.sha256(raw.encode()).hexdigest()[:8]}"'


def matched(header: str | None, tag: str) -> bool:
    """Whether an ``If-None-Match`` header names ``tag`` (any coding of it) or is ``*``."""
    return header is not None and (header.strip() == "*" or tag in _tags(header))


def if_match(header: str | None) -> set[str] | None:
    """The content tags an ``If-Match`` header holds (``{"*"}`` for any), ``None`` without one."""
    if header is None:
        return None
    if header.strip() == "*":
        return {"*"}
    return {t.strip('"').split(".")[0] for t in _tags(header) if t}


class CodingInTag:
    """Name the content coding in a strong ``ETag`` (wraps the compression middleware:
    the gzip and the plain answer are different representations, each with its own tag).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; rewrite the tag of a coded answer."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                coding = next((v for k, v in headers if k.lower() == b"content-encoding"), None)
                if coding is not None:
                    headers = [
                        (k, v[:-1] + b"-" + coding + b'"')
                        if k.lower() == b"etag" and v.endswith(b'"')
                        else (k, v)
                        for k, v in headers
                    ]
                    message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, tagged)


class Compression:
    """The compression middleware (starlette-cramjam) with coded tags."""

    def __init__(self, app: ASGIApp) -> None:
        from starlette_cramjam.compression import Compression as Coding
        from starlette_cramjam.middleware import CompressionMiddleware

        self.app = CodingInTag(
            CompressionMiddleware(
                app,
                minimum_size=MIN_SIZE,
                compression=[Coding(c) for c in CODINGS],
                compression_level=LEVEL,
                exclude_mediatype={"image/png", "image/jpeg", "text/event-stream"},
            )
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Compress the answer when the client takes a coding and it is large enough."""
        await self.app(scope, receive, send)
