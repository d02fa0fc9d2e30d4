"""Long work as jobs: optimisation and re-division run on a background thread; clients
poll ``GET /jobs/{id}`` for progress and the result.

A job is visible to the key that started it (and to admins). A job that fails on purpose
(a :class:`~gis.errors.GridError`: bad input, a busy store) reports that message; any other
failure is logged server-side with an id and the job says only "internal error" and the id.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.http.analysis import MAX_SITES, Site, candidates, planner
from api.http.deps import Admin, Caller, Ctx, Planner
from api.http.errors import Problem
from gis.access import Principal
from gis.errors import GridError
from gis.store import Store
from gis.store.base import TIMEZONE
from gis.workflows import grids as wgrids
from gis.workflows import sites as wsites

log = logging.getLogger("gridgis.jobs")
router = APIRouter(tags=["jobs"])
Say = Callable[[str], None]


#: a running job's process writes a sign of life this often; one silent for STALE_S (on
#: another machine; on this one, a process that is gone) is reported failed
BEAT_S, STALE_S = 5.0, 300.0


def _now() -> str:
    return datetime.now(TIMEZONE).isoformat(timespec="seconds")


class Jobs:
    """Background jobs with progress, one at a time per server process.

    Their state lives in the store (layer ``jobs``), not in the process: with
    ``gridgis serve --workers N`` a job started through one process is polled through any
    other. A job whose process died is reported failed, not running for ever.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="gridgis-job")
        self.runner = f"{socket.gethostname()}:{os.getpid()}"

    def _save(self, job_id: str, values: dict[str, Any]) -> None:
        with self.store.transaction() as tx:
            tx.update_many("jobs", [(job_id, values | {"beat": _now()})])

    def start(self, kind: str, owner: Principal, work: Callable[[Say], Any]) -> str:
        """Queue ``work(say)``; returns the job id."""
        job_id = uuid.uuid4().hex[:12]
        with self.store.transaction() as tx:
            tx.add("jobs", [{"id": job_id, "kind": kind, "status": "queued", "owner": owner.name,
                             "runner": self.runner, "created": _now(), "beat": _now(),
                             "progress": "[]", "result": None, "error": None}])  # fmt: skip
            tx.audit(owner.name, f"jobs.{kind}", job_id, "queued")
        progress: list[dict[str, Any]] = []
        t0 = time.time()

        def say(step: str) -> None:
            progress.append({"at": round(time.time() - t0, 2), "step": step})
            self._save(job_id, {"progress": json.dumps(progress, ensure_ascii=False)})

        def run() -> None:
            done = threading.Event()
            threading.Thread(target=self._beat, args=(job_id, done), daemon=True).start()
            self._save(job_id, {"status": "running"})
            try:
                result = work(say)
                out = {
                    "status": "done",
                    "result": json.dumps(result, ensure_ascii=False, default=str),
                }
            except GridError as exc:  # raised on purpose: its message is for the client
                out = {"status": "failed", "error": str(exc)}
            except Exception:
                ref = uuid.uuid4().hex[:10]
                log.exception("job %s (%s) failed (error %s)", job_id, kind, ref)
                out = {"status": "failed", "error": f"internal error; it has been logged as {ref}"}
            finally:
                done.set()
            for attempt in range(5):  # the outcome must land, even past a busy store
                try:
                    self._save(job_id, out)
                    break
                except GridError:
                    if attempt == 4:
                        raise
                    time.sleep(2.0)

        self.pool.submit(run)
        return job_id

    def _beat(self, job_id: str, done: threading.Event) -> None:
        while not done.wait(BEAT_S):
            try:
                self._save(job_id, {})
            except GridError:  # a busy store: the next beat will do
                log.debug("job %s: heartbeat skipped (store busy)", job_id)

    def get(self, job_id: str, who: Principal) -> dict[str, Any] | None:
        """The job as its owner (or an admin) may see it, else ``None``."""
        with self.store.snapshot() as tx:
            found = tx.rows("jobs", {"id": job_id})
        if not found or (found[0]["owner"] != who.name and not who.at_least("admin")):
            return None
        j = found[0]
        job = {"id": j["id"], "kind": j["kind"], "status": j["status"], "owner": j["owner"],
               "progress": json.loads(j["progress"] or "[]"),
               "result": json.loads(j["result"]) if j["result"] else None}  # fmt: skip
        if j["error"]:
            job["error"] = j["error"]
        if job["status"] in ("queued", "running") and self._gone(j["runner"], j["beat"]):
            job["status"] = "failed"
            job["error"] = "the server process running this job stopped; start the job again"
        return job

    def _gone(self, runner: str, beat: str) -> bool:
        """Whether the process that runs a job is gone (or silent for too long)."""
        host, _, pid = runner.rpartition(":")
        if host == socket.gethostname() and pid.isdigit():
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                return True
            except PermissionError:
                pass
        age = (datetime.now(TIMEZONE) - datetime.fromisoformat(beat)).total_seconds()
        return age > STALE_S


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
