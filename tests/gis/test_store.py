"""The same suite against both stores (GeoPackage file, PostGIS)."""

from __future__ import annotations

import hashlib

import pandas as pd
import pytest

import geopandas as gpd
import pyogrio
import shapely

from gis import schema
from gis.errors import LayerNotFoundError, StoreError, ValidationError
from gis.store import GeoPackageStore, open_store
from tests.helpers import assert_layer_equal


def test_every_layer_round_trips(store, town):
    store.write(town)
    assert store.layers() == {k: len(v) for k, v in town.items()} | {}
    for name, df in town.items():
        assert_layer_equal(store.read(name), df, tolerance=0)


def test_empty_layer_and_missing_layer(store):
    store.write({"grids": schema.empty("grids")})
    assert len(store.read("grids")) == 0
    with pytest.raises(LayerNotFoundError, match="holds no layer 'buildings'"):
        store.read("buildings")
    with pytest.raises(LayerNotFoundError, match="unknown layer 'nope'"):
        store.read("nope")


def test_bbox_and_attribute_filters(store, town):
    store.write({"buildings": town["buildings"]})
    b = town["buildings"]
    minx, miny, maxx, maxy = b.total_bounds
    box = (minx, miny, (minx + maxx) / 2, (miny + maxy) / 2)
    got = store.read("buildings", bbox=box)
    want = b[shapely.intersects(b.geometry.values, shapely.box(*box))]
    assert 0 < len(got) < len(b)
    assert set(got["id"]) == set(want["id"])
    code = b["community_code"].iloc[0]
    got = store.read("buildings", bbox=box, where={"community_code": code}, columns=["households"])
    assert list(got.columns) == ["id", "households", "geometry"]
    assert set(got["id"]) == set(want[want["community_code"] == code]["id"])
    got = store.read("buildings", where={"households": [1, 2]})
    assert set(got["id"]) == set(b[b["households"].isin([1, 2])]["id"])
    with pytest.raises(ValidationError, match="households: 'x' is not a int"):
        store.read("buildings", where={"households": "x"})
    with pytest.raises(KeyError, match="no column 'nope'"):
        store.read("buildings", where={"nope": 1})


def test_row_edits_keep_the_spatial_index(store, town):
    b = town["buildings"]
    store.write({"buildings": b})
    new = b.head(2).assign(id=["new1", "new2"])
    new = new.set_geometry(gpd.points_from_xy([117.0, 117.01], [35.0, 35.01]), crs="EPSG:4326")
    store.insert("buildings", new)
    far = (116.99, 34.99, 117.02, 35.02)
    assert set(store.read("buildings", bbox=far)["id"]) == {"new1", "new2"}
    store.update("buildings", "new1", {"households": 77, "geometry": shapely.Point(117.3, 35.3)})
    assert set(store.read("buildings", bbox=far)["id"]) == {"new2"}
    moved = store.read("buildings", bbox=(117.29, 35.29, 117.31, 35.31))
    assert moved["id"].tolist() == ["new1"] and moved["households"].tolist() == [77]
    assert store.delete("buildings", ["new2", "missing"]) == 1
    assert len(store.read("buildings", bbox=far)) == 0
    assert len(store.read("buildings")) == len(b) + 1
    with pytest.raises(LayerNotFoundError, match="no row with id = 'ghost'"):
        store.update("buildings", "ghost", {"households": 1})


def test_insert_is_all_or_nothing(store, town):
    b = town["buildings"]
    store.write({"buildings": b})
    rows = b.head(3).assign(id=["ok1", "ok2", b["id"].iloc[5]])  # the last one exists
    with pytest.raises(ValidationError, match="duplicate key"):
        store.insert("buildings", rows)
    assert len(store.read("buildings")) == len(b)
    assert not store.read("buildings", where={"id": ["ok1", "ok2"]}).shape[0]
    bad = b.head(1).assign(id="neg", households=-1)
    with pytest.raises(ValidationError, match="households is -1"):
        store.insert("buildings", bad)


def test_invalid_write_changes_nothing(store, town):
    store.write({"buildings": town["buildings"], "communities": town["communities"]})
    before = store.read("communities")
    broken = town["communities"].assign(code="12345")
    with pytest.raises(ValidationError, match="not a 12-digit code"):
        store.write({"streets": town["streets"], "communities": broken})
    assert "streets" not in store.layers()
    assert_layer_equal(store.read("communities"), before, tolerance=0)


def test_failure_mid_write_rolls_back(store, town, monkeypatch):
    store.write({"communities": town["communities"]})
    before = store.read("communities")
    if isinstance(store, GeoPackageStore):
        from gis.store import gpkg

        digest = hashlib.sha256(store.path.read_bytes()).hexdigest()
        real = gpkg._replace

        def failing(con, spec, df):
            if spec.name == "buildings":
                raise OSError("disk full")
            return real(con, spec, df)

        monkeypatch.setattr(gpkg, "_replace", failing)
    else:
        real = type(store)._copy

        def failing(self, conn, spec, df, *args):
            if spec.name == "buildings":
                raise OSError("disk full")
            return real(self, conn, spec, df, *args)

        monkeypatch.setattr(type(store), "_copy", failing)
    with pytest.raises(OSError, match="disk full"):
        store.write({"communities": town["communities"].head(1), "buildings": town["buildings"]})
    monkeypatch.undo()
    assert set(store.layers()) == {"communities"}
    assert_layer_equal(store.read("communities"), before, tolerance=0)
    if isinstance(store, GeoPackageStore):
        assert hashlib.sha256(store.path.read_bytes()).hexdigest() == digest
        assert list(store.path.parent.glob(".*tmp*")) == []


