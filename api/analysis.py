"""Analysis routes: coverage and staffing tables, site tests, scenarios, and long work
(optimisation, re-division) as jobs whose progress and result are polled.

Jobs run one at a time on a background thread; a job is visible to the key that started it
(and to admins). Every write is audited.
"""

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, Literal

import pandas as pd
from fastapi import Body, FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from gis import access, siting
from gis.access import Principal
from gis.coverage import compute
from gis.staffing import quotas

MAX_SITES = 2_000


class Site(BaseModel):
    """A candidate site in CRS84."""

    lon: float = Field(ge=-180, le=180)
    lat: float = Field(ge=-90, le=90)
    id: str | None = Field(default=None, max_length=64)
    area_m2: float | None = Field(default=None, ge=0, le=1e6)


class SiteTest(BaseModel):
    """Sites to test for one facility type."""

    type: str = Field(min_length=1, max_length=64)
    sites: list[Site] = Field(min_length=1, max_length=MAX_SITES)
    mode: Literal["line", "network"] | None = None


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


class ScenarioIn(BaseModel):
    """A scenario to save: a name and sites of one type (tested on saving)."""

    name: str = Field(min_length=1, max_length=100)
    type: str = Field(min_length=1, max_length=64)
    sites: list[Site] = Field(min_length=1, max_length=MAX_SITES)


