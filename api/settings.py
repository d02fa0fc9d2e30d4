"""The service's settings, read from the environment once (pydantic-settings).

Both front doors take a :class:`Settings` object: ``create_app(settings=…)`` and the
command line (``Settings()`` when it starts). Environment variables carry the ``GRIDGIS_``
prefix (``GRIDGIS_STORE``, ``GRIDGIS_ANONYMOUS_READ``, ``GRIDGIS_THREADS``…), except the
Tianditu key, which map tools know as ``TIANDITU_KEY``.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_STORE = "out/zaozhuang.gpkg"


class Settings(BaseSettings):
    """Where the data is and how the service behaves."""

    model_config = SettingsConfigDict(env_prefix="GRIDGIS_", extra="ignore")

    store: str = Field(
        default=DEFAULT_STORE, description="A .gpkg path or a postgresql+psycopg:// URL."
    )
    anonymous_read: bool = Field(
        default=False, description="Let clients without a key read what a viewer may."
    )
    threads: int = Field(default=8, ge=1, le=64, description="Worker threads of the HTTP service.")
    max_body: int = Field(default=2_000_000, ge=1_000, description="Largest request body, bytes.")
    max_points: int = Field(default=10_000, ge=1, description="Most points in one POST /locate.")
    edit_wait: float = Field(
        default=10.0, gt=0, description="Seconds an HTTP edit waits for a busy store."
    )
    retry_after: int = Field(default=5, ge=1, description="Retry-After of a 503, seconds.")
    rate_limit: float = Field(
        default=100.0, ge=0, description="Requests per second per API key (0: no limit)."
    )
    rate_burst: int = Field(default=300, ge=1, description="Requests a key may make at once.")
    processes: int = Field(
        default=1,
        ge=1,
        description="Server processes (set by `serve --workers`): they share the rate limit through the store.",
    )
    warm: bool = Field(
        default=False,
        description="Build the look-up structures (locator, grid properties) at start, not on "
        "the first request (`serve` turns it on: on a province they take seconds).",
    )
    rate_limit_loopback_exempt: bool = Field(
        default=False, description="Requests from this machine pass the rate limit (benchmarks)."
    )
    privacy_min_buildings: int = Field(
        default=0,
        ge=0,
        description="Viewers' maps: 0 sums households per grid; k > 0 shows 100 m cells of at least k buildings.",
    )
    tianditu_key: str | None = Field(
        default=None,
        validation_alias=AliasChoices("TIANDITU_KEY", "GRIDGIS_TIANDITU_KEY"),
        description="Key for Tianditu base maps.",
    )

    def store_spec(self, given: str | None = None) -> str:
        """The store to use: the one given, else the configured one."""
        return given or self.store