def test_open_store_rejects_other_specs(tmp_path):
    with pytest.raises(StoreError, match="give a .gpkg path or a postgresql"):
        open_store(tmp_path / "x.shp")
    assert isinstance(open_store(tmp_path / "x.gpkg"), GeoPackageStore)


def test_gpkg_is_a_plain_geopackage(tmp_path, town):
    s = GeoPackageStore(tmp_path / "c.gpkg")
    s.write({"communities": town["communities"]})
    info = pyogrio.read_info(s.path, layer="communities")
    assert info["crs"] == "EPSG:4326" and info["geometry_type"] == "MultiPolygon"
    df = pd.DataFrame(pyogrio.read_dataframe(s.path, layer="communities", read_geometry=False))
    assert df["code"].tolist() == town["communities"]["code"].tolist()


@pytest.mark.parametrize("fmt", [".geojson", ".gpkg", ".csv", ".xlsx"])
def test_import_store_export_chain(store, town, tmp_path, fmt):
    """files → io.load → store → export → files again: equal to what went in, in each store."""
    from gis import io
    from gis.export import write as export

    inputs = ("communities", "buildings", "facilities", "workers", "roads")
    files = {}
    for name in inputs:
        tabular = fmt in (".csv", ".xlsx") and name not in ("communities", "roads")
        suffix = fmt if tabular or fmt not in (".csv", ".xlsx") else ".gpkg"
        files[name] = tmp_path / "in" / f"{name}{suffix}"
        export(town[name], files[name], layer=name)
    store.write(io.load(files))
    out = {}
    for name in inputs:
        out[name] = tmp_path / "out" / files[name].name
        export(store.read(name), out[name], layer=name)
    again = io.load(out)
    for name in (*inputs, "streets", "districts"):
        want = town[name] if name in inputs else store.read(name)
        assert_layer_equal(again[name], want, tolerance=1e-9)


def test_paging_matches_a_full_read(store, town):
    store.write({"buildings": town["buildings"], "communities": town["communities"]})
    b = town["buildings"]
    code = b["community_code"].value_counts().index[0]  # the community with most buildings
    minx, miny, maxx, maxy = b[b["community_code"] == code].total_bounds
    box = (minx, miny, (minx + maxx) / 2 + 1e-9, maxy)  # its western half
    full = store.read("buildings", bbox=box, where={"community_code": code})
    want = sorted(full["id"])
    assert len(want) > 7
    got, seen = [], 0
    for offset in range(0, len(want) + 7, 7):
        p = store.page(
            "buildings", bbox=box, where={"community_code": code}, limit=7, offset=offset
        )
        assert p.matched == len(want) and len(p.rows) <= 7
        got += [r["id"] for r in p.rows]
        seen += 1
    assert got == want and seen >= 2  # key order, no row twice, none lost
    p = store.page("communities", limit=2, offset=1)
    frame = p.frame()
    assert frame["code"].tolist() == sorted(town["communities"]["code"])[1:3]
    assert p.matched == len(town["communities"]) and frame.crs == "EPSG:4326"
    want = town["communities"].set_index("code").loc[frame["code"]]
    assert shapely.equals_exact(frame.geometry.values, want.geometry.values, 1e-9).all()
    p = store.page("buildings", bbox=(0, 0, 1, 1))
    assert p.matched == 0 and p.rows == [] and len(p.frame()) == 0


def test_concurrent_writers_lose_nothing(store, town):
    """Row inserts racing whole-layer writes (an API audit row while a job saves its
    results): every insert lands and nothing fails, in either store."""
    import threading

    store.write({"communities": town["communities"], "audit": _audit_rows(0)})
    errors: list[BaseException] = []

    def inserter(part: int) -> None:
        try:
            for i in range(40):
                store.insert("audit", _audit_rows(1, f"{part}-{i}"))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    def writer() -> None:
        try:
            for _ in range(6):
                store.write({"communities": town["communities"]})
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=inserter, args=(p,)) for p in range(2)]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(store.read("audit")) == 80


def _audit_rows(n: int, tag: str = "") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [f"a{tag}-{i}" for i in range(n)],
            "at": "2026-11-26T00:00:00+00:00",
            "who": "test",
            "action": "test",
            "target": "x",
            "detail": None,
        }
    )


def _event(order_id: str, version: int = 1) -> dict:
    return {"order_id": order_id, "at": "2026-10-01T08:00:00+08:00", "who": "t", "action": "report",
            "from_state": None, "to_state": "reported", "version": version, "detail": None}  # fmt: skip


