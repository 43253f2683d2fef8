"""The benchmark's lean load client (adressat.testing.load) against the real server: windowed
and paced submits, receipts matched by receipted_message_id, a refused bind; and its
submit_sm bytes are what the project's own codec decodes."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import pytest

from adressat.smpp.codec import decode
from adressat.smpp.constants import CommandId as C
from adressat.testing.load import LoadClient
from adressat.testing.server import ServerProcess, adressat


def test_submit_sm_bytes_decode_as_intended() -> None:
    async def build() -> list[bytes]:
        client = LoadClient(source_addr="bench")
        return client._bodies_for(["46701000007"], 1, b"hi")

    [body] = asyncio.run(build())
    pdu = decode(struct.pack(">IIII", 16 + len(body), C.SUBMIT_SM, 0, 9) + body)
    f = pdu.fields
    assert (pdu.command_id, pdu.sequence_number) == (C.SUBMIT_SM, 9)
    assert (f["source_addr_ton"], f["source_addr_npi"], f["source_addr"]) == (5, 0, "bench")
    assert (f["dest_addr_ton"], f["dest_addr_npi"], f["destination_addr"]) == (
        1, 1, "46701000007")
    assert (f["registered_delivery"], f["short_message"], pdu.tlvs) == (1, b"hi", ())


def test_load_client_against_the_server(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert adressat(home, "account", "add", "bench", "--password", "bench").returncode == 0
    server = ServerProcess(home, None, "--quiet-network", "--subscribers", "1000").start()

    async def scenario() -> None:
        with pytest.raises(ConnectionError):
            await LoadClient.connect("127.0.0.1", server.port, "bench", "wrong")
        client = await LoadClient.connect("127.0.0.1", server.port, "bench", "bench")
        dests = [str(46701000000 + i) for i in range(300)]
        run = await client.submit_all(dests, registered_delivery=1, window=20)
        assert len(run.acked()) == 300 and len(set(run.message_ids())) == 300
        assert all(a >= s > 0 for a, s in zip(run.answered_at, run.sent_at, strict=True))
        assert await client.wait_receipts(run.message_ids(), timeout_s=30) == set()
        assert {client.receipts[m] for m in run.message_ids()} == {"DELIVRD"}
        # paced: no earlier than the rate allows
        paced = await client.submit_all(dests[:50], window=20, rate_per_s=500.0)
        assert len(paced.acked()) == 50
        assert paced.sent_at[-1] - paced.started_at >= 49 / 500.0 - 0.001
        # an invalid destination is refused, not acked
        bad = await client.submit_all(["12"], window=1)
        assert bad.status[0] > 0 and bad.message_ids() == []
        assert client.violations == 0
        await client.close()

    try:
        asyncio.run(asyncio.wait_for(scenario(), 90))
    finally:
        server.stop()
