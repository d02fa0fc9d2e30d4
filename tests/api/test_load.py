"""The served store under load as calling systems give it: 32 clients for 30 s, one
request in five an assignment edit, on both stores. No answer is a 5xx, and every edit
answered 2xx is in the store with its audit row."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict

import httpx2 as httpx
import pytest

from gis import access
from tests.conftest import store_spec

CLIENTS, SECONDS, WRITE_SHARE = 32, 30.0, 0.2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(city):
    port = _free_port()
    env = {**os.environ, "GRIDGIS_ANONYMOUS_READ": "0", "GRIDGIS_RATE_LIMIT": "0"}
    cmd = [sys.executable, "-c", "from api.cli import main; main()", "serve", "--store",
           store_spec(city), "--port", str(port)]  # fmt: skip
    with subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    ) as p:
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(f"{base}/conformance", timeout=1).status_code == 401:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        else:
            p.kill()
            raise AssertionError(f"server did not start: {p.communicate()[1]}")
        try:
            yield city, base, p
        finally:
            if p.poll() is None:
                p.terminate()
            p.communicate(timeout=30)


def _plan(city):
    """Per client: grids of its own (so its edits of a grid are ordered) with two workers."""
    a = city.read("assignments").sort_values("grid_code")
    w = city.read("workers")
    by_comm = w.groupby("community_code")["id"].apply(list).to_dict()
    grids = [(g, by_comm.get(g[:12], [])) for g in a["grid_code"]]
    grids = [(g, ws[:2]) for g, ws in grids if len(ws) >= 2]
    return [grids[i::CLIENTS] for i in range(CLIENTS)]


def _reads(city) -> list[str]:
    b = city.read("buildings").sample(50, random_state=1)
    out = []
    for g in b.geometry:
        x, y = g.x, g.y
        out += [
            f"/collections/grids/items?limit=10&bbox={x - 0.005},{y - 0.005},{x + 0.005},{y + 0.005}",
            f"/locate?lon={x}&lat={y}",
            f"/collections/buildings/items?limit=5&bbox={x - 0.002},{y - 0.002},{x + 0.002},{y + 0.002}",
        ]
    return [*out, "/collections/workers/items?limit=20", "/analysis/staffing", "/collections"]


def test_32_clients_with_edits_get_no_5xx_and_lose_no_edit(server):
    city, base, _ = server
    key = access.create_key(city, "supervisor")[0]
    plans, reads = _plan(city), _reads(city)
    statuses: list[int] = []
    errors: list[str] = []
    acked: dict[str, list[str]] = defaultdict(list)  # grid → workers answered 2xx, in order
    lock = threading.Lock()
    deadline = time.monotonic() + SECONDS

    def client(i: int) -> None:
        rng = random.Random(i)
        with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=120) as c:
            n = 0
            while time.monotonic() < deadline:
                try:
                    if plans[i] and rng.random() < WRITE_SHARE:
                        grid, workers = plans[i][n % len(plans[i])]
                        worker = workers[(n // len(plans[i])) % 2]
                        n += 1
                        r = c.put(f"/assignments/{grid}", json={"worker_id": worker})
                        if r.status_code < 300:
                            with lock:
                                acked[grid].append(worker)
                    else:
                        r = c.get(rng.choice(reads))
                except httpx.HTTPError as exc:
                    with lock:
                        errors.append(repr(exc))
                    continue
                with lock:
                    statuses.append(r.status_code)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writes = sum(len(v) for v in acked.values())
    print(f"{len(statuses)} answers ({writes} edits answered 2xx) in {SECONDS:.0f} s")
    assert errors == []
    assert writes > 50 and len(statuses) > 5 * writes // 2, (writes, len(statuses))
    assert [s for s in statuses if s >= 500] == []
    final = city.read("assignments").set_index("grid_code")["worker_id"]
    audit = city.read("audit")
    audit = audit[audit["action"] == "assignments.update"].groupby("target").size()
    for grid, workers in acked.items():
        assert final[grid] == workers[-1], grid
        assert audit.get(grid, 0) == len(workers), grid
