"""The test kit's ESME (adressat.testing.esme) against the real server: bind, submit, receipts,
a refused bind, a dropped connection recorded as unknown outcome, reconnecting."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from adressat.smpp.constants import CommandStatus as S
from adressat.sms.receipt import ReceiptStat
from adressat.testing.esme import BindFailed, ConnectionLost, EsmeClient
from adressat.testing.server import ServerProcess, adressat


def test_esme_client_submits_reconnects_and_records(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert adressat(home, "account", "add", "demo", "--password", "demo").returncode == 0
    server = ServerProcess(home, None, "--quiet-network").start()

    async def scenario() -> None:
        bad = EsmeClient("127.0.0.1", server.port, "demo", "wrong")
        with pytest.raises(BindFailed) as e:
            await bad.connect()
        assert e.value.status == S.ESME_RBINDFAIL

        client = EsmeClient("127.0.0.1", server.port, "demo", "demo", window=10)
        await client.connect()
        resp = await client.submit("46701000001", b"one")
        mid = str(resp.fields["message_id"])
        recs = await client.submit_many(["46701000002", ("46701000003", b"three")])
        assert [r.acked for r in recs] == [True, True]
        ids = [mid, *(str(r.message_id) for r in recs)]
        assert await client.wait_receipts(ids, timeout_s=20) == set()
        assert all(client.receipts[i].stat is ReceiptStat.DELIVRD for i in ids)
        assert {r.handset for r in client.receipt_log} == {
            "46701000001", "46701000002", "46701000003"}

        # the server dies: the client notices; while disconnected nothing is sent
        await asyncio.to_thread(server.kill)
        await client.wait_disconnected()
        assert not client.connected
        with pytest.raises(ConnectionLost):
            await client.submit("46701000004")
        [rec] = await client.submit_many(["46701000004"])
        assert not rec.sent and not rec.unknown and rec not in client.submits

        await asyncio.to_thread(server.start)
        await client.connect(retry_for_s=10)
        resp = await client.submit("46701000005")
        assert resp.command_status == S.ESME_ROK
        assert client.stats()["acked"] == 4 and client.connections == 2
        await client.close()
        assert not client.connected

    try:
        asyncio.run(asyncio.wait_for(scenario(), 60))
    finally:
        server.stop()
