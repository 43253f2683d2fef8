"""Ingress pacing against the running node (ingress/pacing.py, delivery/backlog.py).

A partner that takes 300 messages a second (the connector's --throughput) and an ESME that
offers 2,400 at 1,200 a second: the delivery process's 500 slots fill with messages waiting for the
partner, and the rest wait in the store as ROUTED. Without pacing that queue grows as fast
as the ESME can submit (every message behind it later by as much); with it, new submits for
the route wait before their commit while the queue is deep, so it stays short. Both runs are
here: the unpaced one shows the scenario does build a queue. In both, every message is
accepted, reaches the partner once, and is receipted once to its sender."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from e2e_kit import close_all

from adressat.smpp.constants import CommandStatus as S
from adressat.testing.esme import EsmeClient
from adressat.testing.partner import PartnerModes, PartnerSink
from adressat.testing.server import ServerProcess, adressat, free_port

pytestmark = pytest.mark.slow

COUNT = 2400
OFFERED_PER_S = 1200


def _routed(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM messages WHERE state = 'ROUTED'"
                                " AND route = 'out'").fetchone()[0])
    finally:
        conn.close()


async def _offer(client: EsmeClient) -> list[Any]:
    """COUNT submits offered at OFFERED_PER_S (above what the partner takes), in bursts of
    50; each waits for the ESME's window like any other."""
    tasks = []
    for first in range(0, COUNT, 50):
        tasks += [asyncio.ensure_future(client.submit(f"4676{i:07d}", b"paced %d" % i))
                  for i in range(first, min(COUNT, first + 50))]
        await asyncio.sleep(50 / OFFERED_PER_S)
    return list(await asyncio.gather(*tasks))


async def _bound(home: Path, timeout_s: float = 15.0) -> None:
    """Until the connector is bound (written once per interconnect refresh, 1 s): the queue
    measured is delivery's, not a start-up's."""
    end = asyncio.get_running_loop().time() + timeout_s
    while True:
        out = adressat(home, "connector", "list", "--json")
        if [c["state"] for c in json.loads(out.stdout)] == ["bound"]:
            return
        assert asyncio.get_running_loop().time() < end, out.stdout
        await asyncio.sleep(0.2)


def _run(home: Path, *run_args: str) -> tuple[int, str]:
    """The deepest ROUTED queue seen while the ESME submits, and the node's log."""
    def cli(*args: str) -> None:
        out = adressat(home, *args)
        assert out.returncode == 0, out.stderr

    cli("account", "add", "acme", "--password", "pw")

    async def go() -> tuple[int, str]:
        sink = PartnerSink(PartnerModes(receipt_delay_s=0.05), port=free_port())
        await sink.start()
        cli("connector", "add", "hub", "--host", "127.0.0.1", "--port", str(sink.port),
            "--system-id", "adressat", "--password", "pw", "--window", "20",
            "--throughput", "300")
        cli("route", "add", "out", "--prefix", "4676", "--via", "hub")
        server = ServerProcess(home, None, "--quiet-network", "--subscribers", "1000",
                               "--canary-interval-s", "0", *run_args)
        await asyncio.to_thread(server.start)
        await _bound(home)
        client = EsmeClient("127.0.0.1", server.port, "acme", "pw", window=100,
                            response_timeout_s=30.0)
        deepest = 0
        try:
            await client.connect()
            submits = asyncio.ensure_future(_offer(client))
            while not submits.done():
                deepest = max(deepest, await asyncio.to_thread(_routed, home / "adressat.db"))
                await asyncio.sleep(0.05)
            resps = await submits
            assert [r.command_status for r in resps] == [S.ESME_ROK] * COUNT
            ids = [str(r.fields["message_id"]) for r in resps]
            missing = await client.wait_receipts(ids, timeout_s=60.0)
            assert missing == set()
            per_id: dict[str, int] = {}
            for r in client.receipt_log:
                per_id[r.message_id or ""] = per_id.get(r.message_id or "", 0) + 1
            assert all(per_id[m] == 1 for m in ids), "a message receipted twice"
            got = sorted(s.destination for s in sink.submits)
            assert got == sorted(f"4676{i:07d}" for i in range(COUNT))  # each once
        finally:
            await client.close()
            close_all()
            server.stop()
            await sink.stop()
        return deepest, server.log_path.read_text()

    return asyncio.run(go())


def test_unpaced_the_queue_in_the_store_grows_with_the_offered_load(tmp_path: Path) -> None:
    deepest, log = _run(tmp_path / "home", "--ingress-pace-lag-s", "0")
    assert deepest >= 900, deepest
    assert "delivery behind on a route" not in log


def test_paced_the_queue_stays_short_and_nothing_is_lost(tmp_path: Path) -> None:
    deepest, log = _run(tmp_path / "home")
    assert deepest <= 300, deepest
    # seen and named, once for the episode (not at every turn of behind and caught up)
    said = [line for line in log.splitlines() if "delivery behind on a route" in line]
    assert len(said) == 1 and "WARNING" in said[0] and "route=out" in said[0], said[:3]