class Jobs:
    """Background jobs with progress."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="gridgis-job")
        self.jobs: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()

    def start(self, kind: str, owner: Principal, work: Any) -> str:
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
            except Exception as exc:  # the job's error is its result, as one message
                state["status"] = "failed"
                state["error"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                state["detail"] = str(exc)

        with self.lock:
            self.jobs[job_id] = state
        self.pool.submit(run)
        return job_id

    def get(self, job_id: str, caller: Principal) -> dict[str, Any] | None:
        """The job as its owner (or an admin) may see it, else ``None``."""
        job = self.jobs.get(job_id)
        if job is None or (job["owner"] != caller.name and not caller.at_least("admin")):
            return None
        return {k: v for k, v in job.items() if k != "created"}


def add_routes(app: FastAPI, s: Any, layers: Any, who_dep: Any, problem: Any) -> None:
    """Register the analysis routes on ``app``."""
    jobs = Jobs()
    Who = Annotated[Principal, who_dep]

    def need(caller: Principal, role: str, what: str) -> None:
        if not caller.at_least(role):
            raise problem(403, f"{what} needs the {role} role")

    def inside(caller: Principal, codes: pd.Series) -> pd.Series:
        return codes.astype(str).map(caller.covers) if caller.scope else codes.map(lambda _: True)

    @app.get("/analysis/coverage", tags=["analysis"])
    def coverage_table(
        caller: Who,
        level: Literal["city", "district", "street", "community", "grid"] = "district",
        type: str | None = None,
    ) -> JSONResponse:
        """Served, covered, uncovered and share per unit of a level (and type)."""
        f = layers.get(("coverage",))
        if "coverage" not in f:
            raise problem(404, "coverage has not been computed (gridgis coverage)")
        t = f["coverage"]
        t = t[t["level"] == level]
        if type is not None:
            t = t[t["type"] == type]
        if level != "city":
            t = t[inside(caller, t["code"])]
        return JSONResponse({"level": level, "rows": json.loads(t.to_json(orient="records"))})

    @app.get("/analysis/staffing", tags=["analysis"])
    def staffing_table(caller: Who) -> JSONResponse:
        """Quota per community under the rules and the city cap, with the roster."""

        def make() -> pd.DataFrame:
            f = layers.get(("communities", "buildings", "workers"))
            hh = f["buildings"].groupby("community_code")["households"].sum()
            q = quotas(f["communities"], hh)
            roster = f["workers"].groupby("community_code").size() if "workers" in f else None
            q["roster"] = q["code"].map(roster).fillna(0).astype(int) if roster is not None else 0
            return q

        q = layers.memo(("staffing",), make)
        q = q[inside(caller, q["code"])]
        return JSONResponse({"rows": json.loads(q.to_json(orient="records"))})

    def planner(type_code: str, mode: str | None) -> siting.Planner:
        def make() -> siting.Planner:
            f = layers.get(("communities", "buildings", "facilities", "facility_types",
                            "grids", "roads"))  # fmt: skip
            types = f["facility_types"]
            if type_code not in set(types["code"]):
                raise problem(400, f"unknown facility type {type_code!r}")
            cv = compute(f["buildings"], f["facilities"], types, f["communities"],
                         grids=f.get("grids"), roads=f.get("roads"), mode=mode,
                         only=[type_code], gaps=False)  # fmt: skip
            return siting.Planner.from_coverage(cv, f["buildings"], f["facilities"], types,
                                                type_code)  # fmt: skip

        return layers.memo(("planner", type_code, mode), make)  # type: ignore[no-any-return]

    def frame(sites: list[Site], prefix: str = "S") -> Any:
        ids = [x.id or f"{prefix}{i + 1:04d}" for i, x in enumerate(sites)]
        c = siting.candidates([(x.lon, x.lat) for x in sites], area=[x.area_m2 for x in sites])
        c["id"] = ids
        return c

    def evaluate(
        caller: Principal, body: SiteTest | ScenarioIn, mode: str | None
    ) -> dict[str, Any]:
        p = planner(body.type, mode)
        ev = siting.evaluate(p, frame(body.sites))
        if not all(caller.covers(c) for c in ev.ranking["community_code"]):
            raise problem(403, "a site lies outside your jurisdiction")
        return {
            "type": body.type,
            "mode": p.cv.mode,
            "ranking": json.loads(ev.ranking.to_json(orient="records", force_ascii=False)),
            "by_unit": json.loads(ev.by_unit.to_json(orient="records", force_ascii=False)),
        }

    @app.post("/sites/test", tags=["siting"])
    def site_test(caller: Who, body: Annotated[SiteTest, Body()]) -> JSONResponse:
        """What each site would newly cover (planners)."""
        need(caller, "planner", "site tests")
        return JSONResponse(evaluate(caller, body, body.mode))

    @app.post("/jobs/optimise", tags=["jobs"], status_code=202)
    def optimise_job(caller: Who, body: Annotated[Optimise, Body()]) -> JSONResponse:
        """Start an optimisation (planners): returns the job id to poll."""
        need(caller, "planner", "optimisation")
        if body.within and not caller.covers(body.within):
            raise problem(403, "within lies outside your jurisdiction")

        def work(say: Any) -> dict[str, Any]:
            say("coverage of the type (distances)")
            p = planner(body.type, body.mode)
            say("candidate sites")
            cands = (
                frame(body.candidates, "C")
                if body.candidates
                else siting.generate(p, body.generate)
            )
            say(f"solving {body.objective.upper()} over {len(cands)} candidates")
            sol = siting.optimise(p, cands, body.k, body.objective, time_limit=body.time_limit,
                                  within=body.within or caller.scope)  # fmt: skip
            chosen = cands[cands["id"].isin(sol.chosen)]
            return {**sol.as_dict(), "sites": [
                {"id": i, "lon": g.x, "lat": g.y} for i, g in zip(chosen["id"], chosen.geometry, strict=True)
            ]}  # fmt: skip

        job = jobs.start("optimise", caller, work)
        return JSONResponse({"job": job, "href": f"/jobs/{job}"}, status_code=202)

    @app.post("/jobs/regrid", tags=["jobs"], status_code=202)
    def regrid_job(caller: Who) -> JSONResponse:
        """Re-divide grids where this year's households left the band (admins)."""
        need(caller, "admin", "re-division")
        from gis.regrid import update

        def work(say: Any) -> dict[str, Any]:
            say("reading grids, communities, buildings")
            f = layers.get(("grids", "communities", "buildings", "roads", "grid_history"))
            say("re-dividing communities out of band")
            u = update(f["grids"], f["communities"], f["buildings"], f.get("roads"),
                       history=f.get("grid_history"))  # fmt: skip
            hist = f.get("grid_history")
            hist = (
                pd.concat([hist, u.history], ignore_index=True) if hist is not None else u.history
            )
            say("writing grids and grid_history")
            s.write({"grids": u.grids, "grid_history": hist})
            access.audit(s, caller.name, "grids.update", "grids",
                         f"kept {u.kept}, retired {u.retired}, created {u.created}")  # fmt: skip
            layers.refresh(force=True)
            return {"kept": u.kept, "retired": u.retired, "created": u.created,
                    "stable_share": round(u.stable_share, 4)}  # fmt: skip

        job = jobs.start("regrid", caller, work)
        return JSONResponse({"job": job, "href": f"/jobs/{job}"}, status_code=202)

    @app.get("/jobs/{job_id}", tags=["jobs"])
    def job_status(caller: Who, job_id: str) -> JSONResponse:
        """A job's status, progress and (when done) result."""
        job = jobs.get(job_id, caller)
        if job is None:
            raise problem(404, f"no job {job_id!r}")
        return JSONResponse(job)

    # -- scenarios ---------------------------------------------------------------------------
    def scenarios() -> pd.DataFrame:
        f = layers.get(("scenarios",))
        return f.get("scenarios", pd.DataFrame(columns=["id", "name", "author", "created",
                                                        "sites", "results"]))  # fmt: skip

    def tested(caller: Principal, body: ScenarioIn) -> dict[str, str]:
        """A scenario's ``sites`` and ``results`` columns: the sites tested now."""
        results = {"kind": "test", **evaluate(caller, body, None)}
        results.pop("by_unit")
        sites = [{"id": x.id or f"S{i + 1:04d}", "type": body.type, "lon": x.lon, "lat": x.lat,
                  "area_m2": x.area_m2} for i, x in enumerate(body.sites)]  # fmt: skip
        return {"sites": json.dumps(sites, ensure_ascii=False),
                "results": json.dumps(results, ensure_ascii=False)}  # fmt: skip

    @app.get("/scenarios", tags=["scenarios"])
    def list_scenarios(caller: Who) -> JSONResponse:
        """Saved scenarios (planners)."""
        need(caller, "planner", "scenarios")
        df = scenarios()[["id", "name", "author", "created"]]
        return JSONResponse({"scenarios": df.to_dict("records")})

    @app.get("/scenarios/{sid}", tags=["scenarios"])
    def get_scenario(caller: Who, sid: str) -> JSONResponse:
        """One scenario with its sites and results."""
        need(caller, "planner", "scenarios")
        df = scenarios()
        row = df[df["id"] == sid]
        if not len(row):
            raise problem(404, f"no scenario {sid!r}")
        r = row.iloc[0]
        return JSONResponse({"id": r["id"], "name": r["name"], "author": r["author"],
                             "created": r["created"], "sites": json.loads(r["sites"]),
                             "results": json.loads(r["results"] or "null")})  # fmt: skip

    @app.post("/scenarios", tags=["scenarios"], status_code=201)
    def create_scenario(caller: Who, body: Annotated[ScenarioIn, Body()]) -> JSONResponse:
        """Test the sites and save them with the results as a scenario."""
        need(caller, "planner", "scenarios")
        if body.name in set(scenarios()["id"]):
            raise problem(409, f"a scenario named {body.name!r} exists")
        saved = tested(caller, body)
        row = pd.DataFrame({"id": [body.name], "name": [body.name], "author": [caller.name],
                            "created": [pd.Timestamp.now(tz="Asia/Shanghai").isoformat(timespec="seconds")],
                            "sites": [saved["sites"]], "results": [saved["results"]]})  # fmt: skip
        if s.has("scenarios"):
            s.insert("scenarios", row)
        else:
            s.write({"scenarios": row})
        access.audit(s, caller.name, "scenarios.create", body.name, f"{len(body.sites)} sites")
        layers.refresh(force=True)
        return JSONResponse({"id": body.name, "href": f"/scenarios/{body.name}"}, status_code=201)

    @app.put("/scenarios/{sid}", tags=["scenarios"])
    def update_scenario(caller: Who, sid: str, body: Annotated[ScenarioIn, Body()]) -> JSONResponse:
        """Replace a scenario's sites (tested again); the name stays ``sid``."""
        need(caller, "planner", "scenarios")
        if sid not in set(scenarios()["id"]):
            raise problem(404, f"no scenario {sid!r}")
        s.update("scenarios", sid, tested(caller, body))
        access.audit(s, caller.name, "scenarios.update", sid, f"{len(body.sites)} sites")
        layers.refresh(force=True)
        return JSONResponse({"id": sid, "href": f"/scenarios/{sid}"})

    @app.delete("/scenarios/{sid}", tags=["scenarios"])
    def delete_scenario(caller: Who, sid: str) -> JSONResponse:
        """Delete a scenario."""
        need(caller, "planner", "scenarios")
        if sid not in set(scenarios()["id"]):
            raise problem(404, f"no scenario {sid!r}")
        s.delete("scenarios", [sid])
        access.audit(s, caller.name, "scenarios.delete", sid, None)
        layers.refresh(force=True)
        return JSONResponse({"deleted": sid})
