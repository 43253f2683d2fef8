"""A partner operator binds to the running node (issue 11, "Partner binds in"): its account is
made with ``adressat account add NAME --partner --ranges ...``; a destination in its ranges
(judged on the E.164 number after normalisation) is accepted, delivered to a netsim handset
and receipted back to the partner as deliver_sm; one outside is refused ESME_RINVDSTADR and
nothing is stored. A plain account on the same node sends anywhere as before."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_kit import RawEsme, close_all, inbox, wait_for

from adressat.smpp.constants import CommandId as C
from adressat.smpp.constants import CommandStatus as S
from adressat.testing.esme import EsmeClient
from adressat.testing.server import ServerProcess, adressat

pytestmark = pytest.mark.slow

IN_RANGE = "46701000017"  # a netsim subscriber (46701000000 + 1000)
IN_RANGE_NATIONAL = "0701000018"  # national format, TON 2: 46701000018 in E.164
OUT_OF_RANGE = "46761234567"  # another operator's number
OUT_OF_RANGE_NATIONAL = "0761234568"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    home = tmp_path_factory.mktemp("partner") / "home"
    for args in (("account", "add", "tele2", "--password", "t2pw", "--partner",
                  "--ranges", "4670,4673"),
                 ("account", "add", "acme", "--password", "pw")):
        out = adressat(home, *args)
        assert out.returncode == 0, out.stderr
    srv = ServerProcess(home, None, "--quiet-network", "--subscribers", "1000").start()
    try:
        yield srv
    finally:
        close_all()
        srv.stop()


def _stored(home: Path, account: str) -> list[tuple[str, str]]:
    conn = sqlite3.connect(f"file:{home / 'adressat.db'}?mode=ro", uri=True)
    try:
        return [(r[0], r[1]) for r in conn.execute(
            "SELECT id, destination FROM messages WHERE account = ?", (account,))]
    finally:
        conn.close()


def test_partner_in_range_delivered_and_receipted_out_of_range_refused(
        server: ServerProcess) -> None:
    async def go() -> None:
        client = EsmeClient("127.0.0.1", server.port, "tele2", "t2pw", source_addr="46731112222",
                            source_ton=1, source_npi=1)
        await client.connect()
        try:
            ok = await client.submit(IN_RANGE, b"from a partner")
            ok_national = await client.submit(IN_RANGE_NATIONAL, b"national", dest_ton=2)
            bad = await client.submit(OUT_OF_RANGE, b"not ours")
            bad_national = await client.submit(OUT_OF_RANGE_NATIONAL, b"not ours", dest_ton=2)
            assert ok.command_status == S.ESME_ROK
            assert ok_national.command_status == S.ESME_ROK
            assert bad.command_status == S.ESME_RINVDSTADR
            assert bad_national.command_status == S.ESME_RINVDSTADR
            ids = [str(ok.fields["message_id"]), str(ok_national.fields["message_id"])]
            # delivered to the handsets, each receipted back to the partner as deliver_sm
            assert await client.wait_receipts(ids, timeout_s=20) == set()
            for mid in ids:
                assert client.receipts[mid].stat.value == "DELIVRD"
            handsets = {r.handset for r in client.receipt_log}
            assert handsets == {IN_RANGE, "46701000018"}
        finally:
            await client.close()

    asyncio.run(go())
    home = server.home
    assert [r.msisdn for r in inbox(home, IN_RANGE)] == [IN_RANGE]
    assert len(inbox(home, "46701000018")) == 1
    # the refused ones left nothing: no message, no receipt
    stored = _stored(home, "tele2")
    assert sorted(d for _, d in stored) == [IN_RANGE, "46701000018"]


def test_partner_submit_multi_refuses_only_the_destinations_out_of_range(
        server: ServerProcess) -> None:
    raw = RawEsme(server.port)
    assert raw.bind("tele2", "t2pw", C.BIND_TRANSMITTER).command_status == S.ESME_ROK
    good = "46701000031"
    dests = tuple({"dest_flag": 1, "dest_addr_ton": 1, "dest_addr_npi": 1,
                   "destination_addr": d} for d in (good, "46761234599"))
    r = raw.call(C.SUBMIT_MULTI, source_addr="46731112222", source_addr_ton=1,
                 source_addr_npi=1, dest_addresses=dests, short_message=b"multi")
    assert r.command_status == S.ESME_ROK
    uns = r.fields["unsuccess_smes"]
    assert [(u["destination_addr"], u["error_status_code"]) for u in uns] == [  # type: ignore[union-attr, index]
        ("46761234599", S.ESME_RINVDSTADR)]
    assert wait_for(lambda: len(inbox(server.home, good)) == 1, 15)
    # every destination out of range: the whole submit_multi refused, nothing stored
    before = len(_stored(server.home, "tele2"))
    r = raw.call(C.SUBMIT_MULTI, source_addr="46731112222", source_addr_ton=1,
                 source_addr_npi=1, dest_addresses=dests[1:], short_message=b"multi")
    assert r.command_status == S.ESME_RINVDSTADR
    assert len(_stored(server.home, "tele2")) == before
    raw.close()


def test_a_plain_account_is_not_limited_to_ranges(server: ServerProcess) -> None:
    async def go() -> int:
        client = EsmeClient("127.0.0.1", server.port, "acme", "pw")
        await client.connect()
        try:
            resp = await client.submit(OUT_OF_RANGE, b"elsewhere", registered_delivery=0)
            return int(resp.command_status)
        finally:
            await client.close()

    # accepted (and ended UNDELIVERABLE: no route to that operator yet), not refused
    assert asyncio.run(go()) == S.ESME_ROK
    assert [d for _, d in _stored(server.home, "acme")] == [OUT_OF_RANGE]
