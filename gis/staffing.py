"""Staffing (社区工作者配备): quotas per community under the city's approved total, posts
and the 三岗十八级 grades, payroll.

Policy defaults (枣庄市民政局 2021): one worker per 300–400 households (rule ratio 350), at
least 5 full-time workers in every urban community, an approved city total (核定总量) of
1,540 for the urban communities. When the rule quotas add up to more than the cap, the cap
is apportioned in proportion to households by the largest-remainder (Hamilton) method
without breaking any community's minimum.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from gis.errors import ValidationError
from gis.reference import DATA_DIR, load_toml


@dataclass(frozen=True)
class StaffRules:
    """Staffing rules; every number is the city's to set.

    Parameters
    ----------
    ratio
        Households per worker used for the rule quota.
    policy_range
        Households per worker the policy allows (reported as a quota range).
    urban_min
        Fewest workers in an urban community.
    rural_ratio, rural_min
        The same for villages (default: same ratio, no minimum).
    cap
        Approved total for the urban communities (``None``: no cap).
    window
        Workers kept at each community's one-stop service window (一窗受理).
    window_per_households
        When set, one window worker per this many households (at least ``window``).
    """

    ratio: float = 350
    policy_range: tuple[float, float] = (300, 400)
    urban_min: int = 5
    rural_ratio: float = 350
    rural_min: int = 0
    cap: int | None = 1540
    window: int = 1
    window_per_households: float | None = None

    def __post_init__(self) -> None:
        bad = [
            f"{name} must be positive, got {value}"
            for name, value in (("ratio", self.ratio), ("rural_ratio", self.rural_ratio))
            if value <= 0
        ]
        if self.cap is not None and self.cap < 0:
            bad.append(f"cap must be ≥ 0, got {self.cap}")
        if self.urban_min < 0 or self.rural_min < 0 or self.window < 0:
            bad.append("minimums and window staff must be ≥ 0")
        if bad:
            raise ValidationError("staffing rules", bad)

    def rule_quota(self, households: np.ndarray, urban: np.ndarray) -> np.ndarray:
        """max(minimum, ⌈H / ratio⌉) per community (urban and rural rules)."""
        h = np.asarray(households, dtype=float)
        u = np.asarray(urban, dtype=bool)
        by_ratio = np.where(u, np.ceil(h / self.ratio), np.ceil(h / self.rural_ratio))
        minimum = np.where(u, self.urban_min, self.rural_min)
        return np.maximum(minimum, by_ratio).astype(np.int64)

    def windows(self, households: np.ndarray) -> np.ndarray:
        """Window staff per community."""
        h = np.asarray(households, dtype=float)
        if self.window_per_households:
            return np.maximum(self.window, np.ceil(h / self.window_per_households)).astype(np.int64)
        return np.full(len(h), self.window, dtype=np.int64)


def apportion(
    households: np.ndarray, minimum: np.ndarray, cap: int, codes: np.ndarray | None = None
) -> np.ndarray:
    """Apportion ``cap`` seats in proportion to households, each at least its minimum.

    Largest-remainder (Hamilton) method with floors: communities whose proportional share
    falls under their minimum get exactly the minimum and leave the pool; the rest of the
    cap is re-apportioned among the others, repeated until stable. Remaining seats go to
    the largest remainders; ties to more households, then the lower code.

    Examples
    --------
    >>> apportion(np.array([1000, 2000, 7000]), np.array([5, 5, 5]), 20).tolist()
    [5, 5, 10]
    """
    # exact integer arithmetic: with floats two equal remainders (a tie the rule settles
    # by households) can differ in the last bit and the seat goes the wrong way
    h = np.rint(np.asarray(households, dtype=float)).astype(np.int64)
    mins = np.asarray(minimum, dtype=np.int64)
    n = len(h)
    codes = np.asarray(codes if codes is not None else np.arange(n).astype(str))
    need = int(mins.sum())
    if cap < need:
        raise ValidationError(
            "staffing cap",
            [f"the cap {cap:,} cannot cover the minimums ({need:,} workers): {need - cap:,} short"],
        )
    out = np.zeros(n, dtype=np.int64)
    pool = np.ones(n, dtype=bool)
    seats = cap
    while True:
        total = int(h[pool].sum())
        num = np.where(pool, seats * h, 0)  # share = num / total
        under = pool & ((num < mins * total) if total > 0 else True)
        if not under.any():
            break
        out[under] = mins[under]
        seats -= int(mins[under].sum())
        pool &= ~under
    idx = np.flatnonzero(pool)
    if len(idx):
        floor, rem = np.divmod(num[idx], total)
        left = seats - int(floor.sum())
        # largest remainder first; ties: more households, then the lower code
        order = sorted(range(len(idx)), key=lambda i: (-rem[i], -h[idx[i]], str(codes[idx[i]])))
        floor[order[:left]] += 1
        out[idx] = floor
    return out


def quotas(
    communities: pd.DataFrame, households: pd.Series, rules: StaffRules | None = None
) -> pd.DataFrame:
    """Quota per community under the rules and the city cap.

    Parameters
    ----------
    communities
        ``code``, ``name``, ``kind`` (urban/rural).
    households
        Households per community code.
    rules
        Staffing rules (defaults: Zaozhuang).

    Returns
    -------
    DataFrame
        ``code, name, kind, households, policy_min, policy_max, rule_quota, quota, window,
        grid_workers``; the cap applies to urban communities only.
    """
    rules = rules or StaffRules()
    c = communities[["code", "name", "kind"]].sort_values("code").reset_index(drop=True)
    h = c["code"].map(households).fillna(0).astype(np.int64).to_numpy()
    urban = (c["kind"] == "urban").to_numpy()
    rule = rules.rule_quota(h, urban)
    quota = rule.copy()
    if rules.cap is not None and urban.any() and rule[urban].sum() > rules.cap:
        mins = np.full(int(urban.sum()), rules.urban_min)
        quota[urban] = apportion(h[urban], mins, rules.cap, c["code"].to_numpy()[urban])
    lo, hi = rules.policy_range
    window = np.minimum(rules.windows(h), quota)
    return c.assign(
        households=h,
        policy_min=np.ceil(h / hi).astype(np.int64),
        policy_max=np.ceil(h / lo).astype(np.int64),
        rule_quota=rule,
        quota=quota,
        window=window,
        grid_workers=quota - window,
    )


# --- 三岗十八级 ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GradeRules:
    """三岗十八级: grade ranges per post, years per grade, years credited per degree."""

    ranges: tuple[tuple[str, int, int], ...] = (("正职", 7, 18), ("副职", 4, 15), ("其他", 1, 12))
    years_per_grade: int = 3
    credit: tuple[tuple[str, int], ...] = (
        ("高中及以下", 0),
        ("大专", 0),
        ("本科", 3),
        ("硕士", 5),
        ("博士", 7),
    )

    def grade(self, post: pd.Series, hired: pd.Series, education: pd.Series, on: date) -> pd.Series:
        """Grade of each worker on date ``on``: the post's lowest grade, one up per
        ``years_per_grade`` years of service (degrees credited), capped at the post's top.
        """
        low = post.map({p: lo for p, lo, _ in self.ranges})
        high = post.map({p: hi for p, _, hi in self.ranges})
        start = pd.to_datetime(hired)
        years = (pd.Timestamp(on) - start).dt.days // 365.2425
        years = years.clip(lower=0) + education.map(dict(self.credit)).fillna(0)
        return (low + years // self.years_per_grade).clip(upper=high).astype("Int64")


def salary_table(path: str | Path | None = None) -> pd.DataFrame:
    """Monthly salary per post and grade (default: the shipped example table)."""
    path = Path(path) if path is not None else DATA_DIR / "salary_grades.toml"
    doc = load_toml(path, "salary table")
    rows = [
        {"post": post, "grade": int(g), "monthly_yuan": float(v)}
        for post, grades in doc.get("monthly_yuan", {}).items()
        for g, v in grades.items()
    ]
    if not rows:
        raise ValidationError(f"salary table {path}", ["no [monthly_yuan.<post>] tables"])
    return pd.DataFrame(rows)


def payroll(
    workers: pd.DataFrame,
    quota: pd.DataFrame | None = None,
    *,
    grades: GradeRules | None = None,
    salaries: pd.DataFrame | None = None,
    on: date | None = None,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """Grades and monthly pay of the roster, and the cost of the roster and the full quota.

    The full quota is costed as the roster plus each vacant post (quota − roster) at the
    lowest grade of 其他 (a new hire).
    """
    grades = grades or GradeRules()
    salaries = salaries if salaries is not None else salary_table()
    on = on or date.today()
    w = workers.copy()
    w["grade"] = grades.grade(w["post"], w["hired"], w["education"], on)
    pay = salaries.set_index(["post", "grade"])["monthly_yuan"]
    keys = list(zip(w["post"], w["grade"].astype(int), strict=True))
    missing = sorted({k for k in keys if k not in pay.index})
    if missing:
        raise ValidationError("salary table", [f"no salary for {p} grade {g}" for p, g in missing])
    w["monthly_yuan"] = [float(pay.loc[k]) for k in keys]
    totals = {"roster": int(len(w)), "roster_monthly_yuan": float(w["monthly_yuan"].sum())}
    if quota is not None:
        have = w.groupby("community_code").size()
        vacant = (
            quota.set_index("code")["quota"] - have.reindex(quota["code"]).fillna(0).to_numpy()
        ).clip(lower=0)
        entry = float(pay.loc[("其他", min(lo for p, lo, _ in grades.ranges if p == "其他"))])
        totals["vacancies"] = int(vacant.sum())
        totals["quota"] = int(quota["quota"].sum())
        totals["quota_monthly_yuan"] = totals["roster_monthly_yuan"] + entry * float(vacant.sum())
    totals["roster_yearly_yuan"] = totals["roster_monthly_yuan"] * 12
    if "quota_monthly_yuan" in totals:
        totals["quota_yearly_yuan"] = totals["quota_monthly_yuan"] * 12
    return w, totals


__all__ = [
    "StaffRules",
    "GradeRules",
    "apportion",
    "quotas",
    "payroll",
    "salary_table",
]
