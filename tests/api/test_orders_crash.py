"""``kill -9`` of the server in the middle of a load of order creates and transitions:
afterwards every acknowledged (2xx) request is in the store with its history, and nothing
unacknowledged is half there."""

from __future__ import annotations

import os
import random
import signal
import threading
import time

import httpx2 as httpx

from gis import access
from tests.api.test_load import server  # noqa: F401  (the served store, a real process)

CLIENTS = 8
# The kill comes once this many creates are acknowledged (mid-load, whatever the machine's
# speed: a fixed wait saw only 8 on a busy CI machine), plus a short random spell so it does
# not always land on the same step of a request; the wait is bounded.
KILL_AFTER, MAX_WAIT = 40, 60.0


def test_kill_9_mid_load_keeps_every_acknowledged_order_and_step(server):  # noqa: F811
    city, base, proc = server
    key = access.create_key(city, "admin", None, "crash-test")[0]
    head = {"X-API-Key": key}
    b = city.read("buildings").sort_values("id")
    pts = [(float(g.x), float(g.y)) for g in b.geometry.values[:: max(1, len(b) // 200)][:200]]
    time.sleep(0.6)  # the server sees the new key
    created: dict[str, str] = {}  # external id -> order id (acknowledged)
    moved: dict[str, int] = {}  # order id -> highest acknowledged version
    lock = threading.Lock()
    stop = threading.Event()

    def client(i: int) -> None:
        with httpx.Client(base_url=base, headers=head, timeout=10) as c:
            n = 0
            while not stop.is_set():
                n += 1
                ext = f"K{i}-{n}"
                x, y = pts[(i * 31 + n) % len(pts)]
                try:
                    r = c.post("/orders", json={"source": "hotline", "external_id": ext, "type": "repair",
                                                "description": "压测", "lon": x, "lat": y})  # fmt: skip
                    if r.status_code in (200, 201):
                        oid = r.json()["id"]
                        with lock:
                            created[ext] = oid
                        r = c.post(
                            f"/orders/{oid}/transitions", json={"action": "accept", "version": 1}
                        )
                        if r.status_code == 200:
                            with lock:
                                moved[oid] = r.json()["version"]
                except httpx.HTTPError:
                    return  # the server is gone

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + MAX_WAIT
    while time.monotonic() < deadline:
        with lock:
            if len(created) >= KILL_AFTER:
                break
        time.sleep(0.02)
    time.sleep(random.uniform(0.0, 0.3))
    os.kill(proc.pid, signal.SIGKILL)
    stop.set()
    for t in threads:
        t.join(30)
    print(f"acknowledged before the kill: {len(created)} creates, {len(moved)} accepts")
    assert len(created) >= 10, "the load did not get going before the kill"
    orders = city.read("orders").set_index("id")
    events = city.read("order_events")
    for ext, oid in created.items():
        assert oid in orders.index, f"acknowledged order {oid} ({ext}) lost"
        assert orders.at[oid, "external_id"] == ext
    for oid, v in moved.items():
        assert int(orders.at[oid, "version"]) >= v
    # every stored order has its whole history; nothing half there (numbers a killed
    # transaction took are skipped, never reused)
    assert events["seq"].is_unique
    assert set(events["order_id"]) == set(orders.index)
    for oid, h in events.groupby("order_id"):
        assert list(h.sort_values("seq")["action"][:2]) == ["report", "dispatch"], oid
        assert int(h["version"].max()) == int(orders.at[oid, "version"]), oid
        v = h.sort_values("seq")["version"].tolist()
        assert v == sorted(v), f"{oid}: its history is out of order"
    audit = city.read("audit")
    assert set(orders.index) <= set(audit["target"])
