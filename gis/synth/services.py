"""Facilities and rosters of the demo city.

Facilities stand where they do in a real city: every residents' committee has its community
service station at its office, every village committee its village service centre; the
other 5/10-minute types are in some communities and not others (the gaps are deliberate);
township-level ones near the town centre. Rosters: the urban communities' workers (about one
per 350 households, at least 5) and each village's 村两委 members, who are its grid heads.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd

import geopandas as gpd
import shapely

from gis.reference import facility_types
from gis.synth.places import _rng, _scatter_in

# share of communities with each 5/10-minute facility (urban, rural); the rest are gaps
LOCAL_SHARE = {
    "elderly_day_care": (0.55, 0.12),
    "kindergarten": (0.6, 0.22),
    "health_station": (0.7, 0.3),
    "culture_room": (0.75, 0.45),
    "sports_ground": (0.6, 0.35),
}
# township-level (15-minute) facilities: share of townships with one near the town centre
TOWN_SHARE = {"community_service_center": 0.9, "health_center": 1.0, "elderly_care_home": 0.7}
TYPICAL_AREA = {
    "elderly_day_care": 400.0, "kindergarten": 2500.0, "health_station": 150.0, "culture_room": 200.0,
    "sports_ground": 800.0, "community_service_center": 1500.0, "health_center": 2000.0,
    "elderly_care_home": 3000.0, "rural_service_center": 400.0,
}  # fmt: skip


def short_name(name: str) -> str:
    """A committee's name without 社区居委会 / 村委会 (as addresses and facilities use it)."""
    for suffix in (
        "社区居民委员会",
        "社区居委会",
        "居民委员会",
        "居委会",
        "村民委员会",
        "村委会",
        "委会",
    ):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def facilities(
    streets: gpd.GeoDataFrame,
    comms: gpd.GeoDataFrame,
    offices: dict[str, np.ndarray],
    root: np.random.SeedSequence,
) -> gpd.GeoDataFrame:
    """Every facility of the city (metric CRS of ``comms``)."""
    rng = _rng(root, 2)
    names = facility_types().set_index("code")["name_zh"]
    rows: list[dict] = []

    def add(name: str, ftype: str, area: float, xy: np.ndarray) -> None:
        rows.append({"name": name, "type": ftype, "area_m2": round(area, 1), "xy": xy})

    for c in comms.itertuples():
        urban = c.kind == "urban"
        office = offices.get(c.code, np.array([c.cx_, c.cy_]))  # type: ignore[attr-defined]
        short = short_name(c.name)
        at_office = office + rng.normal(0, 6.0, 2)
        if urban:  # at the committee's office; its floor area may fall short of the standard
            area = c.hh_ / 100 * 30 * rng.uniform(0.55, 1.45)  # type: ignore[attr-defined]
            add(
                f"{short}{names['community_service_station']}",
                "community_service_station",
                area,
                at_office,
            )
        else:
            area = TYPICAL_AREA["rural_service_center"] * rng.uniform(0.6, 1.4)
            add(f"{short}{names['rural_service_center']}", "rural_service_center", area, at_office)
        for ftype, (pu, pr) in LOCAL_SHARE.items():
            if rng.random() < (pu if urban else pr):
                xy = _scatter_in(c.geometry, office[None, :], 150.0, 1, rng)[0]
                add(
                    f"{short}{names[ftype]}", ftype, TYPICAL_AREA[ftype] * rng.uniform(0.6, 1.4), xy
                )
    for s in streets.itertuples():
        town = comms[comms["street_code"] == s.code]
        centre = np.array([town["cx_"].mean(), town["cy_"].mean()])
        centre = np.array(
            shapely.ops.nearest_points(s.geometry, shapely.Point(centre))[0].coords[0]
        )
        for ftype, share in TOWN_SHARE.items():
            if rng.random() < share:
                xy = _scatter_in(s.geometry, centre[None, :], 300.0, 1, rng)[0]
                add(
                    f"{s.name}{names[ftype]}",
                    ftype,
                    TYPICAL_AREA[ftype] * rng.uniform(0.6, 1.4),
                    xy,
                )
    xy = np.array([r.pop("xy") for r in rows])
    df = pd.DataFrame(rows)
    df.insert(0, "id", [f"F{i:06d}" for i in range(1, len(df) + 1)])
    df["status"] = "existing"
    df["synthetic"] = True
    return gpd.GeoDataFrame(df, geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=comms.crs)


SURNAMES = list(
    "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史顾侯邵孟龙万段"
)
GIVEN = list(
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国玉兰红梅文波宁丹辉鹏晨雪琳欣怡浩宇子涵佳琪"
)
EDUCATION = (["高中及以下", "大专", "本科", "硕士", "博士"], [0.12, 0.38, 0.44, 0.055, 0.005])
# village committee members (村两委) have less formal schooling
VILLAGE_EDUCATION = (["高中及以下", "大专", "本科", "硕士", "博士"], [0.45, 0.38, 0.16, 0.01, 0.0])


def workers(comms: gpd.GeoDataFrame, root: np.random.SeedSequence) -> pd.DataFrame:
    """The roster: urban communities about one worker per 350 households (at least 5, a few
    posts vacant; one 正职, one or two 副职, the rest 其他); villages their 村两委 members,
    one per 350 households at least 2 (书记 as 正职, 主任 as 副职, the others part-time).
    """
    rng = _rng(root, 3)
    centres = gpd.GeoSeries(gpd.points_from_xy(comms["cx_"], comms["cy_"]), crs=comms.crs).to_crs(
        "EPSG:4326"
    )
    rows = []
    start = date(1996, 1, 1)
    for c, home in zip(comms.itertuples(), centres, strict=True):
        urban = c.kind == "urban"
        hh = c.hh_  # type: ignore[attr-defined]
        if urban:
            n = max(5, int(np.ceil(hh / 350))) - int(rng.random() < 0.25)
        else:
            n = max(2, int(np.ceil(hh / 350))) - int(rng.random() < 0.1)
        edu_choices, edu_p = EDUCATION if urban else VILLAGE_EDUCATION
        for j in range(n):
            post = "正职" if j == 0 else "副职" if j <= (2 if n >= 7 else 1) else "其他"
            hired = start + timedelta(days=int(rng.integers(0, 365 * 29)))
            rows.append(
                {
                    "id": f"W{c.code}{j + 1:02d}",
                    "name": rng.choice(SURNAMES)
                    + "".join(rng.choice(GIVEN, size=int(rng.integers(1, 3)))),
                    "community_code": c.code,
                    "post": post,
                    "hired": hired.isoformat(),
                    "education": str(rng.choice(edu_choices, p=edu_p)),
                    "phone": f"1{rng.choice(['35', '39', '58', '86'])}{int(rng.integers(0, 10**8)):08d}",
                    "home_lon": round(home.x + rng.normal(0, 0.01 if urban else 0.003), 6),
                    "home_lat": round(home.y + rng.normal(0, 0.01 if urban else 0.003), 6),
                    "synthetic": True,
                }
            )
    return pd.DataFrame(rows)
