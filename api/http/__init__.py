"""The HTTP service (FastAPI): OGC API – Features, dispatch look-up, analysis, maps."""

from api.http.app import create_app

__all__ = ["create_app"]