def test_a_journal_numbers_appends_after_every_number_taken_before(store):
    """Appends are numbered after the highest number, also after a bulk write brought
    numbers of its own; a rebuild with fewer rows never hands out a number again; the
    settled read sees them all.
    """
    with store.transaction() as tx:
        tx.append("order_events", [_event("A"), _event("A", 2)])
    ev = pd.DataFrame([{**_event("B"), "seq": s} for s in (10, 11, 12)])
    store.write({"order_events": schema.conform("order_events", ev)})
    with store.transaction() as tx:
        tx.append("order_events", [_event("C")])
    with store.settled("order_events") as tx:
        seq = [r["seq"] for r in tx.rows("order_events", {}, above={"seq": 11})]
    assert seq == [12, 13]
    store.write({"order_events": schema.conform("order_events", ev.head(1))})  # back to 10
    with store.transaction() as tx:
        tx.append("order_events", [_event("D")])
        assert tx.rows("order_events", {}, columns=["seq"], last=True)[0]["seq"] >= 11
    got = store.read("order_events").sort_values("seq")
    assert list(got["order_id"]) == ["B", "D"] and got["seq"].is_unique
    if store.url.startswith("postgresql"):  # numbers once handed out are not reused there
        assert int(got["seq"].iloc[-1]) == 14


def test_live_layers_keep_no_version_and_others_do(store, town):
    """Rows of live layers (work orders, audit) change without raising a version, so
    concurrent writers never queue on one counter; other layers raise theirs.
    """
    store.write(town)
    for _ in range(2):  # the first makes the layers (a new layer is seen: its version goes up)
        before = store.versions()
        with store.transaction() as tx:
            tx.append("order_events", [_event("A")])
            tx.audit("t", "test", "x")
    mid = store.versions()
    assert mid == before
    b = town["buildings"].iloc[0]
    with store.transaction() as tx:
        tx.update("buildings", b["id"], {"households": int(b["households"]) + 1})
    assert store.versions()["buildings"] == mid["buildings"] + 1


def test_a_pooled_connection_idle_for_a_while_serves_a_snapshot(postgis_store, town, monkeypatch):
    """A connection checked after an idle spell must come back out of its check's
    transaction (it used to: the next snapshot failed, a 500 after every quiet period).
    """
    from gis.store import pgconn

    postgis_store.write(town)
    monkeypatch.setattr(pgconn, "IDLE_CHECK_S", 0.0)
    for _ in range(3):
        with postgis_store.snapshot() as tx:
            assert len(tx.rows("buildings", {"id": str(town["buildings"]["id"].iloc[0])})) == 1


def test_a_store_in_its_own_schema_leaves_the_tables_of_public_alone(postgis_store, town):
    """A store whose search path is ``its_schema,public`` (as PostGIS set-ups have it) owns
    the tables of its schema only: writing a layer it does not hold yet must not drop the
    table of that name further down the path (it did: ``DROP TABLE IF EXISTS`` found
    public's), and those tables are not its layers. Here "public" is a schema of the test's
    own, holding another store's districts."""
    import uuid

    import sqlalchemy as sa

    from gis.store import PostGISStore

    url = postgis_store.engine.url.render_as_string(hide_password=False).split("?")[0]
    mine, shared = f"o_{uuid.uuid4().hex[:8]}", f"p_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url)
    with admin.begin() as c:
        c.execute(sa.text(f'CREATE SCHEMA "{mine}"'))
        c.execute(sa.text(f'CREATE SCHEMA "{shared}"'))
    try:
        base = PostGISStore(f"{url}?options=-csearch_path%3D{shared},public")
        base.write({"districts": town["districts"]})
        neighbour = PostGISStore(f"{url}?options=-csearch_path%3D{mine},{shared},public")
        try:
            assert "districts" not in neighbour.names()  # the other schema's are not its own
            neighbour.write({"districts": town["districts"].head(1)})
            assert len(base.read("districts")) == len(town["districts"])  # still there
            assert len(neighbour.read("districts")) == 1
        finally:
            base.engine.dispose()
            neighbour.engine.dispose()
    finally:
        with admin.begin() as c:
            c.execute(sa.text(f'DROP SCHEMA "{mine}" CASCADE'))
            c.execute(sa.text(f'DROP SCHEMA "{shared}" CASCADE'))
        admin.dispose()


def test_delete_prefix_takes_one_countys_rows_and_no_other(store, town):
    store.write({"communities": town["communities"], "buildings": town["buildings"]})
    b = town["buildings"]
    one = sorted(set(b["community_code"]))[0]
    with store.transaction() as tx:
        gone = tx.delete_prefix("buildings", "community_code", one)
        assert tx.delete_prefix("grids", "code", one) == 0  # an absent layer: nothing
    left = store.read("buildings")
    assert gone == (b["community_code"] == one).sum() > 0
    assert len(left) == len(b) - gone and not left["community_code"].eq(one).any()
    with pytest.raises(KeyError, match="no column"):
        with store.transaction() as tx:
            tx.delete_prefix("buildings", "nope", "3")
    assert len(store.read("buildings")) == len(left)
