"""Feature edits (OGC API – Features Part 4) of facilities, buildings and workers: create,
replace, update, delete — each one transaction with its audit row and the marks of the
derived results it made stale.

In the transaction: the feature's row is locked (PostGIS ``FOR UPDATE``) from the read
that ``If-Match`` is checked against to the commit, so two editors holding the same tag
cannot both win (the second gets :class:`~gis.errors.StaleTagError`, HTTP 412). The new
row is validated exactly as an import of it would be (:func:`gis.io.check_rows`), and
must lie in the caller's jurisdiction, as the old one must.

A derived result an edit changes the inputs of (coverage and gap areas of a facility
type, grid households, staffing quotas, assignments) is marked in the ``stale`` layer;
:func:`stale` lists the marks, and the workflow that computes that result again clears
them (:func:`gis.workflows.base.clear_stale`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from gis import edits, schema
from gis.access import Principal
from gis.edits import ToCrs84
from gis.errors import AccessError, ConflictError, NotFoundError, StaleTagError, ValidationError
from gis.store import Store, Tx
from gis.store.base import now
from gis.workflows.base import Inputs

Op = Literal["create", "replace", "update", "delete"]
#: properties of a layer an API caller neither sees nor sets (a replace keeps them)
HIDDEN = {"workers": ("home_lon", "home_lat")}


@dataclass
class Edited:
    """What an edit stored: the row as stored (``None`` after a delete), its content tag,
    the derived results it made stale, whether it made a new feature.
    """

    row: dict[str, Any] | None
    tag: str | None
    stale: list[str] = field(default_factory=list)
    created: bool = False


def _spec(name: str) -> schema.Layer:
    if name not in edits.EDITABLE:
        raise NotFoundError(
            "edit", [f"{name} cannot be edited here; editable: {', '.join(edits.EDITABLE)}"]
        )
    return schema.layer(name)


def _community(
    name: str, row: Mapping[str, Any], communities: pd.DataFrame | None, *, new: bool
) -> str | None:
    """The community a row lies in (a facility: where its point is; a new one outside the
    city is an error, a stored one there is in no community).
    """
    if name != "facilities":
        return row.get("community_code")
    if communities is None:
        return None
    try:
        return edits.community_of(row["geometry"], communities)
    except ValidationError:
        if new:
            raise
        return None


def _inside(who: Principal, name: str, row: Mapping[str, Any], code: str | None) -> None:
    if not who.covers(code):
        key = schema.layer(name).key[0]
        raise AccessError(
            f"{name} {row.get(key)!r} lies in community {code}, outside your jurisdiction "
            f"({who.scope})"
        )


def get(store: Store, who: Principal, name: str, fid: str) -> tuple[dict[str, Any], str]:
    """One feature as stored and its content tag (404 outside the caller's jurisdiction
    for a scoped layer, as if absent).
    """
    spec = _spec(name)
    with store.snapshot() as tx:
        found = tx.rows(name, {spec.key[0]: fid})
    if not found or (name != "facilities" and not who.covers(found[0].get("community_code"))):
        raise NotFoundError(name, [f"no feature {fid!r} in {name}"])
    return found[0], edits.content_tag(name, found[0])


def edit(
    store: Store,
    who: Principal,
    name: str,
    op: Op,
    *,
    fid: str | None = None,
    doc: Any = None,
    if_match: set[str] | None = None,
    inputs: Inputs,
    to_crs84: ToCrs84 | None = None,
) -> Edited:
    """Create (``doc`` a GeoJSON Feature), replace (``doc`` the whole new feature), update
    (``doc`` a merge patch: the properties to change, ``null`` to clear one; a geometry
    to move it) or delete feature ``fid`` of layer ``name``.

    ``if_match``: the content tags the caller holds (:func:`gis.edits.content_tag`; ``None``
    only for a create); one must match the stored feature, else :class:`StaleTagError`.
    """
    spec = _spec(name)
    key = spec.key[0]
    if not who.at_least("supervisor"):
        raise AccessError(f"editing {name} needs the supervisor role")
    f = inputs.get(("communities", "facility_types"))
    comms, types = f.get("communities"), set(f["facility_types"]["code"])
    hidden = HIDDEN.get(name, ())
    given: dict[str, Any] | None = None
    if op in ("create", "replace"):
        given = edits.read_feature(name, doc, fid=fid if op == "replace" else None,
                                   to_crs84=to_crs84, hidden=hidden)  # fmt: skip
    elif op == "update":
        given = edits.read_patch(name, doc, to_crs84=to_crs84, hidden=hidden)
    with store.transaction() as tx:
        tx.will_write(name, "audit", "stale")
        old = None
        if op != "create":
            found = tx.rows(name, {key: fid}, for_update=True)
            if not found or (name != "facilities" and not who.covers(found[0]["community_code"])):
                raise NotFoundError(name, [f"no feature {fid!r} in {name}"])
            old = found[0]
            _inside(who, name, old, _community(name, old, comms, new=False))
            if if_match is None or not (
                "*" in if_match or edits.content_tag(name, old) in if_match
            ):
                raise StaleTagError(
                    f"{name} {fid!r} changed since the tag you hold (If-Match); read it again"
                )
        new = None
        if given is not None:
            base = {k: old[k] for k in (*edits.KEPT, *hidden)} if old is not None else {}
            if op == "update":
                base = dict(old)  # type: ignore[arg-type]
            merged = {**base, **given}
            if op == "create" and merged.get(key) in (None, ""):
                merged[key] = f"{name[0].upper()}{uuid.uuid4().hex[:11]}"
            new = edits.checked(name, merged, communities=comms, facility_types=types)
            if op == "update" and new[key] != fid:
                raise ConflictError(f"the id of {name} {fid!r} cannot change; create a new one")
            _inside(who, name, new, _community(name, new, comms, new=True))
        target = str(new[key] if new is not None else fid)
        _write(tx, name, op, target, old, new)
        held = tx.names()
        stale = edits.stale_results(name, old, new, held=held, coverage_types=_coverage_types(tx))
        if stale:
            tx.add("stale", [{"id": uuid.uuid4().hex, "result": r, "cause": f"{op} {name} {target}",
                              "at": now(), "who": who.name} for r in stale])  # fmt: skip
        tx.audit(who.name, f"{name}.{op}", f"{name}/{target}", _detail(old, new))
        after = tx.rows(name, {key: target}) if op != "delete" else []
    row = after[0] if after else None
    tag = edits.content_tag(name, row) if row is not None else None
    return Edited(row, tag, stale, created=op == "create")


def _write(
    tx: Tx, name: str, op: Op, target: str, old: dict[str, Any] | None, new: dict[str, Any] | None
) -> None:
    key = schema.layer(name).key[0]
    if op == "create":
        assert new is not None
        if tx.rows(name, {key: target}, columns=[key]):
            raise ConflictError(f"{name} {target!r} exists already; PUT replaces it")
        tx.add(name, [new])
    elif op == "delete":
        _may_delete(tx, name, target)
        tx.delete(name, [target])
    else:
        assert new is not None and old is not None
        changes = {k: v for k, v in new.items() if k != key and not _same(old.get(k), v)}
        if changes:
            tx.update(name, target, changes)


def _may_delete(tx: Tx, name: str, fid: str) -> None:
    """A facility a saved scenario names, or a worker responsible for grids, stays."""
    if name == "facilities" and tx.has("scenarios"):
        naming = [r["id"] for r in tx.rows("scenarios", {}, columns=["sites", "results"])
                  if _names(json.loads(r["sites"] or "[]"), fid)
                  or _names(json.loads(r["results"] or "null"), fid)]  # fmt: skip
        if naming:
            raise ConflictError(
                f"facility {fid!r} is named by the saved scenario(s) {', '.join(naming)}; "
                "delete or change those first"
            )
    if name == "workers" and tx.has("assignments"):
        grids = [r["grid_code"] for r in tx.rows("assignments", {"worker_id": fid})]
        if grids:
            raise ConflictError(
                f"worker {fid!r} is responsible for grid(s) {', '.join(grids[:5])}"
                f"{' …' if len(grids) > 5 else ''}; make another worker responsible first"
            )


def _names(doc: Any, fid: str) -> bool:
    """Whether a decoded JSON document holds ``fid`` as an id (a value of an ``id`` key or
    of a list of ids).
    """
    if isinstance(doc, Mapping):
        return any(
            (k in ("id", "facility_id") and str(v) == fid) or _names(v, fid) for k, v in doc.items()
        )
    if isinstance(doc, list):
        return any(_names(v, fid) for v in doc)
    return False


def _coverage_types(tx: Tx) -> set[str]:
    if not tx.has("coverage"):
        return set()
    return {r["type"] for r in tx.rows("coverage", {"level": "city"}, columns=["type"])}


def _same(a: Any, b: Any) -> bool:
    if hasattr(a, "equals") and hasattr(b, "equals"):
        return bool(a.equals(b))
    return bool(a == b) if a is not None and b is not None else a is b


def _detail(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> str:
    """What changed, for the audit row: ``column: old → new`` (geometry by its WKT)."""
    cols = [k for k in (new or old or {}) if k != "geometry"]
    if old is None or new is None:
        row = new if new is not None else old
        return json.dumps({k: row.get(k) for k in cols}, ensure_ascii=False, default=str)[:2000]  # type: ignore[union-attr]
    diff = {k: [old.get(k), new.get(k)] for k in cols if not _same(old.get(k), new.get(k))}
    if "geometry" in new and not _same(old.get("geometry"), new.get("geometry")):
        diff["geometry"] = [str(old.get("geometry")), str(new.get("geometry"))]
    return json.dumps(diff, ensure_ascii=False, default=str)[:2000]


def stale(store: Store, who: Principal) -> list[dict[str, Any]]:
    """The derived results edits made stale (for supervisors): each result with the time
    of its first mark, how many edits, the last edit and who made it.
    """
    if not who.at_least("supervisor"):
        raise AccessError("the list of stale results needs the supervisor role")
    with store.snapshot() as tx:
        rows = tx.rows("stale", {}) if tx.has("stale") else []
    out: dict[str, dict[str, Any]] = {}
    for r in sorted(rows, key=lambda r: (r["at"], r["id"])):
        e = out.setdefault(r["result"], {"result": r["result"], "since": r["at"], "edits": 0})
        e.update(edits=e["edits"] + 1, last=r["cause"], at=r["at"], who=r["who"])
    return sorted(out.values(), key=lambda e: e["result"])
