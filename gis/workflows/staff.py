"""Staffing workflows: quotas under the city's rules, workers into grids, edits, payroll."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from gis import io as gio
from gis import schema, settings
from gis.access import Principal
from gis.assign import Assignment, assign
from gis.errors import InputFileError, LayerNotFoundError, NotFoundError, ValidationError
from gis.staffing import GradeRules, StaffRules, payroll, quotas, salary_table
from gis.store import Store, Tx
from gis.workflows.base import Files, clear_stale, read

QUOTA_WRITES = ("quotas", "settings")


def quota_table(
    communities: pd.DataFrame, buildings: pd.DataFrame, rules: StaffRules
) -> pd.DataFrame:
    """The ``quotas`` layer for these communities and buildings under ``rules``."""
    hh = buildings.groupby("community_code")["households"].sum()
    return schema.conform("quotas", quotas(communities, hh, rules))


def with_roster(q: pd.DataFrame, workers: pd.DataFrame | None) -> pd.DataFrame:
    """Quotas with the roster (在岗) and the gap (缺编, quota − roster) per community."""
    have = workers.groupby("community_code").size() if workers is not None else pd.Series(dtype=int)
    out = q.copy()
    out["roster"] = out["code"].map(have).fillna(0).astype(int)
    out["gap"] = out["quota"] - out["roster"]
    return out


def refresh_quotas(tx: Tx, rules: StaffRules) -> pd.DataFrame:
    """Compute the quotas from the store's households and keep them (layer ``quotas``)."""
    f = read(tx, ("communities", "buildings"))
    q = quota_table(f["communities"], f["buildings"], rules)
    tx.write({"quotas": q})
    clear_stale(tx, ["quotas"])
    return q


@dataclass
class QuotaResult:
    """Quotas per community (with roster and gap) and the rules they follow."""

    table: pd.DataFrame
    rules: StaffRules
    roster_known: bool = True

    def totals(self) -> dict[str, Any]:
        """City totals: urban rule quotas and approved quotas, rural quotas."""
        q = self.table
        urban = q["kind"] == "urban"
        return {
            "cap": self.rules.cap,
            "total": int(q.loc[urban, "quota"].sum()),
            "rule_total": int(q.loc[urban, "rule_quota"].sum()),
            "rural_total": int(q.loc[~urban, "quota"].sum()),
        }


def set_quotas(store: Store, actor: Principal, **rules: Any) -> QuotaResult:
    """Quota per community under the stored rules, with the rules given here stored first
    (``ratio``, ``urban_min``, ``cap`` — 0 for none —, ``window``); keeps layer ``quotas``.
    """
    with store.transaction(lock=QUOTA_WRITES) as tx:
        city = settings.with_staff(settings.load(tx), **rules)
        settings.store(tx, city, actor.name)
        q = refresh_quotas(tx, city.staff)
        tx.audit(
            actor.name,
            "quotas.update",
            "quotas",
            f"cap={city.staff.cap} total={int(q['quota'].sum())}",
        )
        workers = tx.read_optional("workers")
    return QuotaResult(with_roster(q, workers), city.staff)


def quotas_from_files(files: Files, **rules: Any) -> QuotaResult:
    """File mode: quotas for the communities and buildings of files (default rules)."""
    layers = gio.load(files)
    city = settings.with_staff(settings.CityRules(), **rules)
    q = quota_table(layers["communities"], layers["buildings"], city.staff)
    return QuotaResult(with_roster(q, None), city.staff, roster_known=False)


def assign_workers(store: Store, actor: Principal, **rules: Any) -> tuple[Assignment, StaffRules]:
    """One responsible worker per grid (connected grid sets, loads balanced); earlier
    assignments are kept where they still work. Writes ``workers`` (roles),
    ``assignments`` and the quotas it used.
    """
    with store.transaction(lock=("assignments", "workers", *QUOTA_WRITES)) as tx:
        city = settings.with_staff(settings.load(tx), **rules)
        settings.store(tx, city, actor.name)
        if not tx.has("grids"):
            raise InputFileError(f"{store.url} has no grids yet (run `gridgis grids build`)")
        q = refresh_quotas(tx, city.staff)
        f = read(tx, ("grids",), ("workers", "assignments"))
        # without a roster every grid still gets a post: the quota's vacant posts, named
        a = assign(f["grids"], q, f.get("workers"), f.get("assignments"), rules=city.staff)
        tx.write(
            {"workers": a.workers, "assignments": a.assignments}
            if f.get("workers") is not None
            else {"assignments": a.assignments}
        )
        clear_stale(tx, ["assignments"])
        tx.audit(actor.name, "assignments.assign", "assignments",
                 f"{len(a.assignments)} grids, {a.moved} workers moved")  # fmt: skip
    return a, city.staff


def edit_assignment(
    store: Store, actor: Principal, grid_code: str, worker_id: str, *, wait: float | None = None
) -> str:
    """Make ``worker_id`` responsible for ``grid_code``; returns the worker it replaces.

    A grid outside the actor's jurisdiction is as good as absent (404). The change and
    its audit row commit together, after any assignment run holding the layer.
    """
    if not grid_code.isdigit() or not actor.covers(grid_code):
        raise NotFoundError("assignments", [f"no grid {grid_code!r}"])
    with store.transaction(lock=("assignments",), wait=wait) as tx:
        if not tx.has("assignments"):
            raise NotFoundError("assignments", ["the store has no assignments"])
        found = tx.read("assignments", where={"grid_code": grid_code})
        if not len(found):
            raise NotFoundError("assignments", [f"no grid {grid_code!r}"])
        w = tx.read("workers", where={"id": worker_id}) if tx.has("workers") else None
        if w is None or not len(w):
            raise ValidationError("assignment", [f"no worker {worker_id!r}"])
        if not grid_code.startswith(str(w["community_code"].iloc[0])):
            raise ValidationError("assignment", [f"worker {worker_id} works in another community"])
        before = str(found["worker_id"].iloc[0])
        tx.update("assignments", grid_code, {"worker_id": worker_id})
        tx.audit(actor.name, "assignments.update", grid_code, f"{before} -> {worker_id}")
    return before


def run_payroll(
    store: Store,
    actor: Principal,
    *,
    salary: str | os.PathLike[str] | None = None,
    on: date | None = None,
    **rules: Any,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """三岗十八级 grades and monthly pay of the roster (kept in ``workers``), and the cost of
    the roster and of the full quota.
    """
    with store.transaction(lock=("workers", *QUOTA_WRITES)) as tx:
        if not tx.has("workers"):
            raise InputFileError(
                f"{store.url} has no workers; import a roster with `gridgis import --workers F`"
            )
        city = settings.with_staff(settings.load(tx), **rules)
        settings.store(tx, city, actor.name)
        q = refresh_quotas(tx, city.staff)
        workers, totals = payroll(
            tx.read("workers"), q[q["kind"] == "urban"], grades=GradeRules(),
            salaries=salary_table(os.fspath(salary) if salary is not None else None), on=on or date.today(),
        )  # fmt: skip
        tx.write({"workers": workers[schema.layer("workers").columns]})
        tx.audit(actor.name, "workers.payroll", "workers", f"{len(workers)} workers graded")
    return workers, totals


def stored_quotas(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The stored quotas with roster and gap (one clear error when none are stored)."""
    if "quotas" not in frames:
        raise LayerNotFoundError(
            "the store holds no quotas yet; compute them with `gridgis staff quota` (or staff assign)"
        )
    return with_roster(frames["quotas"], frames.get("workers"))
