"""Heal or shout against the running node: its data directory's file system fills up.

The data directory is a small tmpfs of its own. While a client submits steadily, a filler
file takes every free byte for a few seconds, then goes. Judged from the client's records,
the handsets' inbox and the node's own words:

* no ESME_ROK for a message that is not in the store (I1): every acked id ends DELIVERED, in
  the inbox once; while the store cannot write, submits get ESME_RMSGQFUL (temporary), and
  a new bind still works;
* the node says so within seconds: ``/health/ready`` 503 naming ``store_unwritable``,
  ``adressat audit`` not ok and the node unhealthy, ``adressat status`` the same;
* when the space is back, it heals by itself within 5 s (no restart: the same delivery
  process), delivery goes on, and the episode is in the store with its cause, start and end.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from adressat.netsim import read_inbox
from adressat.smpp.constants import CommandStatus as S
from adressat.store.sqlite import SqliteStore
from adressat.testing.disk import fill, small_fs
from adressat.testing.esme import EsmeClient
from adressat.testing.server import ServerProcess, adressat, audit

pytestmark = pytest.mark.slow

FS_BYTES = 48 * 1024 * 1024
FULL_S = 4.0
RATE_PER_S = 100


def ready(server: ServerProcess) -> tuple[int, dict[str, object]]:
    status, body = server.http_get("/health/ready")
    return status, json.loads(body)


async def _load(client: EsmeClient, stop: asyncio.Event, dests: list[str]) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        await client.submit_many([{"dest": dests[n % len(dests)],
                                   "content": b"disk full %06d" % n}])
        await asyncio.sleep(1 / RATE_PER_S)


def test_a_full_disk_is_said_and_healed_without_a_restart(tmp_path: Path) -> None:
    with small_fs(tmp_path / "small", FS_BYTES) as fs:
        home = fs / "home"
        assert adressat(home, "account", "add", "demo", "--password", "demo").returncode == 0
        server = ServerProcess(home, None, "--quiet-network", "--subscribers", "20000")
        server.start()
        try:
            _run(server, home, fs)
        finally:
            server.stop()
            # kept beside the test (the small file system goes with it)
            (tmp_path / "server.log").write_bytes(server.log_path.read_bytes())
        report = audit(home)
        # attempts that could not be made durable failed (system failure) while the disk was
        # full: the alert rules may have said so on the route; the verdict is ok once a person
        # has acknowledged what they said (docs/alerts.md)
        assert report["figures_ok"] is True, report
        said = json.loads(adressat(home, "alarm", "list", "--json").stdout)
        assert all(a["rule"] == "failure_rate" for a in said), said
        for a in said:
            out = adressat(home, "alarm", "ack", str(a["id"]), "--note", "disk was full")
            assert out.returncode == 0, out.stderr
        report = audit(home)
        store = SqliteStore(home / "adressat.db")
        try:
            episodes = store.episodes()
        finally:
            store.close()
    assert report["ok"] is True, report
    assert report["lost"] == 0 and report["misdelivered"] == 0
    unwritable = [e for e in episodes if e.kind.value == "store_unwritable"]
    assert unwritable, [e.as_dict() for e in episodes]
    ep = unwritable[-1]
    assert ep.cause == "disk_full" and ep.ended_at is not None
    assert 1.0 <= ep.ended_at - ep.started_at <= FULL_S + 10


def _run(server: ServerProcess, home: Path, fs: Path) -> None:
    dests = [str(46701000100 + i) for i in range(50)]

    async def scenario() -> dict[str, object]:
        client = EsmeClient("127.0.0.1", server.port, "demo", "demo", window=20)
        await client.connect(retry_for_s=10.0)
        stop = asyncio.Event()
        load = asyncio.create_task(_load(client, stop, dests))
        await asyncio.sleep(2.0)
        before = len(client.acked)
        assert before > 50, client.stats()
        delivery_pid = json.loads(server.http_get("/status")[1])["delivery"]["pid"]

        filler = await asyncio.to_thread(fill, fs / "filler")
        t_full = time.monotonic()
        seen_unready = None
        for _ in range(int(FULL_S / 0.1)):
            code, body = await asyncio.to_thread(ready, server)
            if code == 503 and any("store_unwritable" in str(r) for r in body["reasons"]):
                seen_unready = time.monotonic() - t_full
                break
            await asyncio.sleep(0.1)
        assert seen_unready is not None and seen_unready < FULL_S, "not said while full"
        # while full: a bind works, the audit says unhealthy, submits are refused as temporary
        other = EsmeClient("127.0.0.1", server.port, "demo", "demo", window=1)
        await other.connect(retry_for_s=2.0)
        await other.close()
        during = await asyncio.to_thread(audit, home)
        assert during["ok"] is False and during["node"]["healthy"] is False, during
        status_out = await asyncio.to_thread(adressat, home, "status")
        assert "store_unwritable" in status_out.stdout and status_out.returncode != 0
        await asyncio.sleep(max(0.0, FULL_S - (time.monotonic() - t_full)))
        refused = [r for r in client.submits if r.status == S.ESME_RMSGQFUL]
        others = {r.status for r in client.submits} - {S.ESME_ROK, S.ESME_RMSGQFUL, None}
        assert refused and not others, client.stats()

        filler.unlink()
        t_free = time.monotonic()
        healed = None
        body: dict[str, object] = {}
        for _ in range(100):
            code, body = await asyncio.to_thread(ready, server)
            if code == 200:
                healed = time.monotonic() - t_free
                break
            await asyncio.sleep(0.1)
        assert healed is not None and healed <= 5.0, f"not ready again within 5 s: {body}"
        acked_at_free = len(client.acked)
        await asyncio.sleep(2.0)
        assert len(client.acked) > acked_at_free + 50, "submits not accepted again"
        stop.set()
        await asyncio.wait_for(load, 10.0)
        ids = [r.message_id for r in client.acked if r.message_id]
        missing = await client.wait_receipts(ids, 60.0)
        await client.close()
        after_pid = json.loads(server.http_get("/status")[1])["delivery"]["pid"]
        return {"ids": ids, "missing": missing, "delivery_pid": (delivery_pid, after_pid)}

    out = asyncio.run(asyncio.wait_for(scenario(), 150.0))
    if out["missing"]:
        st = SqliteStore(home / "adressat.db")
        try:
            states = {}
            for mid in sorted(out["missing"]):  # type: ignore[call-overload]
                m = st.get_message(mid)
                states[mid] = None if m is None else (
                    m.state.value, m.attempts, m.error, round(m.next_attempt_at - time.time()),
                    [(a.outcome, a.error) for a in st.attempts_for_message(mid)])
        finally:
            st.close()
        raise AssertionError(f"{len(states)} acked messages without a receipt: {states}")
    before_pid, after_pid = out["delivery_pid"]  # type: ignore[misc]
    assert before_pid == after_pid, "healed by a restart of the delivery process"
    records = [r for r in read_inbox(home) if not r.duplicate]
    counts: dict[str, int] = {}
    for r in records:
        counts[r.smsc_message_id] = counts.get(r.smsc_message_id, 0) + 1
    ids = out["ids"]
    assert all(counts.get(i) == 1 for i in ids), "an acked message not in the inbox once"
