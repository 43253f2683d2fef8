"""Health and status against the running node.

* ``/health/live`` and ``/health/ready`` answer, ``adressat status`` prints one screen and
  exits 0 when ready;
* a delivery process that hangs (SIGSTOP: alive, silent) is seen: due messages wait, the node
  is not ready (``delivery_stalled``), then the SMPP process kills the silent process and
  starts a new one, which delivers everything; the episodes are in the store and in
  ``adressat status``;
* one that hangs while it holds the store's write lock (stopped inside a commit, found in
  ``/proc/locks``) does not freeze the SMPP process: submits are refused as temporary after
  ``--store-lock-wait-s`` (nothing written), health answers and names ``store_unwritable``,
  the watchdog replaces the process, and the refused messages sent again are all delivered.
  Before the lock's wait was bounded (store/wlock.py) the SMPP process's loop blocked in
  ``flock`` for as long as the process stayed stopped, its watchdog with it.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from e2e_kit import wait_for

from adressat.smpp.constants import CommandStatus as S
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


def _holds_write_lock(pid: int, lock_file: Path) -> bool:
    """Whether ``pid`` holds the flock on ``lock_file`` (a waiter's line starts with ->)."""
    ino = os.stat(lock_file).st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        f = line.split()
        if len(f) >= 6 and f[1] == "FLOCK" and f[4] == str(pid) and \
                f[5].rsplit(":", 1)[-1] == str(ino):
            return True
    return False


def _stop(pid: int, lock_file: Path, *, holding: bool, tries: int = 3000) -> None:
    """SIGSTOP ``pid`` at a moment it holds (or does not hold) the store's write lock: stop,
    look, go on and try again. The idle delivery process claims every 50 ms, so both moments
    come within a few hundred tries."""
    for _ in range(tries):
        os.kill(pid, signal.SIGSTOP)
        time.sleep(0.002)  # the stop is delivered
        if _holds_write_lock(pid, lock_file) == holding:
            return
        os.kill(pid, signal.SIGCONT)
        time.sleep(random.random() * 0.01)
    raise AssertionError(f"never stopped {'inside' if holding else 'outside'} a commit")


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


def _node_with_a_stopped_delivery_process(
        home: Path, *args: str, holding: bool) -> tuple[ServerProcess, int]:
    """A ready node (heartbeat timeout 4 s) whose delivery process is then stopped inside
    (``holding``) or outside a commit: (the server, the stopped pid)."""
    assert adressat(home, "account", "add", "demo", "--password", "demo").returncode == 0
    server = ServerProcess(home, None, "--quiet-network", "--subscribers", "1000",
                           "--delivery-heartbeat-timeout-s", "4",
                           "--stall-check-interval-s", "0.5", *args)
    server.start()
    try:
        assert _wait(lambda: _ready(server)[0] == 200, 10)
        first = int(json.loads(server.http_get("/status")[1])["delivery"]["pid"])
        _stop(first, home / "adressat.db.wlock", holding=holding)
    except BaseException:
        server.stop()
        raise
    return server, first


def test_a_hung_delivery_process_is_seen_killed_and_replaced(tmp_path: Path) -> None:
    home = tmp_path / "home"
    # outside a commit: the SMPP process writes on (inside one: the next test)
    server, first = _node_with_a_stopped_delivery_process(home, "--due-wait-s-max", "1",
                                                          holding=False)
    try:
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


def test_a_delivery_process_hung_inside_a_commit_does_not_freeze_the_smpp_process(
        tmp_path: Path) -> None:
    home = tmp_path / "home"
    server, first = _node_with_a_stopped_delivery_process(home, "--store-lock-wait-s", "1",
                                                          holding=True)
    try:
        t0 = time.monotonic()
        dests = [str(46701000100 + i) for i in range(20)]

        async def scenario() -> tuple[list[int | None], float, list[str], set[str]]:
            client = EsmeClient("127.0.0.1", server.port, "demo", "demo", window=10)
            await client.connect(retry_for_s=5.0)
            recs = await client.submit_many(dests)  # while the lock is held
            answered_s = time.monotonic() - t0
            statuses = [r.status for r in recs]
            # health answers meanwhile and says where the problem is
            h0 = time.monotonic()
            code, body = await asyncio.to_thread(_ready, server)
            health_s = time.monotonic() - h0
            assert code == 503 and any("store_unwritable" in str(r)
                                       for r in body["reasons"]), body
            # the watchdog replaces the stopped process (its lock goes with it)
            assert await asyncio.to_thread(_wait, lambda: json.loads(
                server.http_get("/status")[1])["delivery"]["pid"] != first, 10.0)
            again = [d for d, r in zip(dests, recs, strict=True) if r.message_id is None]
            recs2 = await client.submit_many(again)
            ids = [r.message_id for r in recs + recs2 if r.message_id]
            missing = await client.wait_receipts(ids, 30.0)
            await client.close()
            return statuses, answered_s, health_s, ids, missing

        statuses, answered_s, health_s, ids, missing = asyncio.run(
            asyncio.wait_for(scenario(), 60.0))
        # every submit answered, none lost in a frozen loop; those refused were told to retry
        assert None not in statuses, statuses
        assert S.ESME_RMSGQFUL in statuses, statuses  # at least the first batch waited
        assert set(statuses) <= {S.ESME_ROK, S.ESME_RMSGQFUL}, statuses
        # each batch waits 1 s for the lock until the watchdog's kill (4 s silent): all are
        # answered soon after it, and health within about one wait (frozen: never, before)
        assert answered_s < 8.0, f"answered after {answered_s:.1f} s"
        assert health_s < 3.0, f"health answered after {health_s:.1f} s"
        assert len(ids) == 20 and not missing, (len(ids), len(missing))
        assert _wait(lambda: _ready(server)[0] == 200, 10), _ready(server)
    finally:
        server.stop()
    store = SqliteStore(home / "adressat.db")
    try:
        episodes = store.episodes()
        unwritable = [e for e in episodes if e.kind.value == "store_unwritable"]
        assert unwritable and "write lock" in unwritable[0].cause, episodes
        assert all(e.ended_at is not None for e in episodes), episodes
        kinds = {e.kind.value for e in episodes}
    finally:
        store.close()
    assert "delivery_process_down" in kinds, kinds
    report = audit(home)
    assert report["ok"] is True and report["lost"] == 0, report
    # the refused submits wrote nothing: twenty messages, each delivered once
    assert report["total"] == 20 and report["states"]["DELIVERED"] == 20, report
    assert report["inbox_records"] == 20 and report["duplicate_deliveries"] == 0, report


def test_run_refuses_a_lock_wait_as_long_as_the_heartbeat_timeout(tmp_path: Path) -> None:
    out = adressat(tmp_path / "home", "run", "--smpp-port", "0", "--http-port", "0",
                   "--delivery-heartbeat-timeout-s", "3", "--store-lock-wait-s", "3",
                   timeout_s=60)
    assert out.returncode == 2, (out.stdout[-500:], out.stderr[-500:])
    assert "--store-lock-wait-s must be below --delivery-heartbeat-timeout-s" in out.stderr
