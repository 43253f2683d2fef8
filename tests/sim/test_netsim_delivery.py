"""netsim MT-ForwardSM: round trip with the handset's identity, absent -> alert, memory full,
duplicates stored once, stale IMSI/node refused."""

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


class Clock:
    def __init__(self, t: float = 1_700_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def sms(
    ref: int = 1, text: bytes = b"code 1234", originator: str = "MyBank", msg_id: str = "m1"
) -> NetSms:
    return NetSms(originator, ref, 0, text, msg_id, "d")


def test_lookup_forward_round_trip(tmp_path: Path) -> None:
    net = Network(tmp_path, NetsimSettings.quiet(subscribers=1000), clock=Clock())
    info = net.register.lookup("46701000123")
    ack = asyncio.run(net.forward_sm(info.imsi, info.node, sms(msg_id="abc")))
    assert ack == Ack(info.imsi, "46701000123")
    assert net.register.identity("46701000123") == ack.imsi
    records = net.inbox_of("46701000123")
    assert len(records) == 1
    r = records[0]
    assert (r.imsi, r.originator, r.message_reference, r.smsc_message_id, r.duplicate) == (
        info.imsi,
        "MyBank",
        1,
        "abc",
        False,
    )
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


def test_handset_forgets_a_reference_128_behind_so_a_counter_may_go_round(
    tmp_path: Path,
) -> None:
    # one sender, the same text, 300 different messages to one number with consecutive
    # TP-MRs (the SMSC's counter goes round after 256): every one is stored, none taken for a
    # resend; a resend of the newest is still recognised
    net = Network(tmp_path, NetsimSettings.quiet(subscribers=100), clock=Clock())
    info = net.register.lookup("46701000022")

    async def main() -> None:
        for i in range(300):
            await net.forward_sm(info.imsi, info.node, sms(ref=i % 256, msg_id=f"m{i}"))
        await net.forward_sm(info.imsi, info.node, sms(ref=299 % 256, msg_id="m299"))
        # 127 back is inside the window: still a resend
        await net.forward_sm(info.imsi, info.node, sms(ref=(299 - 127) % 256, msg_id="m172"))

    asyncio.run(main())
    records = net.inbox_of("46701000022")
    assert [r.duplicate for r in records] == [False] * 300 + [True, True]
    assert net.stats.duplicates == 2
    net.close()
    # the same holds for the memory rebuilt from the inbox after a restart
    again = Network(tmp_path, NetsimSettings.quiet(subscribers=100), clock=Clock())
    asyncio.run(again.forward_sm(info.imsi, info.node, sms(ref=300 % 256, msg_id="m300")))
    asyncio.run(again.forward_sm(info.imsi, info.node, sms(ref=299 % 256, msg_id="m299")))
    assert [r.duplicate for r in again.inbox_of("46701000022")][-2:] == [False, True]
    again.close()


def test_handset_follows_a_counter_that_jumped(tmp_path: Path) -> None:
    # 150 references given to messages that never reached this handset (expired while it was
    # away): the next one is taken as the counter moving on, the old window is forgotten, and
    # when the counter comes round to the first reference again it is a new message
    net = Network(tmp_path, NetsimSettings.quiet(subscribers=100), clock=Clock())
    info = net.register.lookup("46701000023")

    async def main() -> None:
        for ref in (0, 1, 151, 152, 255, 0, 1):
            await net.forward_sm(info.imsi, info.node, sms(ref=ref, msg_id=f"m{ref}"))
        await net.forward_sm(info.imsi, info.node, sms(ref=255, msg_id="m255"))  # a resend

    asyncio.run(main())
    assert [r.duplicate for r in net.inbox_of("46701000023")] == [False] * 7 + [True]
    net.close()


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
    with pytest.raises(ValueError):
        NetSms("A", 256, 0, b"", "m")
    with pytest.raises(ValueError):
        NetSms("A", 0, 0, b"x" * 141, "m")
    with pytest.raises(ValueError):
        NetSms("", 0, 0, b"", "m")


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
