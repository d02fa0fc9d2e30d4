"""The dispatch look-up's nearest facilities: one KD-tree with each type on a plane of its
own must give, for every type, the facility and distance a search over that type alone
gives."""

from __future__ import annotations

import numpy as np

import shapely

from gis.locate import LAYERS, Locator


def test_the_nearest_facility_of_each_type_is_the_brute_force_one(map_frames):
    f = {n: map_frames[n] for n in LAYERS if n in map_frames}
    loc = Locator(f)
    fac = f["facilities"]
    fac = fac[fac["status"].fillna("existing").eq("existing")] if "status" in fac else fac
    xy = shapely.get_coordinates(fac.to_crs(loc.metric).geometry.values)
    assert fac["type"].nunique() >= 3  # several planes in the tree
    rng = np.random.default_rng(7)
    b = map_frames["buildings"]
    b = b.iloc[rng.choice(len(b), 300, replace=False)]
    lon, lat = b.geometry.x.to_numpy(), b.geometry.y.to_numpy()
    answers = loc.locate(lon, lat)
    mxy = shapely.get_coordinates(b.to_crs(loc.metric).geometry.values)
    for a, p in zip(answers, mxy, strict=True):
        assert a is not None
        assert set(a["facilities"]) == set(fac["type"].astype(str))
        for t, got in a["facilities"].items():
            mine = fac["type"].astype(str).eq(t).to_numpy()
            d = np.hypot(*(xy[mine] - p).T)
            assert got["distance_m"] == round(float(d.min()), 1)
            assert got["id"] in set(fac["id"][mine][d == d.min()])
    # one point at a time answers as the batch does
    for i in range(0, 300, 37):
        assert loc.locate(lon[i : i + 1], lat[i : i + 1]) == [answers[i]]
    # without facilities, and outside the city
    assert loc.locate(lon[:3], lat[:3], facilities=False)[0]["facilities"] == {}
    assert loc.locate(np.array([0.0]), np.array([0.0])) == [None]
