"""netsim MT-ForwardSM: round trip with the handset's identity, absent -> alert, memory full,
duplicates (same TP-OA and TP-SCTS) stored once, stale IMSI/node refused."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from adressat.netsim import (
    Absent,
    Ack,
    Failure,
    FailureReason,
    NetsimSettings,
    NetSms,
    Network,
    Reachability,
    read_inbox,
)
from adressat.netsim.inbox import HEADER_V1, inbox_path, legacy_record_line
from adressat.sms import encode_scts
from adressat.sms.segment import ConcatInfo, concat_udh

T = 1_700_000_000


class Clock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def sms(
    ref: int = 1, text: bytes = b"code 1234", originator: str = "MyBank", msg_id: str = "m1"
) -> NetSms:
    """An SMS-DELIVER stamped ``ref`` seconds after ``T`` (TP-SCTS)."""
    return NetSms(originator, encode_scts(T + ref), 0, text, msg_id, "d")


def test_lookup_forward_round_trip(tmp_path: Path) -> None:
    net = Network(tmp_path, NetsimSettings.quiet(subscribers=1000), clock=Clock())
    info = net.register.lookup("46701000123")
    ack = asyncio.run(net.forward_sm(info.imsi, info.node, sms(msg_id="abc")))
    assert ack == Ack(info.imsi, "46701000123")
    assert net.register.identity("46701000123") == ack.imsi
    records = net.inbox_of("46701000123")
    assert len(records) == 1
    r = records[0]
    assert (r.imsi, r.originator, r.scts, r.part, r.smsc_message_id, r.duplicate) == (
        info.imsi,
        "MyBank",
        encode_scts(T + 1),
        0,
        "abc",
        False,
    )
    assert r.message_reference is None
    assert r.node == info.node
    import hashlib

    assert r.content_sha256 == hashlib.sha256(b"code 1234").hexdigest()
    assert list(read_inbox(tmp_path, msisdn="46701000124")) == []
    assert net.stats.acked == 1
    net.close()


def test_the_ack_names_the_handset_not_the_request(tmp_path: Path) -> None:
    """Addressed by IMSI only: the ack comes from whoever holds that IMSI."""
    net = Network(tmp_path, NetsimSettings.quiet(subscribers=1000), clock=Clock())
    other = net.register.lookup("46701000777")
    ack = asyncio.run(net.forward_sm(other.imsi, other.node, sms()))
    assert isinstance(ack, Ack) and ack.msisdn == "46701000777"
    net.close()


def test_absent_then_back_fires_alert(tmp_path: Path) -> None:
    clock = Clock()
    net = Network(
        tmp_path,
        NetsimSettings(
            subscribers=20_000,
            absent_fraction=0.05,
            ack_latency_ms_max=0,
            ack_latency_ms_min=0,
            slow_ack_fraction=0,
        ),
        clock=clock,
    )
    reg = net.register
    absent = [
        i
        for i in range(20_000)
        if reg.state_of(i, clock.t).reachability is Reachability.ABSENT
        and reg.state_of(i, clock.t).reason is not None
        and reg.state_of(i, clock.t).reason.value == "no_paging_response"
    ]
    assert absent, "the seeded model should have absent subscribers"
    msisdn = reg.msisdn_of(absent[0])
    alerts: list[str] = []
    net.on_alert(alerts.append)
    info = reg.lookup(msisdn)  # the register does not know yet (no paging response)
    result = asyncio.run(net.forward_sm(info.imsi, info.node, sms()))
    assert result == Failure(FailureReason.ABSENT_SUBSCRIBER, permanent=False)
    assert result.temporary
    with pytest.raises(Absent):  # now flagged (MNRF)
        reg.lookup(msisdn)
    assert net.process_due() == [] and alerts == []
    until = reg.state(msisdn).until
    assert until is not None and until > clock.t
    clock.t = until + 0.001
    assert net.process_due() == [msisdn]
    assert alerts == [msisdn]
    assert net.process_due() == [] and alerts == [msisdn]  # once
    info = reg.lookup(msisdn)
    assert isinstance(asyncio.run(net.forward_sm(info.imsi, info.node, sms())), Ack)
    net.close()


def test_memory_full_clears_and_alerts(tmp_path: Path) -> None:
    clock = Clock()
    net = Network(tmp_path, NetsimSettings.quiet(subscribers=100), clock=clock)
    alerts: list[str] = []
    net.on_alert(alerts.append)
    msisdn = "46701000010"
    info = net.register.lookup(msisdn)
    net.register.set_memory_full(msisdn, until=clock.t + 60)
    result = asyncio.run(net.forward_sm(info.imsi, info.node, sms()))
    assert result == Failure(FailureReason.MEMORY_CAPACITY_EXCEEDED, False)
    clock.t += 30
    assert net.process_due() == []
    clock.t += 31
    assert net.process_due() == [msisdn] and alerts == [msisdn]
    net.close()


def test_attach_alerts_at_once_and_unsubscribe(tmp_path: Path) -> None:
    clock = Clock()
    net = Network(tmp_path, NetsimSettings.quiet(subscribers=100), clock=clock)
    alerts: list[str] = []
    stop = net.on_alert(alerts.append)
    msisdn = "46701000011"
    info = net.register.lookup(msisdn)
    net.register.detach(msisdn)  # switched off, no end known
    assert asyncio.run(net.forward_sm(info.imsi, info.node, sms())).reason is (
        FailureReason.ABSENT_SUBSCRIBER
    )
    clock.t += 10_000
    assert net.process_due() == []
    net.register.attach(msisdn)
    assert net.process_due() == [msisdn] and alerts == [msisdn]
    stop()
    net.register.detach(msisdn)
    asyncio.run(net.forward_sm(info.imsi, info.node, sms()))
    net.register.attach(msisdn)
    assert net.process_due() == [msisdn] and alerts == [msisdn]
    net.close()


def test_background_task_fires_alerts(tmp_path: Path) -> None:
    clock = Clock()
    net = Network(
        tmp_path, NetsimSettings.quiet(subscribers=100, alert_poll_interval_s=0.01), clock=clock
    )
    msisdn = "46701000012"

    async def main() -> list[str]:
        got: asyncio.Queue[str] = asyncio.Queue()
        net.on_alert(got.put_nowait)
        net.start()
        info = net.register.lookup(msisdn)
        net.register.detach(msisdn, until=clock.t + 5)
        assert isinstance(await net.forward_sm(info.imsi, info.node, sms()), Failure)
        clock.t += 6
        first = await asyncio.wait_for(got.get(), 2.0)
        await net.aclose()
        return [first]

    assert asyncio.run(main()) == [msisdn]


def test_duplicate_stored_once_and_counted(tmp_path: Path) -> None:
    net = Network(tmp_path, NetsimSettings.quiet(subscribers=100), clock=Clock())
    info = net.register.lookup("46701000020")

    async def main() -> list[Ack | Failure]:
        return [
            await net.forward_sm(info.imsi, info.node, sms(ref=7, msg_id="a")),
            await net.forward_sm(info.imsi, info.node, sms(ref=7, msg_id="a")),  # retry
            await net.forward_sm(info.imsi, info.node, sms(ref=8, msg_id="b")),
            await net.forward_sm(info.imsi, info.node, sms(ref=7, originator="Shop")),
        ]

    results = asyncio.run(main())
    assert all(isinstance(r, Ack) for r in results)  # a handset acks a duplicate too
    records = net.inbox_of("46701000020")
    assert [r.duplicate for r in records] == [False, True, False, False]
    assert net.stats.duplicates == 1
    stored = [r for r in records if not r.duplicate]
    assert len(stored) == 3
    net.close()


def test_duplicate_memory_survives_restart(tmp_path: Path) -> None:
    net = Network(tmp_path, NetsimSettings.quiet(subscribers=100), clock=Clock())
    info = net.register.lookup("46701000021")
    asyncio.run(net.forward_sm(info.imsi, info.node, sms(ref=9)))
    net.close()  # "crash" and restart: the SMSC retries
    again = Network(tmp_path, NetsimSettings.quiet(subscribers=100), clock=Clock())
    asyncio.run(again.forward_sm(info.imsi, info.node, sms(ref=9)))
    assert [r.duplicate for r in again.inbox_of("46701000021")] == [False, True]
    assert again.stats.duplicates == 1
    again.close()


def test_identical_text_with_distinct_stamps_is_two_messages(tmp_path: Path) -> None:
    """The bug class of the old TP-MR hash: the same text from one sender to one number,
    twice within one second, is two messages; the SC stamps them a second apart (TS 23.040
    6.2) and the handset keeps both. A resend (same TP-OA, same TP-SCTS) is recognised,
    whatever its SMSC-side dialogue."""
    net = Network(tmp_path, NetsimSettings.quiet(subscribers=100), clock=Clock())
    info = net.register.lookup("46701000022")

    async def main() -> None:
        for ref, msg_id in ((0, "a"), (1, "b"), (0, "a"), (1, "b")):
            await net.forward_sm(info.imsi, info.node, sms(ref=ref, msg_id=msg_id))

    asyncio.run(main())
    records = net.inbox_of("46701000022")
    assert [(r.smsc_message_id, r.duplicate) for r in records] == [
        ("a", False), ("b", False), ("a", True), ("b", True)
    ]
    assert len({r.content_sha256 for r in records}) == 1
    net.close()


def test_a_resend_is_the_same_stamp_and_the_same_content(tmp_path: Path) -> None:
    # one TP-OA, one TP-SCTS and the same content: the same SMS-DELIVER (a resend, stored
    # once); the same stamp with another text is another SMS. Stamps are per number, so after
    # a fault that put another number's SMS on this handset (a node that mixes or doubles
    # deliveries) its own next SMS may carry that stamp too: it must not be taken for a
    # resend and lost (the chaos suite found one such loss when only the stamp counted)
    net = Network(tmp_path, NetsimSettings.quiet(subscribers=100), clock=Clock())
    info = net.register.lookup("46701000024")

    async def main() -> None:
        await net.forward_sm(info.imsi, info.node, sms(ref=5, text=b"one", msg_id="x"))
        await net.forward_sm(info.imsi, info.node, sms(ref=5, text=b"two", msg_id="y"))
        await net.forward_sm(info.imsi, info.node, sms(ref=5, text=b"one", msg_id="x"))

    asyncio.run(main())
    assert [r.duplicate for r in net.inbox_of("46701000024")] == [False, False, True]
    net.close()


def test_parts_of_one_message_share_its_stamp_and_differ_in_part_number(tmp_path: Path) -> None:
    net = Network(tmp_path, NetsimSettings.quiet(subscribers=100), clock=Clock())
    info = net.register.lookup("46701000025")
    stamp = encode_scts(T + 9)

    def part(seq: int) -> NetSms:
        udh = concat_udh(ConcatInfo(0x42, 3, seq))
        return NetSms("MyBank", stamp, 4, udh + b"part", "long", "d", True, seq - 1)

    async def main() -> None:
        for seq in (1, 2, 3, 2):  # part 2 sent again: a resend
            await net.forward_sm(info.imsi, info.node, part(seq))

    asyncio.run(main())
    records = net.inbox_of("46701000025")
    assert [(r.part, r.duplicate) for r in records] == [
        (1, False), (2, False), (3, False), (2, True)
    ]
    assert {r.scts for r in records} == {stamp}
    net.close()


def test_handset_remembers_its_last_deliveries_and_no_more(tmp_path: Path) -> None:
    settings = NetsimSettings.quiet(subscribers=100, handset_delivers_remembered_max=4)
    net = Network(tmp_path, settings, clock=Clock())
    info = net.register.lookup("46701000026")

    async def send(net: Network, *refs: int) -> None:
        for ref in refs:
            await net.forward_sm(info.imsi, info.node, sms(ref=ref, msg_id=f"m{ref}"))

    asyncio.run(send(net, 0, 1, 2, 3, 4, 5))
    assert net.remembered(info.imsi) == 4
    asyncio.run(send(net, 5, 2))  # among the last 4: resends
    asyncio.run(send(net, 1))  # forgotten: stored again
    assert [r.duplicate for r in net.inbox_of("46701000026")] == [False] * 6 + [True, True, False]
    net.close()
    # the memory rebuilt from the inbox after a restart is the same: 3, 4, 5 and 1
    again = Network(tmp_path, settings, clock=Clock())
    assert again.remembered(info.imsi) == 4
    asyncio.run(send(again, 1, 5, 2))
    assert [r.duplicate for r in again.inbox_of("46701000026")][-3:] == [True, True, False]
    again.close()


def test_all_handsets_together_remember_a_bounded_number(tmp_path: Path) -> None:
    settings = NetsimSettings.quiet(
        subscribers=100, handset_delivers_remembered_max=2, duplicate_memory_entries_max=4
    )
    net = Network(tmp_path, settings, clock=Clock())
    a, b, c = (net.register.lookup(f"4670100003{i}") for i in range(3))

    async def main() -> None:
        for info, ref in ((a, 1), (a, 2), (b, 1), (b, 2), (c, 1)):
            await net.forward_sm(info.imsi, info.node, sms(ref=ref))

    asyncio.run(main())
    # the handset used longest ago (a) forgot first
    assert [net.remembered(x.imsi) for x in (a, b, c)] == [0, 2, 1]
    net.close()


def test_a_resend_of_a_message_first_sent_before_schema_v9(tmp_path: Path) -> None:
    """Before v9 netsim knew an SMS-DELIVER by (originator, TP-MR, content). A message in
    flight across the upgrade is resent with that ``legacy_reference``: the handset, its
    memory rebuilt from the v1 lines, still recognises it; a message stamped since is known
    by its TP-SCTS."""
    msisdn = "46701000027"
    net = Network(tmp_path, NetsimSettings.quiet(subscribers=100), clock=Clock())
    info = net.register.lookup(msisdn)
    net.close()
    import hashlib

    digest = hashlib.sha256(b"code 1234").hexdigest()
    inbox_path(tmp_path).write_bytes(
        HEADER_V1.encode()
        + legacy_record_line(
            T - 5.0, msisdn, info.imsi, info.node, "MyBank", 42, 0, "old", digest, False
        )
    )
    again = Network(tmp_path, NetsimSettings.quiet(subscribers=100), clock=Clock())
    legacy = NetSms("MyBank", encode_scts(T), 0, b"code 1234", "old", "d", legacy_reference=42)
    other = NetSms("MyBank", encode_scts(T), 0, b"code 1234", "x", "d", legacy_reference=43)

    async def main() -> None:
        for message in (legacy, other, sms(ref=0, msg_id="new")):
            await again.forward_sm(info.imsi, info.node, message)

    asyncio.run(main())
    records = again.inbox_of(msisdn)
    assert [(r.smsc_message_id, r.duplicate) for r in records] == [
        ("old", False), ("old", True), ("x", False), ("new", False)
    ]
    # resends of messages known by a TP-MR are written as v1 lines, so a restart knows them
    assert [r.message_reference for r in records] == [42, 42, 43, None]
    again.close()
    third = Network(tmp_path, NetsimSettings.quiet(subscribers=100), clock=Clock())
    asyncio.run(third.forward_sm(info.imsi, info.node, other))
    assert third.inbox_of(msisdn)[-1].duplicate
    third.close()


def test_stale_identity_and_wrong_node_refused(tmp_path: Path) -> None:
    net = Network(tmp_path, NetsimSettings.quiet(subscribers=100), clock=Clock())
    reg = net.register
    msisdn = "46701000030"
    old = reg.lookup(msisdn)
    reg.sim_swap(msisdn)

    async def main() -> list[Ack | Failure]:
        wrong_node = "msc-1" if old.node != "msc-1" else "msc-2"
        new = reg.lookup(msisdn)
        return [
            await net.forward_sm(old.imsi, old.node, sms()),  # retired SIM
            await net.forward_sm(new.imsi, wrong_node, sms()),
            await net.forward_sm("240020000000000", "msc-1", sms()),  # not ours
            await net.forward_sm(new.imsi, new.node, sms()),
        ]

    r = asyncio.run(main())
    assert r[0] == Failure(FailureReason.UNIDENTIFIED_SUBSCRIBER, False)
    assert r[1] == Failure(FailureReason.UNIDENTIFIED_SUBSCRIBER, False)
    assert r[2] == Failure(FailureReason.UNKNOWN_SUBSCRIBER, True)
    assert r[3] == Ack(reg.identity(msisdn), msisdn)
    assert [rec.imsi for rec in net.inbox_of(msisdn)] == [reg.identity(msisdn)]
    net.close()


def test_latency_is_seeded_and_slept(tmp_path: Path) -> None:
    slept: list[float] = []

    async def fake_sleep(s: float) -> None:
        slept.append(s)

    settings = NetsimSettings(
        subscribers=100, absent_fraction=0, memory_full_fraction=0, slow_ack_fraction=0.2
    )
    net = Network(tmp_path, settings, clock=Clock(), sleep=fake_sleep)
    info = net.register.lookup("46701000040")

    async def main() -> None:
        for k in range(200):
            await net.forward_sm(info.imsi, info.node, sms(ref=k % 256, msg_id=str(k)))

    asyncio.run(main())
    assert len(slept) == 200
    fast = [s for s in slept if s <= 0.020]
    slow = [s for s in slept if s >= 0.100]
    assert len(fast) + len(slow) == 200
    assert 15 <= len(slow) <= 70 and all(s <= 2.0 for s in slow)
    assert all(0.001 <= s for s in fast)
    net.close()


def test_netsms_validates() -> None:
    stamp = encode_scts(T)
    with pytest.raises(ValueError):
        NetSms("A", stamp[:6], 0, b"", "m")  # TP-SCTS has 7 octets
    with pytest.raises(ValueError):
        NetSms("A", 5, 0, b"", "m")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        NetSms("A", stamp, 0, b"x" * 141, "m")
    with pytest.raises(ValueError):
        NetSms("", stamp, 0, b"", "m")
    with pytest.raises(ValueError):
        NetSms("A", stamp, 0, b"", "m", legacy_reference=256)
    with pytest.raises(ValueError):
        NetSms("A", stamp, 0, b"", "m", part_index=255)


def test_a_failing_alert_callback_does_not_stop_the_others(tmp_path: Path) -> None:
    net = Network(tmp_path, NetsimSettings.quiet(subscribers=100), clock=Clock())
    got: list[str] = []

    def broken(msisdn: str) -> None:
        raise RuntimeError("boom")

    net.on_alert(broken)
    net.on_alert(got.append)
    msisdn = "46701000050"
    info = net.register.lookup(msisdn)
    net.register.detach(msisdn)
    asyncio.run(net.forward_sm(info.imsi, info.node, sms()))
    net.register.attach(msisdn)
    assert net.process_due() == [msisdn] and got == [msisdn]
    assert net.settings.msisdn_range == (46701000000, 46701000099)
    net.close()
