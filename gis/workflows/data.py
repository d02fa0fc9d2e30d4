"""Data workflows: import files into a store, build the demo city, summarise a city."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from gis import io as gio
from gis import schema, settings
from gis.access import Principal
from gis.assign import Assignment, assign
from gis.coverage import Coverage, compute
from gis.errors import InputFileError, ValidationError
from gis.partition import divide
from gis.reference import facility_types
from gis.staffing import payroll
from gis.store import Store, Tx
from gis.synth import build_city
from gis.synth import orders as synth_orders
from gis.workflows import sites
from gis.workflows.base import Files, Say, Tick, quiet
from gis.workflows.staff import quota_table


def import_files(
    store: Store,
    actor: Principal,
    files: Files,
    *,
    crs: str | Mapping[str, str] = "wgs84",
    encoding: str | None = None,
    replace_with_empty: bool = False,
    repair: bool = False,
    tolerance_m: float = gio.TOLERANCE_M,
    say: Say = quiet,
) -> Imported:
    """Validate the files together, then write them in one transaction with the audit row
    (and the quotas again, when households or communities changed). Any problem — a bad
    value, a building outside the community it names, a file with no rows, an invalid
    polygon not accepted for repair, rows of another layer the import would orphan — is
    one error listing every problem with its row, and nothing is written.
    """
    if not files:
        raise InputFileError(
            "give at least one of communities, buildings, facilities, workers, roads"
        )
    gio.systems_of(crs, files)
    lock = set(files) | {"facility_types", "quotas"}
    if "communities" in files:
        lock |= {"streets", "districts"}
    if "buildings" in files:
        lock |= {"footprints"}
    repairs: list[str] = []
    with store.transaction(lock=lock) as tx:
        say("reading and validating")
        held = tx.names()
        existing = (
            tx.read("communities") if "communities" not in files and "communities" in held else None
        )
        types = tx.read("facility_types") if "facility_types" in held else facility_types()
        frames = gio.load(files, crs=crs, encoding=encoding, communities=existing,
                          facility_types=set(types["code"]), allow_empty=replace_with_empty,
                          repair=repair, repairs=repairs, tolerance_m=tolerance_m)  # fmt: skip
        if "communities" in frames:
            _no_orphans(tx, frames)
        if "buildings" in frames and "footprints" not in frames and "footprints" in held:
            frames["footprints"] = schema.empty("footprints")  # the old ones no longer fit
        if "facility_types" not in held:
            frames["facility_types"] = types
        if "quotas" in held and {"communities", "buildings"} & set(files):
            comms = frames.get("communities", existing)
            blds = frames["buildings"] if "buildings" in frames else tx.read("buildings")
            frames["quotas"] = quota_table(comms, blds, settings.load(tx).staff)
        say(f"writing to {store.url}")
        tx.write(frames)
        counts = {k: len(v) for k, v in frames.items()}
        detail = ", ".join(f"{k} {v}" for k, v in counts.items()) + (
            f"; {len(repairs)} repaired" if repairs else ""
        )
        tx.audit(actor.name, "import", ",".join(sorted(files)), detail)
    return Imported(counts, repairs)


@dataclass
class Imported:
    """What an import wrote: rows per layer, and the geometry repairs it accepted."""

    counts: dict[str, int]
    repairs: list[str]


#: the layers whose rows name a community (what a new communities layer must still hold)
REFERS = (
    ("buildings", "community_code"),
    ("workers", "community_code"),
    ("grids", "community_code"),
)


def _no_orphans(tx: Tx, frames: dict[str, pd.DataFrame]) -> None:
    """New communities must still hold every community the store's other layers name."""
    codes = set(frames["communities"]["code"])
    problems = []
    for layer, col in REFERS:
        if layer in frames or not tx.has(layer):
            continue
        named = tx.read(layer, columns=[col])[col]
        lost = named[~named.isin(codes)]
        if len(lost):
            gone = sorted(set(lost))
            problems.append(
                f"{len(lost):,} {layer} name {len(gone):,} communities this import removes "
                f"({', '.join(gone[:8])}{', …' if len(gone) > 8 else ''}); import the {layer} "
                "with them, or keep those communities"
            )
    if problems:
        raise ValidationError("import", problems)


