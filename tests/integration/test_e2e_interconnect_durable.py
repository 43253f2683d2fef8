"""Partner receipts correlated durably, against the running node (issue 11): the mapping of a
forwarded message survives a kill -9 of the node and its receipt, sent after the restart,
still ends it and reaches the sender; a receipt on another session of the connector (a
transmitter and a receiver bound side by side) correlates; a long message goes to the
partner as parts and is DELIVERED only when every part is, or says which part failed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_kit import close_all
from test_e2e_interconnect import Node, _dest, _receipts, _via_hub

from adressat.smpp.constants import CommandStatus as S
from adressat.testing.esme import EsmeClient
from adressat.testing.partner import PartnerModes

pytestmark = pytest.mark.slow


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    n = Node(tmp_path / "home")
    try:
        yield n
    finally:
        close_all()
        n.stop()


def test_the_mapping_survives_a_kill_9_and_the_late_receipt_still_ends_it(node: Node) -> None:
    async def go() -> None:
        sink, server = await _via_hub(node, PartnerModes(receipt_delay_s=4.0))
        client = EsmeClient("127.0.0.1", server.port, "acme", "pw")
        await client.connect()
        try:
            resps = [await client.submit(_dest(i), b"before the crash") for i in range(5)]
            ids = [str(r.fields["message_id"]) for r in resps]
            for _ in range(100):  # all handed over and waiting for the partner
                if set(node.states().values()) == {"FORWARDED"} and len(sink.submits) == 5:
                    break
                await asyncio.sleep(0.05)
            assert set(node.states().values()) == {"FORWARDED"}
            await client.close()
            await asyncio.to_thread(server.kill)  # kill -9, receipts not yet sent
            server = await asyncio.to_thread(node.start)
            client = EsmeClient("127.0.0.1", server.port, "acme", "pw")
            await client.connect()
            stats = await _receipts(client, ids, timeout_s=30)
            assert set(stats.values()) == {"DELIVRD"}
            assert len(sink.submits) == 5  # nothing sent again: FORWARDED is never resent
        finally:
            await client.close()
            await sink.stop()

    asyncio.run(go())


def test_receipts_on_the_receiver_session_of_a_tx_connector(node: Node) -> None:
    async def go() -> None:
        sink, server = await _via_hub(
            node, PartnerModes(receipt_delay_s=0.1, receipt_other_session=True,
                               id_style="zero_padded"), connector_args=("--bind", "tx"))
        client = EsmeClient("127.0.0.1", server.port, "acme", "pw", window=10)
        await client.connect()
        try:
            resps = await asyncio.gather(*(client.submit(_dest(i), b"tx and rx")
                                           for i in range(20)))
            ids = [str(r.fields["message_id"]) for r in resps]
            stats = await _receipts(client, ids)
            assert set(stats.values()) == {"DELIVRD"}
            binds = {b for _, b, _ in sink.binds}
            assert len(binds) == 2  # a transmitter and a receiver
            # every receipt came on a session other than its submit's
            assert all(r.session != s.session for s in sink.submits for r in sink.receipts
                       if r.message_id == s.message_id)
        finally:
            await client.close()
            await sink.stop()

    asyncio.run(go())


def test_a_long_message_as_parts_delivered_only_when_every_part_is(node: Node) -> None:
    async def go() -> None:
        sink, server = await _via_hub(node, PartnerModes(receipt_delay_s=0.1))
        client = EsmeClient("127.0.0.1", server.port, "acme", "pw")
        await client.connect()
        try:
            text = b"x" * 400  # three parts of 7-bit text
            ok = await client.submit(_dest(1), b"", tlvs={"message_payload": text})
            assert ok.command_status == S.ESME_ROK
            mid = str(ok.fields["message_id"])
            assert (await _receipts(client, [mid]))[mid] == "DELIVRD"
            parts = [s for s in sink.submits if s.destination == _dest(1)]
            assert len(parts) == 3 and all(p.esm_class & 0x40 for p in parts)
            assert b"".join(p.content[6:] for p in parts) == text
            shown = json.loads(node.cli("message", "show", mid, "--json").stdout)
            assert [f["state"] for f in shown["forwards"]] == ["DELIVERED"] * 3
            # one part the partner says it could not deliver: the message is not DELIVERED
            sink.modes.receipt_stat = "UNDELIV"
            bad = await client.submit(_dest(2), b"", tlvs={"message_payload": text})
            bid = str(bad.fields["message_id"])
            assert (await _receipts(client, [bid]))[bid] == "UNDELIV"
            shown = json.loads(node.cli("message", "show", bid, "--json").stdout)
            assert shown["state"] == "UNDELIVERABLE" and shown["failed_part"] == 1
        finally:
            await client.close()
            await sink.stop()

    asyncio.run(go())
