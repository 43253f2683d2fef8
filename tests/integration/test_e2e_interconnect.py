"""Other operators, against the running node (issue 11): ``adressat connector add`` and
``route add`` on a fresh home, ``adressat run``, an ESME submitting to numbers of another
operator, and a partner SMSC of our own (``adressat.testing.partner``) that behaves or
misbehaves: receipts at once and before the submit_sm_resp, ids in other spellings, one id
for every message, receipts for ids never given, a partner that vanishes mid-window, a
throttling one, a second connector to fail over to. Judged from the outside: what the
partner received, what the sender got back, and the store's own record."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_kit import close_all

from adressat.core.interconnect import SPELLING_EVIDENCE_MIN
from adressat.smpp.constants import CommandStatus as S
from adressat.testing.esme import EsmeClient
from adressat.testing.partner import PartnerModes, PartnerSink
from adressat.testing.server import ServerProcess, adressat, free_port

pytestmark = pytest.mark.slow

OUT = "4676"  # another operator's numbers


def _dest(n: int) -> str:
    return f"4676{n:07d}"


class Node:
    """A home with an account ``acme``, connectors and routes, and the running node."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.server: ServerProcess | None = None
        self.cli("account", "add", "acme", "--password", "pw")

    def cli(self, *args: str, ok: bool = True) -> Any:
        out = adressat(self.home, *args)
        if ok:
            assert out.returncode == 0, out.stderr
        return out

    def start(self, *args: str) -> ServerProcess:
        self.server = ServerProcess(self.home, None, "--quiet-network", "--subscribers", "1000",
                                    "--canary-interval-s", "0", "--retry-delays-s", "1,1,2",
                                    "--connector-reconnect-s-min", "0.1",
                                    "--connector-reconnect-s-max", "0.5", *args).start()
        return self.server

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    def db(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        conn = sqlite3.connect(f"file:{self.home / 'adressat.db'}?mode=ro", uri=True)
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    def states(self) -> dict[str, str]:
        return dict(self.db("SELECT id, state FROM messages WHERE account = 'acme'"))

    def alarms(self, kind: str) -> list[Any]:
        return self.db("SELECT kind, message_ids, detail FROM alarms WHERE kind = ?", (kind,))


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    n = Node(tmp_path / "home")
    try:
        yield n
    finally:
        close_all()
        n.stop()


async def _partner(modes: PartnerModes, port: int | None = None) -> PartnerSink:
    sink = PartnerSink(modes, port=port or free_port())
    await sink.start()
    return sink


async def _submit_all(port: int, count: int, first: int = 0) -> tuple[EsmeClient, list[str]]:
    client = EsmeClient("127.0.0.1", port, "acme", "pw", window=20)
    await client.connect()
    resps = await asyncio.gather(*(client.submit(_dest(first + i), b"interconnect %d" % i)
                                   for i in range(count)))
    assert all(r.command_status == S.ESME_ROK for r in resps)
    return client, [str(r.fields["message_id"]) for r in resps]


def _connect(node: Node, name: str, port: int, *extra: str) -> None:
    node.cli("connector", "add", name, "--host", "127.0.0.1", "--port", str(port),
             "--system-id", "adressat", "--password", "pw", "--window", "10", *extra)


async def _via_hub(node: Node, modes: PartnerModes, *run_args: str,
                   connector_args: tuple[str, ...] = ()) -> tuple[PartnerSink, ServerProcess]:
    """A partner with ``modes``, our connector ``hub`` to it, route ``out`` (4676...) through
    it, and the node running with ``run_args``."""
    sink = await _partner(modes)
    _connect(node, "hub", sink.port, *connector_args)
    node.cli("route", "add", "out", "--prefix", OUT, "--via", "hub")
    server = await asyncio.to_thread(node.start, *run_args)
    return sink, server


async def _receipts(client: EsmeClient, ids: list[str], timeout_s: float = 30.0) -> dict[str, str]:
    missing = await client.wait_receipts(ids, timeout_s=timeout_s)
    assert missing == set(), f"{len(missing)} receipts missing"
    # exactly one receipt per message to its sender, never a second
    per_id: dict[str, int] = {}
    for r in client.receipt_log:
        per_id[r.message_id or ""] = per_id.get(r.message_id or "", 0) + 1
    assert all(per_id[m] == 1 for m in ids), "a message receipted twice"
    return {m: client.receipts[m].stat.value for m in ids}


async def _connectors_when(node: Node, ok: Any, timeout_s: float = 10.0
                           ) -> dict[str, dict[str, Any]]:
    """``connector list`` by name once ``ok`` holds of it, else as last read: the delivery
    process writes the statuses once per interconnect refresh (1 s), so a read right after a
    change may still show the state before it."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while True:
        listed = json.loads(node.cli("connector", "list", "--json").stdout)
        by_name = {c["name"]: c for c in listed}
        if ok(by_name) or loop.time() > end:
            return by_name
        await asyncio.sleep(0.3)


def test_forwarded_then_delivered_with_receipts_and_every_hop_recorded(node: Node) -> None:
    async def go() -> None:
        sink, server = await _via_hub(node, PartnerModes(receipt_delay_s=0.2, id_style="hex"))
        client, ids = await _submit_all(server.port, 30)
        try:
            stats = await _receipts(client, ids)
            assert set(stats.values()) == {"DELIVRD"}
            # the partner got each message once, to the number the sender gave
            got = sorted((s.destination, s.content) for s in sink.submits)
            assert got == sorted((_dest(i), b"interconnect %d" % i) for i in range(30))
            assert set(node.states().values()) == {"DELIVERED"}
            # every message names its route, connector, operator and partner id
            show = json.loads(node.cli("message", "show", ids[0], "--json").stdout)
            assert (show["route"], show["connector"]) == ("out", "hub")
            assert show["partner_id"] and show["forwards"][0]["state"] == "DELIVERED"
            text = node.cli("message", "show", ids[0]).stdout
            assert "connector hub" in text and "partner id" in text
            hub = (await _connectors_when(
                node, lambda c: c["hub"]["state"] == "bound" and c["hub"]["sent"] >= 30))["hub"]
            assert hub["state"] == "bound" and hub["sent"] >= 30 and hub["fresh"] is True, hub
            # the audit takes the partner's receipts for evidence, not our handsets' inbox
            report = json.loads(node.cli("audit", "--json").stdout)
            assert report["lost"] == 0 and report["delivered_by_partner"] == 30
        finally:
            await client.close()
            await sink.stop()

    asyncio.run(go())


def test_receipts_at_once_and_before_the_response_in_other_spellings(node: Node) -> None:
    async def go() -> None:
        sink, server = await _via_hub(node, PartnerModes(
            receipt_delay_s=0.0, receipt_before_resp=True,
            id_style="hex_in_resp_decimal_in_receipt"))
        client, ids = await _submit_all(server.port, 60)
        try:
            stats = await _receipts(client, ids)
            assert set(stats.values()) == {"DELIVRD"}  # none lost, none misapplied
            assert node.alarms("partner_receipt_unmatched") == []
            assert node.db("SELECT COUNT(*) FROM partner_receipts_held") == [(0,)]
        finally:
            await client.close()
            await sink.stop()

    asyncio.run(go())


def test_one_id_for_every_message_is_alarmed_and_never_misapplied(node: Node) -> None:
    async def go() -> None:
        sink, server = await _via_hub(node, PartnerModes(receipt_delay_s=0.1, fixed_id="42"),
                                      "--forwarded-grace-s", "0")
        client = EsmeClient("127.0.0.1", server.port, "acme", "pw", window=5)
        await client.connect()
        try:
            # a validity of 4 s: with the partner's ids useless, each must end UNKNOWN
            resps = [await client.submit(_dest(i), b"same id", validity_period="000000000004000R")
                     for i in range(5)]
            ids = [str(r.fields["message_id"]) for r in resps]
            stats = await _receipts(client, ids, timeout_s=30)
            # the first message's receipt may match before the second took the id; never
            # another message's receipt applied to it, and the rest are UNKNOWN
            assert list(stats.values()).count("DELIVRD") <= 1
            assert stats[ids[-1]] == "UNKNOWN"
            # one alarm for the id (not one per message); its receipts counted, applied to none
            [(_, named, detail)] = node.alarms("partner_id_reused")
            assert "partner_id=42" in detail and len(json.loads(named)) == 2
            assert node.alarms("partner_receipt_unmatched") == []
        finally:
            await client.close()
            await sink.stop()

    asyncio.run(go())


def test_a_partner_counting_from_one_is_read_as_its_connector_says(node: Node) -> None:
    """Decimal ids from 1: under ``auto`` the receipt for "16" also reads as "10" and "22",
    other messages' ids, so it is applied to none (alarmed; those end UNKNOWN, never another
    message's outcome). ``connector set --receipt-ids same`` while running: every receipt
    finds its own message."""
    async def go() -> None:
        sink, server = await _via_hub(
            node, PartnerModes(receipt_delay_s=0.2, id_style="decimal", id_start=1),
            "--forwarded-grace-s", "0")
        client = EsmeClient("127.0.0.1", server.port, "acme", "pw", window=20)
        await client.connect()
        try:
            resps = await asyncio.gather(*(client.submit(
                _dest(i), b"counted %d" % i, validity_period="000000000004000R")
                for i in range(40)))
            ids = [str(r.fields["message_id"]) for r in resps]
            stats = await _receipts(client, ids, timeout_s=30)
            ambiguous = [m for m in ids if stats[m] == "UNKNOWN"]
            assert ambiguous and set(stats.values()) <= {"DELIVRD", "UNKNOWN"}, stats
            assert len(node.alarms("partner_receipt_unmatched")) >= len(ambiguous)
            # each DELIVERED message's receipt was its own: the id the partner gave it
            given = dict(node.db("SELECT message_id, partner_id FROM forwards"))
            assert len(set(given.values())) == len(given) == 40

            node.cli("connector", "set", "hub", "--receipt-ids", "same")
            shown = json.loads(node.cli("connector", "show", "hub", "--json").stdout)
            assert shown["config"]["receipt_ids"] == "same"
            await asyncio.sleep(2.5)  # the delivery process reads connectors every 1 s
            before = len(node.alarms("partner_receipt_unmatched"))
            resps = await asyncio.gather(*(client.submit(_dest(100 + i), b"counted %d" % i)
                                           for i in range(40)))
            later = [str(r.fields["message_id"]) for r in resps]
            stats = await _receipts(client, later, timeout_s=30)
            assert set(stats.values()) == {"DELIVRD"}, stats
            assert len(node.alarms("partner_receipt_unmatched")) == before
        finally:
            await client.close()
            await sink.stop()

    asyncio.run(go())


def test_auto_learns_the_partners_spelling_and_tells_later_ids_apart(node: Node) -> None:
    """A decimal partner from 40960: every receipt matches one message under its literal
    reading alone, so after SPELLING_EVIDENCE_MIN of them the connector trusts that
    spelling. Then the partner's counter reaches 264544, which written in hex is 40960 (the
    first message's id): each receipt reads as two messages, and goes to its own."""
    async def go() -> None:
        sink, server = await _via_hub(node, PartnerModes(receipt_delay_s=0.1))
        client = EsmeClient("127.0.0.1", server.port, "acme", "pw", window=20)
        await client.connect()
        try:
            first = [str(r.fields["message_id"]) for r in await asyncio.gather(*(
                client.submit(_dest(i), b"learn %d" % i)
                for i in range(SPELLING_EVIDENCE_MIN + 10)))]
            assert set((await _receipts(client, first)).values()) == {"DELIVRD"}
            assert "connector receipt spelling learned" in server.log_path.read_text()
            sink.modes.id_start = 264544 - len(first)  # the partner's next id is 264544
            later = [str(r.fields["message_id"]) for r in await asyncio.gather(*(
                client.submit(_dest(100 + i), b"told apart %d" % i) for i in range(30)))]
            assert set((await _receipts(client, later)).values()) == {"DELIVRD"}
            ids = dict(node.db("SELECT message_id, partner_id FROM forwards"))
            assert ids[later[0]] == "264544" and ids[first[0]] == "40960"
            assert node.alarms("partner_receipt_unmatched") == []
            assert set(node.states().values()) == {"DELIVERED"}
        finally:
            await client.close()
            await sink.stop()

    asyncio.run(go())


def test_receipts_for_ids_never_given_are_alarmed(node: Node) -> None:
    async def go() -> None:
        sink, server = await _via_hub(node, PartnerModes(receipt_delay_s=0.1, bogus_receipts=True),
                                      "--partner-receipt-hold-s", "1")
        client, ids = await _submit_all(server.port, 5)
        try:
            stats = await _receipts(client, ids)
            assert set(stats.values()) == {"DELIVRD"}
            for _ in range(100):
                if node.alarms("partner_receipt_unmatched"):
                    break
                await asyncio.sleep(0.1)
            [kind, message_ids, detail] = node.alarms("partner_receipt_unmatched")[0]
            assert "connector=hub" in detail and json.loads(message_ids) == []
        finally:
            await client.close()
            await sink.stop()

    asyncio.run(go())


def test_a_partner_that_vanishes_mid_window_loses_nothing(node: Node) -> None:
    async def go() -> None:
        sink, server = await _via_hub(
            node, PartnerModes(receipt_delay_s=0.1, vanish_after=8, resp_delay_s=0.05),
            "--connector-response-timeout-s", "2")
        client, ids = await _submit_all(server.port, 40)
        try:
            stats = await _receipts(client, ids, timeout_s=60)
            assert set(stats.values()) == {"DELIVRD"}
            assert sink.vanished == 1
            # a submit the partner got but never answered may be sent again, to it alone;
            # every message reached the partner, none more than twice
            counts: dict[str, int] = {}
            for s in sink.submits:
                counts[s.destination] = counts.get(s.destination, 0) + 1
            assert set(counts) == {_dest(i) for i in range(40)}
            assert max(counts.values()) <= 2
            assert sum(counts.values()) - 40 <= 10  # at most a window resent
        finally:
            await client.close()
            await sink.stop()

    asyncio.run(go())


def test_throttling_and_failover_to_the_second_connector(node: Node) -> None:
    async def go() -> None:
        throttled = await _partner(PartnerModes(receipt_delay_s=0.1, throttle_every=3))
        down_port = free_port()  # nothing listens: "a" never binds
        _connect(node, "a", down_port)
        _connect(node, "b", throttled.port)
        node.cli("route", "add", "out", "--prefix", OUT, "--via", "a,b")
        server = await asyncio.to_thread(node.start, "--connector-down-s-max", "1")
        client, ids = await _submit_all(server.port, 30)
        try:
            stats = await _receipts(client, ids, timeout_s=60)
            assert set(stats.values()) == {"DELIVRD"}
            assert {s.destination for s in throttled.submits} == {_dest(i) for i in range(30)}
            accepted = [s for s in throttled.submits if s.status == 0]
            assert len(accepted) == 30  # each accepted exactly once
            rows = node.db("SELECT DISTINCT connector FROM forwards")
            assert rows == [("b",)]
            listed = await _connectors_when(node, lambda c: c["b"]["state"] == "bound")
            states = {name: c["state"] for name, c in listed.items()}
            assert states["a"] in ("down", "connecting") and states["b"] == "bound", states
            # heal or shout: a connector down is an episode, and the node says so
            for _ in range(50):
                status = node.cli("status", "--json", ok=False)
                if "connector_down" in status.stdout:
                    break
                await asyncio.sleep(0.2)
            assert status.returncode != 0 and "connector_down" in status.stdout
            report = json.loads(status.stdout)
            assert "connector_down: a" in json.dumps(report)
        finally:
            await client.close()
            await throttled.stop()

    asyncio.run(go())


def test_a_permanent_refusal_ends_undeliverable_with_the_partners_status(node: Node) -> None:
    async def go() -> None:
        sink, server = await _via_hub(node, PartnerModes(
            receipt_delay_s=0.1, refuse={"46769": int(S.ESME_RINVDSTADR)}))
        client = EsmeClient("127.0.0.1", server.port, "acme", "pw")
        await client.connect()
        try:
            r = await client.submit("46769000001", b"refused")
            mid = str(r.fields["message_id"])
            stats = await _receipts(client, [mid])
            assert stats[mid] == "UNDELIV"
            show = json.loads(node.cli("message", "show", mid, "--json").stdout)
            assert show["state"] == "UNDELIVERABLE" and show["error"] == 40
            assert show["partner_status"] == int(S.ESME_RINVDSTADR)
        finally:
            await client.close()
            await sink.stop()

    asyncio.run(go())


def test_a_route_added_while_running_takes_effect_without_a_restart(node: Node) -> None:
    async def go() -> None:
        sink = await _partner(PartnerModes(receipt_delay_s=0.1))
        server = await asyncio.to_thread(node.start)
        client = EsmeClient("127.0.0.1", server.port, "acme", "pw")
        await client.connect()
        try:
            before = await client.submit(_dest(1), b"no route yet")
            mid = str(before.fields["message_id"])
            assert (await _receipts(client, [mid]))[mid] == "UNDELIV"  # unroutable
            _connect(node, "hub", sink.port)
            node.cli("route", "add", "out", "--prefix", OUT, "--via", "hub")
            await asyncio.sleep(2.5)  # "within 2 s": both processes poll every second
            after = await client.submit(_dest(2), b"routed now")
            mid = str(after.fields["message_id"])
            assert (await _receipts(client, [mid]))[mid] == "DELIVRD"
            assert [s.destination for s in sink.submits] == [_dest(2)]
        finally:
            await client.close()
            await sink.stop()

    asyncio.run(go())


def test_a_partners_message_never_goes_back_to_it_and_hops_are_limited(node: Node) -> None:
    async def go() -> None:
        back = await _partner(PartnerModes(receipt_delay_s=0.1))
        other = await _partner(PartnerModes(receipt_delay_s=0.1))
        node.cli("account", "add", "tele2", "--password", "t2pw", "--partner",
                 "--ranges", "4676,4670")
        _connect(node, "tele2", back.port)  # our connector to the same operator
        _connect(node, "hub", other.port)
        node.cli("route", "add", "only-back", "--prefix", "46761", "--via", "tele2")
        node.cli("route", "add", "out", "--prefix", OUT, "--via", "tele2,hub")
        server = await asyncio.to_thread(node.start)
        client = EsmeClient("127.0.0.1", server.port, "tele2", "t2pw")
        await client.connect()
        try:
            looped = await client.submit("46761000001", b"would loop")
            around = await client.submit("46762000001", b"goes around")
            far = await client.submit("46762000002", b"many hops", tlvs={"adressat_hops": 5})
            ids = [str(r.fields["message_id"]) for r in (looped, around, far)]
            stats = await _receipts(client, ids)
            assert stats == {ids[0]: "UNDELIV", ids[1]: "DELIVRD", ids[2]: "UNDELIV"}
            assert list(back.submits) == []  # nothing went back to the partner it came from
            [sent] = other.submits
            assert sent.destination == "46762000001"
            assert dict(sent.tlvs).get(0x14AD) == 1  # our hop, counted for the next SMSC
            for mid in (ids[0], ids[2]):
                show = json.loads(node.cli("message", "show", mid, "--json").stdout)
                assert show["error"] == 45  # ROUTING_LOOP
        finally:
            await client.close()
            await back.stop()
            await other.stop()

    asyncio.run(go())
