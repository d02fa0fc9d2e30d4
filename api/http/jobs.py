"""Long work as jobs: optimisation and re-division run on a background thread; clients
poll ``GET /jobs/{id}`` for progress and the result.

A job is visible to the key that started it (and to admins). A job that fails on purpose
(a :class:`~gis.errors.GridError`: bad input, a busy store) reports that message; any other
failure is logged server-side with an id and the job says only "internal error" and the id.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.http.analysis import MAX_SITES, Site, candidates, planner
from api.http.deps import Admin, Caller, Ctx, Planner
from api.http.errors import Problem
from gis.access import Principal
from gis.errors import GridError
from gis.workflows import grids as wgrids
from gis.workflows import sites as wsites

log = logging.getLogger("gridgis.jobs")
router = APIRouter(tags=["jobs"])
Say = Callable[[str], None]


class Jobs:
    """Background jobs with progress, one at a time."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="gridgis-job")
        self.jobs: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()

    def start(self, kind: str, owner: Principal, work: Callable[[Say], Any]) -> str:
        """Queue ``work(say)``; returns the job id."""
        job_id = uuid.uuid4().hex[:12]
        state: dict[str, Any] = {"id": job_id, "kind": kind, "status": "queued", "progress": [],
                                 "owner": owner.name, "created": time.time(), "result": None}  # fmt: skip

        def say(step: str) -> None:
            state["progress"].append({"at": round(time.time() - state["created"], 2), "step": step})

        def run() -> None:
            state["status"] = "running"
            try:
                state["result"] = work(say)
                state["status"] = "done"
            except GridError as exc:  # raised on purpose: its message is for the client
                state["status"], state["error"] = "failed", str(exc)
            except Exception:
                ref = uuid.uuid4().hex[:10]
                log.exception("job %s (%s) failed (error %s)", job_id, kind, ref)
                state["status"], state["error"] = (
                    "failed",
                    f"internal error; it has been logged as {ref}",
                )

        with self.lock:
            self.jobs[job_id] = state
        self.pool.submit(run)
        return job_id

    def get(self, job_id: str, who: Principal) -> dict[str, Any] | None:
        """The job as its owner (or an admin) may see it, else ``None``."""
        job = self.jobs.get(job_id)
        if job is None or (job["owner"] != who.name and not who.at_least("admin")):
            return None
        return {k: v for k, v in job.items() if k != "created"}


class Optimise(BaseModel):
    """An optimisation job."""

    type: str = Field(min_length=1, max_length=64)
    k: int | None = Field(default=None, ge=1, le=500)
    objective: Literal["mclp", "lscp", "pmedian"] = "mclp"
    candidates: list[Site] | None = Field(default=None, max_length=MAX_SITES)
    generate: int = Field(default=300, ge=1, le=MAX_SITES)
    within: str | None = Field(default=None, pattern=r"^\d{6,12}$")
    time_limit: float = Field(default=60, gt=0, le=600)
    mode: Literal["line", "network"] | None = None


def _accepted(job: str) -> JSONResponse:
    return JSONResponse({"job": job, "href": f"/jobs/{job}"}, status_code=202)


@router.post("/jobs/optimise", status_code=202)
def optimise_job(who: Planner, ctx: Ctx, body: Annotated[Optimise, Body()]) -> JSONResponse:
    """Start an optimisation (planners): returns the job id to poll."""
    if body.within and not who.covers(body.within):
        raise Problem(403, "within lies outside your jurisdiction")

    def work(say: Say) -> dict[str, Any]:
        say("coverage of the type (distances)")
        p = planner(ctx, body.type, body.mode)
        say("candidate sites")
        cands = candidates(body.candidates, "C") if body.candidates else None
        say(f"solving {body.objective.upper()}")
        opt = wsites.optimise_sites(p, cands, body.k, body.objective, generate=body.generate,
                                    time_limit=body.time_limit, within=body.within or who.scope)  # fmt: skip
        sites = [{"id": i, "lon": x, "lat": y} for i, x, y in
                 zip(opt.sites["id"], opt.sites["lon"], opt.sites["lat"], strict=True)]  # fmt: skip
        return {**opt.solution.as_dict(), "sites": sites}

    return _accepted(ctx.jobs.start("optimise", who, work))


@router.post("/jobs/regrid", status_code=202)
def regrid_job(who: Admin, ctx: Ctx) -> JSONResponse:
    """Re-divide grids where this year's households left the band (admins)."""

    def work(say: Say) -> dict[str, Any]:
        say("re-dividing communities out of band (grids, communities, buildings)")
        r = wgrids.regrid(ctx.store, who)
        ctx.changed()
        u = r.update
        assert u is not None
        return {"kept": u.kept, "retired": u.retired, "created": u.created,
                "stable_share": round(u.stable_share, 4)}  # fmt: skip

    return _accepted(ctx.jobs.start("regrid", who, work))


@router.get("/jobs/{job_id}")
def job_status(who: Caller, ctx: Ctx, job_id: str) -> JSONResponse:
    """A job's status, progress and (when done) result."""
    job = ctx.jobs.get(job_id, who)
    if job is None:
        raise Problem(404, f"no job {job_id!r}")
    return JSONResponse(job)
