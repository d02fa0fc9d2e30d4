"""Edit routes: a supervisor makes a worker responsible for a grid (audited)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.http.deps import Ctx, Supervisor
from gis.workflows import staff as wstaff

router = APIRouter(tags=["staffing"])


class Assignment(BaseModel):
    """The worker made responsible for a grid."""

    worker_id: str = Field(min_length=1, max_length=64)


@router.put("/assignments/{grid_code}")
def put_assignment(
    grid_code: str, who: Supervisor, ctx: Ctx, body: Annotated[Assignment, Body()]
) -> JSONResponse:
    """Make a worker responsible for a grid (supervisors, inside their jurisdiction).

    Waits for a running assignment of the whole city at most ``edit_wait`` seconds, then
    answers 503 with ``Retry-After``; a 200 means the change and its audit row are stored.
    """
    wstaff.edit_assignment(ctx.store, who, grid_code, body.worker_id, wait=ctx.settings.edit_wait)
    ctx.changed()
    return JSONResponse({"grid_code": grid_code, "worker_id": body.worker_id})
