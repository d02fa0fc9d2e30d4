"""The PostGIS store's connections: a read retried once on a connection the database
dropped, pooled connections checked after an idle spell, the error of an unreachable
database.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
import sqlalchemy as sa

from gis.errors import StoreUnavailableError

T = TypeVar("T")


def _unavailable(url: str, exc: BaseException) -> StoreUnavailableError:
    return StoreUnavailableError(f"the database of {url} cannot be reached ({type(exc).__name__})")


def _guard(fn: Callable[..., T]) -> Callable[..., T]:
    """A read that meets a connection the database dropped (a restart) runs once more on a
    fresh one (SQLAlchemy has discarded the whole pool by then); a database that cannot be
    reached raises :class:`StoreUnavailableError`.
    """

    @functools.wraps(fn)
    def inner(self: Any, *args: Any, **kw: Any) -> T:
        for attempt in (1, 2):
            try:
                return fn(self, *args, **kw)
            except sa.exc.DBAPIError as exc:
                if attempt == 1 and exc.connection_invalidated:
                    continue
                if exc.connection_invalidated or isinstance(exc, sa.exc.OperationalError):
                    raise _unavailable(self.url, exc) from None
                raise
        raise AssertionError("unreachable")

    return inner


#: a pooled connection idle for longer than this is checked before use (under load
#: connections come back within milliseconds and are used as they are)
IDLE_CHECK_S = 2.0


def _check_idle_connections(engine: sa.Engine) -> None:
    """Check a pooled connection before use when it has been idle: a database restart or a
    dropped link is found before the request's query, and SQLAlchemy takes a fresh one.
    """

    @sa.event.listens_for(engine, "checkin")
    def checkin(dbapi_con: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def checkout(dbapi_con: Any, record: Any, proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < IDLE_CHECK_S:
            return
        try:
            with dbapi_con.cursor() as cur:
                cur.execute("SELECT 1")
            # end the transaction the check opened: a connection handed out "in
            # transaction" cannot take a snapshot's isolation level (500 after an idle spell)
            dbapi_con.rollback()
        except psycopg.Error:
            raise sa.exc.DisconnectionError() from None  # the pool retries with a new one
