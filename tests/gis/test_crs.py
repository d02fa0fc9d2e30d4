import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import geopandas as gpd
import shapely
from pyproj import Geod

from gis import crs
from gis.errors import InvalidCRSError

GEOD = Geod(ellps="WGS84")
lons = st.floats(min_value=74.0, max_value=134.0)
lats = st.floats(min_value=18.0, max_value=53.0)


def test_gcj02_forward_matches_published_value():
    # the widely published reference pair for the GCJ-02 formula (Tian'anmen)
    lon, lat = crs.wgs84_to_gcj02(116.404, 39.915)
    assert lon == pytest.approx(116.41024449916938, abs=1e-12)
    assert lat == pytest.approx(39.91640428150164, abs=1e-12)


def test_offset_is_hundreds_of_metres_in_zaozhuang():
    lon, lat = crs.wgs84_to_gcj02(117.32, 34.81)
    _, _, dist = GEOD.inv(117.32, 34.81, lon, lat)
    assert 300 < dist < 700


@settings(max_examples=200, deadline=None)
@given(lons, lats)
def test_gcj02_inverse_under_half_a_metre(lon, lat):
    g = crs.wgs84_to_gcj02(lon, lat)
    back = crs.gcj02_to_wgs84(*g)
    _, _, dist = GEOD.inv(lon, lat, float(back[0]), float(back[1]))
    assert dist < 0.5


@settings(max_examples=200, deadline=None)
@given(lons, lats)
def test_bd09_inverse_under_half_a_metre(lon, lat):
    b = crs.wgs84_to_bd09(lon, lat)
    back = crs.bd09_to_wgs84(*b)
    _, _, dist = GEOD.inv(lon, lat, float(back[0]), float(back[1]))
    assert dist < 0.5


def test_geoseries_round_trip_through_gcj02():
    pts = gpd.GeoSeries(gpd.points_from_xy([117.1, 117.5], [34.7, 35.1]), crs="EPSG:4326")
    there = crs.from_wgs84(pts, "gcj02")
    assert (shapely.distance(there.values, pts.values) > 1e-3).all()
    back = crs.to_wgs84(there, "GCJ-02")
    assert np.allclose(back.x, pts.x, atol=1e-9) and np.allclose(back.y, pts.y, atol=1e-9)


def test_metric_zone():
    assert crs.metric_crs(117.4).to_epsg() == 4548
    assert crs.metric_crs(121.5).to_epsg() == 4549
    with pytest.raises(InvalidCRSError, match="outside China"):
        crs.metric_crs(10.0)


def test_unknown_system_named_in_error():
    with pytest.raises(InvalidCRSError, match="unknown coordinate system 'mars'.*gcj02"):
        crs.check_system("mars")
    assert crs.check_system("EPSG:4490") == "cgcs2000"


def test_outside_china():
    out = crs.outside_china([117.0, 2.35, 117.0], [35.0, 48.85, -35.0])
    assert out.tolist() == [False, True, True]
