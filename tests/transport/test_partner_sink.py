"""The partner sink's modes, judged from the client side (our test ESME and raw PDUs), so the
connector and end-to-end tests can rely on them."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from transport_kit import run, until

from adressat.smpp.codec import PduReader, encode
from adressat.smpp.constants import CommandId as C
from adressat.smpp.constants import CommandStatus as S
from adressat.smpp.pdus import Pdu
from adressat.testing.esme import EsmeClient
from adressat.testing.partner import ID_STYLES, PartnerModes, PartnerSink, main

SRC = Path(__file__).resolve().parents[2] / "src"


async def _esme(port: int, system_id: str = "acme") -> EsmeClient:
    client = EsmeClient("127.0.0.1", port, system_id, "pw", window=20)
    await client.connect()
    return client


async def _one(modes: PartnerModes, n: int = 1) -> tuple[list[str], list[str | None]]:
    """Submit ``n`` with receipts; (ids in the responses, ids the receipts named)."""
    sink = PartnerSink(modes)
    port = await sink.start()
    client = await _esme(port)
    resp_ids = []
    for _ in range(n):
        resp = await client.submit("46731234567", b"x")
        resp_ids.append(str(resp.fields["message_id"]))
    assert await until(lambda: len(client.receipt_log) >= n, 3.0)
    await client.close()
    await sink.stop()
    receipt_ids = [r.receipt.id if r.receipt else None for r in client.receipt_log]
    tlv_ids = [r.message_id for r in client.receipt_log]
    assert receipt_ids == tlv_ids  # text and receipted_message_id agree
    return resp_ids, receipt_ids


EXPECTED = {
    "decimal": (["40960", "40961"], ["40960", "40961"]),
    "hex": (["a000", "a001"], ["a000", "a001"]),
    "hex_upper": (["A000", "A001"], ["A000", "A001"]),
    "zero_padded": (["0000040960", "0000040961"], ["0000040960", "0000040961"]),
    "hex_in_resp_decimal_in_receipt": (["a000", "a001"], ["40960", "40961"]),
    "zero_padded_in_resp_plain_in_receipt": (["0000040960", "0000040961"],
                                             ["40960", "40961"]),
}


@pytest.mark.parametrize("style", ID_STYLES)
def test_id_styles(style: str) -> None:
    got = run(_one(PartnerModes(receipt_delay_s=0.0, id_style=style), n=2))
    assert got == EXPECTED[style]


def test_fixed_id_for_every_submit() -> None:
    resp_ids, receipt_ids = run(_one(PartnerModes(receipt_delay_s=0.0, fixed_id="1"), n=3))
    assert resp_ids == ["1", "1", "1"] and receipt_ids == ["1", "1", "1"]


def test_no_receipts_by_default_nor_when_not_requested() -> None:
    async def go() -> None:
        sink = PartnerSink()
        port = await sink.start()
        client = await _esme(port)
        await client.submit("46731234567", b"x")
        sink.modes.receipt_delay_s = 0.0  # changed at run time
        await client.submit("46731234567", b"x", registered_delivery=0)
        await client.submit("46731234567", b"x")
        assert await until(lambda: len(client.receipt_log) == 1, 2.0)
        await asyncio.sleep(0.1)
        assert len(client.receipt_log) == 1
        assert client.receipt_log[0].message_id == sink.submits[2].message_id
        await client.close()
        await sink.stop()

    run(go())


def test_receipt_text_tlvs_and_stat() -> None:
    async def go() -> None:
        sink = PartnerSink(PartnerModes(receipt_delay_s=0.0, receipt_stat="UNDELIV",
                                        receipt_err="012"))
        port = await sink.start()
        client = await _esme(port)
        await client.submit("46731234567", b"x")
        assert await until(lambda: len(client.receipt_log) == 1, 2.0)
        r = client.receipt_log[0]
        assert r.receipt is not None
        assert (r.receipt.stat, r.receipt.err, r.receipt.sub, r.receipt.dlvrd) == (
            "UNDELIV", "012", 1, 0)
        assert r.message_state == 5 and r.handset == "46731234567"
        assert r.destination == "adressat"  # the submit's source
        sink.modes.receipt_tlvs = False
        await client.submit("46731234567", b"x")
        assert await until(lambda: len(client.receipt_log) == 2, 2.0)
        assert client.receipt_log[1].message_state is None  # text only
        await client.close()
        await sink.stop()

    run(go())


def test_receipt_before_resp_on_the_wire() -> None:
    async def go() -> list[int]:
        sink = PartnerSink(PartnerModes(receipt_before_resp=True))
        port = await sink.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(encode(Pdu.make(C.BIND_TRANSCEIVER, 1, system_id="a", password="b",
                                     interface_version=0x34)))
        pdus: list[Pdu] = []
        r = PduReader()
        while not pdus:  # bound first: a submit_sm before the bind_resp would be refused
            data = await asyncio.wait_for(reader.read(4096), 2.0)
            assert data
            r.feed(data)
            pdus.extend(r)
        writer.write(encode(Pdu.make(C.SUBMIT_SM, 2, destination_addr="4673",
                                     registered_delivery=1, short_message=b"x")))
        while len(pdus) < 3:
            data = await asyncio.wait_for(reader.read(4096), 2.0)
            assert data
            r.feed(data)
            pdus.extend(r)
        writer.close()
        await sink.stop()
        return [p.command_id for p in pdus]

    assert run(go()) == [C.BIND_TRANSCEIVER_RESP, C.DELIVER_SM, C.SUBMIT_SM_RESP]


def test_bogus_receipts_name_ids_never_given() -> None:
    async def go() -> None:
        sink = PartnerSink(PartnerModes(receipt_delay_s=0.0, bogus_receipts=True))
        port = await sink.start()
        client = await _esme(port)
        given = {str((await client.submit("4673", b"x")).fields["message_id"])
                 for _ in range(2)}
        assert await until(lambda: len(client.receipt_log) == 4, 2.0)
        named = [r.message_id for r in client.receipt_log]
        assert given < set(named)
        assert len([m for m in named if m not in given]) == 2
        assert sum(r.bogus for r in sink.receipts) == 2
        await client.close()
        await sink.stop()

    run(go())


def test_receipts_on_another_session_of_the_same_system_id_round_robin() -> None:
    async def go() -> None:
        sink = PartnerSink(PartnerModes(receipt_delay_s=0.0, receipt_other_session=True))
        port = await sink.start()
        a, b, c = await _esme(port), await _esme(port), await _esme(port)
        other = await _esme(port, system_id="other")
        for _ in range(4):
            await a.submit("4673", b"x")
        assert await until(lambda: len(b.receipt_log) + len(c.receipt_log) == 4, 2.0)
        assert len(a.receipt_log) == 0 and len(other.receipt_log) == 0
        assert len(b.receipt_log) == 2 and len(c.receipt_log) == 2
        for cl in (a, b, c, other):
            await cl.close()
        await sink.stop()

    run(go())


def test_receipt_waits_for_a_receiver_to_bind() -> None:
    async def go() -> None:
        sink = PartnerSink(PartnerModes(receipt_delay_s=0.05))
        port = await sink.start()
        tx = EsmeClient("127.0.0.1", port, "acme", "pw", bind="transmitter")
        await tx.connect()
        mid = str((await tx.submit("4673", b"x")).fields["message_id"])
        await asyncio.sleep(0.15)  # due, but nobody receives
        rx = EsmeClient("127.0.0.1", port, "acme", "pw", bind="receiver")
        await rx.connect()
        assert await until(lambda: len(rx.receipt_log) == 1, 2.0)
        assert rx.receipt_log[0].message_id == mid
        await tx.close()
        await rx.close()
        await sink.stop()

    run(go())


def test_vanish_throttle_refuse_and_bind_checks() -> None:
    async def go() -> None:
        sink = PartnerSink(PartnerModes(throttle_every=3, refuse={"4699": S.ESME_RINVDSTADR}),
                           system_id="acme", password="pw")
        port = await sink.start()
        bad = EsmeClient("127.0.0.1", port, "acme", "nope")
        with pytest.raises(ConnectionError, match="ESME_RINVPASWD"):
            await bad.connect()
        client = await _esme(port)
        statuses = [(await client.submit(d, b"x")).command_status
                    for d in ("4673", "4699", "4673", "4673")]
        assert statuses == [0, S.ESME_RINVDSTADR, S.ESME_RTHROTTLED, 0]
        sink.modes.vanish_after = 6
        await client.submit("4673", b"x")
        recs = await client.submit_many(["4673", "4673"])
        assert [r.status for r in recs] == [None, None]  # the 6th and after: no answer
        assert sink.vanished == 1 and sink.modes.vanish_after is None
        assert sink.submits[-1].status is None
        await client.connect()  # the sink still listens and answers again
        assert (await client.submit("4673", b"x")).command_status == 0
        await client.close()
        await sink.stop()

    run(go())


def test_bad_modes_are_refused() -> None:
    with pytest.raises(ValueError, match="id_style"):
        PartnerSink(PartnerModes(id_style="octal"))
    with pytest.raises(ValueError, match="receipt_stat"):
        PartnerSink(PartnerModes(receipt_stat="FINE"))
    assert main(["--port", "1", "--vanish-after", "0"]) == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_standalone_process() -> None:
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(SRC))
    proc = subprocess.Popen(
        [sys.executable, "-m", "adressat.testing.partner", "--port", str(port),
         "--receipt-delay-s", "0", "--id-style", "hex", "--log-format", "json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        async def go() -> None:
            client = EsmeClient("127.0.0.1", port, "acme", "pw")
            await client.connect(retry_for_s=5.0, retry_interval_s=0.05)
            resp = await client.submit("4673", b"x")
            assert resp.fields["message_id"] == "a000"
            assert await until(lambda: len(client.receipt_log) == 1, 3.0)
            await client.close()

        run(go())
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=5)
    assert proc.returncode == 0
    assert out == ""  # nothing but logs (on stderr)
    assert '"event":"partner listening"' in err


def test_stop_and_restart_on_the_same_port() -> None:
    async def go() -> None:
        sink = PartnerSink()
        port = await sink.start()
        client = await _esme(port)
        await sink.stop()
        assert await until(lambda: not client.connected, 2.0)
        t0 = time.monotonic()
        assert await sink.start() == port
        await client.connect(retry_for_s=2.0)
        assert time.monotonic() - t0 < 2.0
        await client.close()
        await sink.stop()

    run(go())


def test_receipts_not_sent_survive_a_restart_unless_lost() -> None:
    async def go(lose: bool) -> int:
        sink = PartnerSink(PartnerModes(receipt_delay_s=0.2))
        port = await sink.start()
        client = await _esme(port)
        await client.submit("4673", b"x")
        await sink.stop(lose_receipts=lose)  # before the receipt was due
        await sink.start()
        await client.connect(retry_for_s=2.0)
        await until(lambda: len(client.receipt_log) == 1, 1.0)
        n = len(client.receipt_log)
        await client.close()
        await sink.stop()
        return n

    assert run(go(False)) == 1
    assert run(go(True)) == 0
