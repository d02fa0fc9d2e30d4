"""Who may read and change what (访问控制): API keys, roles, jurisdictions, the audit log.

Roles are cumulative: ``viewer`` reads aggregated layers only (never a building, a household
count below a grid, or a worker's phone); ``supervisor`` adds workers, buildings and edits of
assignments; ``planner`` adds scenarios and site tests; ``admin`` may do everything. A key
may carry a jurisdiction (``scope``): a district, street or community code; the codes nest, so
"inside" is a prefix test. Keys are random, shown once, and stored only as SHA-256 digests
(a fast hash is right for high-entropy keys; there is nothing to brute-force).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass

import pandas as pd

from gis.errors import ValidationError
from gis.store import Store, Tx, now

ROLES = ("viewer", "supervisor", "planner", "admin")
#: keys of calling systems and workers, beside the chain: a ``dispatcher`` (12345 hotline,
#: a smart-community platform) creates work orders and reads those it created; a ``worker``
#: key (its name is the worker's id) sees and moves only the orders assigned to it. Both
#: read what a viewer reads.
SYSTEM_ROLES = ("dispatcher", "worker")


@dataclass(frozen=True)
class Principal:
    """The caller: a named key with a role and an optional jurisdiction."""

    name: str
    role: str
    scope: str | None = None

    def at_least(self, role: str) -> bool:
        """Whether the caller's role includes ``role``'s rights."""
        if self.role in SYSTEM_ROLES:
            return role == "viewer"
        return ROLES.index(self.role) >= ROLES.index(role)

    @property
    def worker_id(self) -> str | None:
        """The worker a ``worker`` key belongs to."""
        return self.name if self.role == "worker" else None

    def covers(self, code: str | None) -> bool:
        """Whether ``code`` (district … grid) lies inside the caller's jurisdiction."""
        return self.scope is None or (code is not None and str(code).startswith(self.scope))


ANONYMOUS = Principal("anonymous", "viewer")


def digest(key: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(
    store: Store,
    role: str,
    scope: str | None = None,
    name: str | None = None,
    *,
    who: str = "cli",
    worker: str | None = None,
) -> tuple[str, pd.Series]:
    """A new key for ``role`` (inside ``scope``): returns the key (shown once) and its row.

    A ``worker`` key names its worker (``worker``: an id of the ``workers`` layer); it is
    scoped to the worker's community.
    """
    problems = []
    if role not in ROLES + SYSTEM_ROLES:
        problems.append(f"role {role!r} is not one of {', '.join(ROLES + SYSTEM_ROLES)}")
    if role == "worker":
        if not worker:
            problems.append("a worker key needs --worker <worker id>")
        else:
            known = store.read("workers", where={"id": worker}) if store.has("workers") else None
            if known is None or not len(known):
                problems.append(f"no worker {worker!r} in the store")
            else:
                name, scope = worker, str(known["community_code"].iloc[0])
    if scope is not None and not (scope.isdigit() and len(scope) in (6, 9, 12)):
        problems.append(f"scope {scope!r} is not a district, street or community code")
    if problems:
        raise ValidationError("keys create", problems)
    key = "gg_" + secrets.token_urlsafe(32)
    row = pd.DataFrame(
        {
            "id": [f"k{uuid.uuid4().hex[:10]}"],
            "name": [name or f"{role}{'@' + scope if scope else ''}"],
            "role": [role],
            "scope": [scope],
            "hash": [digest(key)],
            "created": [now()],
            "revoked": [None],
        }
    )
    with store.transaction() as tx:
        if scope is not None and not _code_exists(tx, scope):
            raise ValidationError(
                "keys create",
                [f"scope {scope!r}: no such district, street or community in the store"],
            )
        tx.insert("api_keys", row)
        tx.audit(who, "keys.create", row["id"].iloc[0], f"role={role} scope={scope}")
    return key, row.iloc[0]


def _code_exists(tx: Tx, code: str) -> bool:
    layer = {6: "districts", 9: "streets", 12: "communities"}[len(code)]
    return tx.has(layer) and len(tx.read(layer, where={"code": code})) > 0


def keys(store: Store) -> pd.DataFrame:
    """Every key, without its digest."""
    if not store.has("api_keys"):
        return pd.DataFrame(columns=["id", "name", "role", "scope", "created", "revoked"])
    return store.read("api_keys").drop(columns="hash")


def revoke(store: Store, key_id: str, *, who: str = "cli") -> None:
    """Revoke a key by id (it stays listed, marked revoked)."""
    with store.transaction() as tx:
        known = tx.read("api_keys", where={"id": key_id}) if tx.has("api_keys") else ()
        if not len(known):
            raise ValidationError("keys revoke", [f"no key {key_id!r}"])
        tx.update("api_keys", key_id, {"revoked": now()})
        tx.audit(who, "keys.revoke", key_id, None)


def principals(store: Store) -> dict[str, Principal]:
    """Digest → principal for every key that is not revoked."""
    if not store.has("api_keys"):
        return {}
    k = store.read("api_keys")
    k = k[k["revoked"].isna()]
    return {
        h: Principal(n, r, s if isinstance(s, str) and s else None)
        for h, n, r, s in zip(k["hash"], k["name"], k["role"], k["scope"], strict=True)
    }
