"""Health and status against the running node.

* ``/health/live`` and ``/health/ready`` answer, ``adressat status`` prints one screen and
  exits 0 when ready;
* a delivery process that hangs (SIGSTOP: alive, silent) is seen: due messages wait, the node
  is not ready (``delivery_stalled``), then the SMPP process kills the silent process and
  starts a new one, which delivers everything; the episodes are in the store and in
  ``adressat status``.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from e2e_kit import wait_for

from adressat.store.sqlite import SqliteStore
from adressat.testing.esme import EsmeClient
from adressat.testing.server import ServerProcess, adressat, audit

pytestmark = pytest.mark.slow


def _ready(server: ServerProcess) -> tuple[int, dict[str, object]]:
    code, body = server.http_get("/health/ready")
    return code, json.loads(body)


_R = TypeVar("_R")


def _wait(cond: Callable[[], _R], timeout_s: float, step_s: float = 0.1) -> _R:
    return wait_for(cond, timeout_s, step_s)


def test_live_ready_and_status_of_a_healthy_node(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert adressat(home, "account", "add", "demo", "--password", "demo").returncode == 0
    with ServerProcess(home, None, "--quiet-network", "--subscribers", "1000") as server:
        code, body = server.http_get("/health/live")
        assert code == 200 and json.loads(body) == {"live": True}
        assert _wait(lambda: _ready(server)[0] == 200, 10), _ready(server)
        out = adressat(home, "status")
        assert out.returncode == 0, out.stdout + out.stderr
        first = out.stdout.splitlines()[0]
        assert "READY" in first and f"SMPP port {server.port}" in first
        assert "store: writable" in out.stdout and "delivery process: pid" in out.stdout
        js = json.loads(adressat(home, "status", "--json").stdout)
        assert js["health"]["ready"] is True and js["node"]["smpp_port"] == server.port
        report = audit(home)
        assert report["node"] == {"running": True, "healthy": True, "reasons": [],
                                  "episodes_open": []}
    out = adressat(home, "status")
    assert out.returncode == 2 and "NOT RUNNING" in out.stdout


def test_a_hung_delivery_process_is_seen_killed_and_replaced(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert adressat(home, "account", "add", "demo", "--password", "demo").returncode == 0
    server = ServerProcess(home, None, "--quiet-network", "--subscribers", "1000",
                           "--delivery-heartbeat-timeout-s", "4", "--due-wait-s-max", "1",
                           "--stall-check-interval-s", "0.5")
    server.start()
    try:
        assert _wait(lambda: _ready(server)[0] == 200, 10)
        first = json.loads(server.http_get("/status")[1])["delivery"]["pid"]
        os.kill(first, signal.SIGSTOP)
        t0 = time.monotonic()

        async def submit() -> tuple[EsmeClient, list[str]]:
            c = EsmeClient("127.0.0.1", server.port, "demo", "demo", window=10)
            await c.connect(retry_for_s=5.0)
            recs = await c.submit_many([str(46701000010 + i) for i in range(20)])
            return c, [r.message_id for r in recs if r.message_id]

        async def scenario() -> tuple[list[str], set[str]]:
            client, ids = await submit()
            assert len(ids) == 20  # the SMPP process accepts while delivery hangs
            stalled = await asyncio.to_thread(
                _wait, lambda: any("delivery_stalled" in str(r)
                                   for r in _ready(server)[1]["reasons"]), 4.0)
            assert stalled, _ready(server)
            assert time.monotonic() - t0 < 4.0, "said too late"
            missing = await client.wait_receipts(ids, 30.0)
            await client.close()
            return ids, missing

        ids, missing = asyncio.run(asyncio.wait_for(scenario(), 60.0))
        assert not missing, f"{len(missing)} not delivered after the replacement"
        st = json.loads(server.http_get("/status")[1])
        assert st["delivery"]["pid"] != first and st["delivery"]["restarts"] == 1
        assert _wait(lambda: _ready(server)[0] == 200, 10), _ready(server)
        out = adressat(home, "status")
        assert "delivery_process_down" in out.stdout and "delivery_stalled" in out.stdout
    finally:
        server.stop()
    store = SqliteStore(home / "adressat.db")
    try:
        kinds = {(e.kind.value, e.cause.split("=")[0]) for e in store.episodes()}
        assert all(e.ended_at is not None for e in store.episodes())
    finally:
        store.close()
    assert ("delivery_process_down", "signal") in kinds, kinds
    assert ("delivery_stalled", "oldest_due_s") in kinds, kinds
    report = audit(home)
    assert report["ok"] is True and report["lost"] == 0, report