def city_summary(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per district: townships, communities (urban/rural), households, residents, buildings."""
    d = frames["districts"][["code", "name"]]
    s = frames["streets"].groupby("district_code").size()
    c = frames["communities"]
    b = frames["buildings"].merge(
        c[["code", "district_code"]], left_on="community_code", right_on="code"
    )
    w = frames.get("workers")
    g = frames.get("grids")
    rows = []
    for code, name in d.itertuples(index=False):
        cc = c[c["district_code"] == code]
        bb = b[b["district_code"] == code]
        rows.append(
            {
                "区县代码": code, "区县": name, "街道/乡镇": int(s.get(code, 0)),
                "城市社区": int((cc["kind"] == "urban").sum()),
                "行政村": int((cc["kind"] == "rural").sum()),
                "楼栋/院落": len(bb), "户数": int(bb["households"].sum()),
                "人口": int(bb["residents"].sum()),
                "网格": int(g["community_code"].str[:6].eq(code).sum()) if g is not None else 0,
                "社区工作者": int(w["community_code"].str[:6].eq(code).sum()) if w is not None else 0,
            }
        )  # fmt: skip
    out = pd.DataFrame(rows)
    total = {k: (int(out[k].sum()) if k not in ("区县代码", "区县") else "") for k in out.columns}
    total["区县"] = "合计"
    return pd.concat([out, pd.DataFrame([total])], ignore_index=True)


@dataclass
class Demo:
    """The demo city as built and stored: its layers, coverage, quotas, assignment."""

    frames: dict[str, pd.DataFrame]
    coverage: Coverage
    quota: pd.DataFrame
    staffed: Assignment
    rules: settings.CityRules
    scenario: str
    street: str  # the street the demo maps show in detail

    def staffing(self) -> dict[str, Any]:
        """The staffing figures the demo prints."""
        urban = self.quota["kind"] == "urban"
        return {
            "urban_quota_total": int(self.quota.loc[urban, "quota"].sum()),
            "urban_rule_total": int(self.quota.loc[urban, "rule_quota"].sum()),
            "cap": self.rules.staff.cap,
            "grid_workers_in_band_where_possible": round(
                self.staffed.share_in_band_where_possible, 4
            ),
        }


DEMO_SCENARIO = "示例-日间照料"


def demo(store: Store, *, seed: int = 20201101, say: Say = quiet, tick: Tick | None = None) -> Demo:
    """Build the default city (Zaozhuang) with grids, staffing, coverage and a sample siting
    scenario, and write it all in one transaction.
    """
    actor = Principal("gridgis demo", "admin")
    frames = build_city(seed=seed, progress=say)
    rules = settings.CityRules(city_name="枣庄市")
    say("grids: dividing every community")
    frames["grids"] = divide(frames["communities"], frames["buildings"], frames["roads"],
                             rules=rules.grids, progress=tick).grids  # fmt: skip
    say("staffing: quotas, workers into grids, grades")
    quota = quota_table(frames["communities"], frames["buildings"], rules.staff)
    staffed = assign(frames["grids"], quota, frames["workers"], rules=rules.staff)
    frames["workers"], _ = payroll(staffed.workers, on=date.today())
    frames["workers"] = frames["workers"][schema.layer("workers").columns]
    frames["assignments"], frames["quotas"] = staffed.assignments, quota
    say("coverage of every facility type (walking distance on the roads)")
    cov = compute(frames["buildings"], frames["facilities"], frames["facility_types"],
                  frames["communities"], grids=frames["grids"], roads=frames["roads"])  # fmt: skip
    frames["coverage"], frames["gaps"] = cov.table, cov.gaps
    say("a sample siting scenario: 3 new day-care centres in the busiest street")
    street, scenario = _demo_scenario(frames, cov, actor)
    frames["scenarios"] = scenario
    frames["settings"] = settings.frame(rules, actor.name)
    say("work orders: a month of synthetic 12345 and patrol orders through the loop")
    frames.update(synth_orders.month_of_orders(frames, synth_orders.last_month(), seed=seed))
    say(f"writing {sum(len(f) for f in frames.values()):,} rows to {store.url}")
    with store.transaction(lock=frames) as tx:
        tx.write(frames)
        tx.audit(actor.name, "demo.build", store.url, f"seed {seed}")
    return Demo(frames, cov, quota, staffed, rules, DEMO_SCENARIO, street)


def _demo_scenario(
    frames: dict[str, pd.DataFrame], cov: Coverage, actor: Principal
) -> tuple[str, pd.DataFrame]:
    comms = frames["communities"]
    hh = frames["buildings"].groupby("community_code")["households"].sum()
    urban = comms[comms["kind"] == "urban"]
    street = str(urban.assign(hh=urban["code"].map(hh)).groupby("street_code")["hh"].sum().idxmax())

    p = sites.siting.Planner.from_coverage(cov, frames["buildings"], frames["facilities"],
                                           frames["facility_types"], "elderly_day_care")  # fmt: skip
    opt = sites.optimise_sites(p, None, 3, "mclp", generate=200, within=street)
    comms = sites.communities_of(opt.sites, frames["communities"])
    row = sites.scenario_row(DEMO_SCENARIO, actor.name, opt.sites, opt.results, comms)
    return street, row


__all__ = ["Demo", "city_summary", "demo", "import_files"]
