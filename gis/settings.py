"""The city's rules, kept in the store (layer ``settings``) so every door agrees.

A city sets its grid band per community kind, its staffing ratio, minimum, approved total
(核定总量) and window staff, its coverage mode and its name. The commands that take a rule
(``grids build --target``, ``staff quota --cap`` …) store it; every computation, map and
endpoint reads the stored rules, so the command line, the API and the maps always show the
same quotas and bands. A store without a ``settings`` layer has the shipped defaults
(Zaozhuang's policy).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from gis.errors import ValidationError
from gis.rules import Band, GridRules
from gis.staffing import StaffRules
from gis.store import Tx, now

MODES = ("line", "network")


@dataclass(frozen=True)
class CityRules:
    """Every rule a computation reads (defaults: the Zaozhuang policy)."""

    grids: GridRules = field(default_factory=GridRules)
    staff: StaffRules = field(default_factory=StaffRules)
    coverage_mode: str | None = None  # None: walking on the roads when there are roads
    city_name: str | None = None

    def name(self, lang: str = "zh") -> str:
        """The city's name for titles (a neutral word when the store has none)."""
        return self.city_name or ("全市" if lang == "zh" else "City")


def _band(d: dict[str, Any]) -> Band:
    return Band(min=int(d["min"]), target=int(d["target"]), max=int(d["max"]))


def _encode(rules: CityRules) -> dict[str, str]:
    staff = dataclasses.asdict(rules.staff)
    staff["policy_range"] = list(staff["policy_range"])
    values: dict[str, Any] = {
        "grids.urban": dataclasses.asdict(rules.grids.urban),
        "grids.rural": dataclasses.asdict(rules.grids.rural),
        "staff": staff,
        "coverage.mode": rules.coverage_mode,
        "city.name": rules.city_name,
    }
    return {k: json.dumps(v, ensure_ascii=False, sort_keys=True) for k, v in values.items()}


def decode(table: pd.DataFrame | None) -> CityRules:
    """The rules of a ``settings`` layer (missing keys keep their defaults)."""
    base = CityRules()
    if table is None or not len(table):
        return base
    v = {k: json.loads(x) for k, x in zip(table["key"], table["value"], strict=True)}
    try:
        grids = GridRules(
            urban=_band(v["grids.urban"]) if "grids.urban" in v else base.grids.urban,
            rural=_band(v["grids.rural"]) if "grids.rural" in v else base.grids.rural,
        )
        staff = base.staff
        if "staff" in v:
            s = dict(v["staff"])
            s["policy_range"] = tuple(s.get("policy_range", staff.policy_range))
            known = {f.name for f in dataclasses.fields(StaffRules)}
            staff = StaffRules(**{k: x for k, x in s.items() if k in known})
    except (KeyError, TypeError, ValueError) as exc:
        raise ValidationError("stored settings", [f"cannot read the city's rules: {exc}"]) from None
    return CityRules(
        grids=grids,
        staff=staff,
        coverage_mode=v.get("coverage.mode", base.coverage_mode),
        city_name=v.get("city.name", base.city_name),
    )


def load(tx: Tx) -> CityRules:
    """The rules the store holds (defaults where it holds none)."""
    return decode(tx.read("settings") if tx.has("settings") else None)


def store(tx: Tx, rules: CityRules, who: str) -> list[str]:
    """Keep ``rules`` in the store; the keys that changed are audited (and returned).

    The transaction should hold the ``settings`` layer's lock.
    """
    if rules.coverage_mode not in (None, *MODES):
        raise ValidationError(
            "settings", [f"coverage mode {rules.coverage_mode!r} is not line or network"]
        )
    old = tx.read("settings") if tx.has("settings") else None
    before = dict(zip(old["key"], old["value"], strict=True)) if old is not None else {}
    after = _encode(rules)
    changed = sorted(k for k, v in after.items() if before.get(k) != v)
    if not changed:
        return []
    stamp = now()
    rows = pd.DataFrame(
        {
            "key": list(after),
            "value": list(after.values()),
            "updated": [stamp if k in changed else _updated(old, k, stamp) for k in after],
            "who": [who if k in changed else _by(old, k, who) for k in after],
        }
    )
    tx.write({"settings": rows})
    tx.audit(who, "settings.update", "settings", "; ".join(f"{k}={after[k]}" for k in changed))
    return changed


def frame(rules: CityRules, who: str) -> pd.DataFrame:
    """A fresh ``settings`` layer holding ``rules``."""
    values = _encode(rules)
    stamp = now()
    return pd.DataFrame({"key": list(values), "value": list(values.values()),
                         "updated": stamp, "who": who})  # fmt: skip


def _updated(old: pd.DataFrame | None, key: str, default: str) -> str:
    if old is None or key not in set(old["key"]):
        return default
    return str(old.loc[old["key"] == key, "updated"].iloc[0])


def _by(old: pd.DataFrame | None, key: str, default: str) -> str:
    if old is None or key not in set(old["key"]):
        return default
    return str(old.loc[old["key"] == key, "who"].iloc[0])


def with_staff(rules: CityRules, **given: Any) -> CityRules:
    """``rules`` with the staffing rules given (``None`` values leave a rule as it is)."""
    changes = {k: v for k, v in given.items() if v is not None}
    if "cap" in changes and changes["cap"] == 0:
        changes["cap"] = None  # 0 on the command line: no cap
    return dataclasses.replace(rules, staff=dataclasses.replace(rules.staff, **changes))


BandChange = Band | Mapping[str, int | None] | None


def _changed_band(band: Band, change: BandChange) -> Band:
    if change is None:
        return band
    if isinstance(change, Band):
        return change
    return dataclasses.replace(band, **{k: int(v) for k, v in change.items() if v is not None})


def with_grids(rules: CityRules, urban: BandChange = None, rural: BandChange = None) -> CityRules:
    """``rules`` with the grid bands changed: a whole :class:`Band`, or some of ``min``,
    ``target``, ``max``. Villages follow a changed urban band unless they have one of their
    own (given now, or stored different from the urban one).
    """
    new_urban = _changed_band(rules.grids.urban, urban)
    follows = rural is None and rules.grids.rural == rules.grids.urban
    new_rural = new_urban if follows else _changed_band(rules.grids.rural, rural)
    return dataclasses.replace(rules, grids=GridRules(urban=new_urban, rural=new_rural))
