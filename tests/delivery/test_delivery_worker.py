"""DeliveryWorker + NetsimAdapter against a real SqliteStore, GroupCommitter and netsim."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from pathlib import Path

import pytest
from delivery_kit import DEST, OTHER, T0, UNKNOWN_NUMBER, Clock, make_msg, rig

from adressat.core.model import State
from adressat.delivery import DeliveryError, Outcome
from adressat.delivery.netsim_adapter import concat_reference
from adressat.netsim import Ack, Failure, Faults, NetSms, read_inbox
from adressat.sms import (
    Alphabet,
    Concat,
    encode_scts,
    encode_text,
    fill_bits_for_udh,
    gsm7_septet_length,
    pack_septets,
    parse_udh,
    segment_payload,
    unpack_septets,
)
from adressat.sms.encodings import gsm7_decode


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_delivered_with_handset_identity_attempt_receipt_and_on_final(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = "Secret login code 918273"

    async def main() -> None:
        caplog.set_level(logging.DEBUG)
        async with rig(tmp_path) as r:
            msg = make_msg(DEST, text, registered_delivery=1)
            await r.insert(msg)
            done = await r.wait_state(msg.id, State.DELIVERED)
            imsi = r.network.register.identity(DEST)
            assert done.delivered_imsi == imsi
            assert done.delivered_msisdn == DEST
            assert done.error == DeliveryError.OK
            assert done.final_at is not None
            # the handset's own evidence
            inbox = r.network.inbox_of(DEST)
            assert [(x.imsi, x.smsc_message_id, x.duplicate) for x in inbox] == [
                (imsi, msg.id, False)
            ]
            air = pack_septets(encode_text(text, Alphabet.GSM7))
            assert inbox[0].content_sha256 == hashlib.sha256(air).hexdigest()
            # the first message to this number: stamped at its first claim, the second it was
            # claimed in, and the handset got that TP-SCTS (no TP-MR: SMS-DELIVER has none)
            assert done.scts is not None and done.reference is None
            assert T0 <= done.scts <= r.clock()
            assert (inbox[0].scts, inbox[0].part) == (encode_scts(done.scts), 0)
            assert inbox[0].message_reference is None
            assert inbox[0].originator == "ACME"
            # one attempt record, no text
            [att] = r.store.attempts_for_message(msg.id)
            assert (att.outcome, att.imsi, att.route, att.node, att.attempt, att.error) == (
                "DELIVERED",
                imsi,
                "netsim-home",
                1,
                1,
                0,
            )
            assert att.destination == DEST and att.account == "acme"
            # receipt outbox row for the owner, and the final hint after the commit
            [rcpt] = r.store.pending_receipts("acme")
            assert rcpt.message_id == msg.id and rcpt.state is State.DELIVERED
            assert rcpt.error == 0
            await r.wait_for(lambda: len(r.finals) == 1)
            assert r.finals[0].id == msg.id and r.finals[0].state is State.DELIVERED
            assert r.worker.delivered == 1 and r.worker.attempts == 1

    run(main())
    for rec in caplog.records:  # I6: never the text in a log line or its fields
        assert "918273" not in rec.getMessage()
        assert all("918273" not in repr(v) for v in vars(rec).values())


def test_absent_deferred_then_alert_retries_at_once(tmp_path: Path) -> None:
    async def main() -> None:
        clock = Clock()
        async with rig(tmp_path, clock=clock) as r:
            r.network.register.detach(DEST)
            msg = make_msg(DEST)
            await r.insert(msg)
            deferred = await r.wait_state(msg.id, State.DEFERRED)
            assert deferred.error == DeliveryError.ABSENT_SUBSCRIBER
            assert T0 < deferred.next_attempt_at <= T0 + 20
            assert r.network.inbox_of(DEST) == []
            # the clock does not move: only the alert can make it due again
            r.network.register.attach(DEST)
            assert r.network.process_due() == [DEST]
            done = await r.wait_state(msg.id, State.DELIVERED)
            assert done.attempts == 2
            assert [a.outcome for a in r.store.attempts_for_message(msg.id)] == [
                "TEMPORARY",
                "DELIVERED",
            ]
            assert len(r.network.inbox_of(DEST)) == 1

    run(main())


def test_memory_full_deferred_with_its_code_then_delivered(tmp_path: Path) -> None:
    async def main() -> None:
        async with rig(tmp_path) as r:
            r.network.register.set_memory_full(DEST)
            msg = make_msg(DEST)
            await r.insert(msg)
            deferred = await r.wait_state(msg.id, State.DEFERRED)
            assert deferred.error == DeliveryError.MEMORY_CAPACITY_EXCEEDED
            assert r.network.inbox_of(DEST) == []
            r.network.register.attach(DEST)  # memory available
            assert r.network.process_due() == [DEST]
            await r.wait_state(msg.id, State.DELIVERED)

    run(main())


def test_unknown_subscriber_undeliverable_with_failure_receipt(tmp_path: Path) -> None:
    async def main() -> None:
        async with rig(tmp_path) as r:
            msg = make_msg(UNKNOWN_NUMBER, registered_delivery=1)
            await r.insert(msg)
            done = await r.wait_state(msg.id, State.UNDELIVERABLE)
            assert done.error == DeliveryError.UNKNOWN_SUBSCRIBER
            [rcpt] = r.store.pending_receipts("acme")
            assert rcpt.state is State.UNDELIVERABLE and rcpt.error == 3
            await r.wait_for(lambda: [m.id for m in r.finals] == [msg.id])

    run(main())


def test_expiry_never_delivered_late(tmp_path: Path) -> None:
    async def main() -> None:
        clock = Clock()
        async with rig(tmp_path, clock=clock) as r:
            r.network.register.detach(DEST)
            msg = make_msg(DEST, validity_s=30.0)
            await r.insert(msg)
            await r.wait_state(msg.id, State.DEFERRED)
            clock.advance(31.0)  # past validity, then the subscriber comes back
            r.network.register.attach(DEST)
            r.network.process_due()
            done = await r.wait_state(msg.id, State.EXPIRED)
            assert done.delivered_imsi is None
            await r.wait_for(lambda: [m.id for m in r.finals] == [msg.id])
            await asyncio.sleep(0.05)
            assert r.get(msg.id).state is State.EXPIRED
            assert list(read_inbox(tmp_path)) == []

    run(main())


def test_no_retry_step_fits_stays_deferred_until_validity_then_expires(tmp_path: Path) -> None:
    """The first backoff step (~15 s) lies past the validity (10 s): the message is not given
    up early; it waits DEFERRED until its validity ends (an alert could still bring it out),
    then expires, and is never delivered late."""

    async def main() -> None:
        clock = Clock()
        async with rig(tmp_path, clock=clock, start=False) as r:
            r.network.register.detach(DEST)
            msg = make_msg(DEST, validity_s=10.0)
            await r.committer.insert(msg)
            [claimed] = r.store.claim_due(1, T0, 60.0, "node-1")
            done = await r.worker.process(claimed)
            assert done is not None and done.state is State.DEFERRED
            assert done.error == DeliveryError.ABSENT_SUBSCRIBER
            assert done.next_attempt_at == msg.expires_at
            clock.advance(9.0)
            assert r.store.claim_due(1, clock(), 60.0, "node-1") == []  # not due before the end
            r.network.register.attach(DEST)
            clock.advance(1.0)
            assert r.store.claim_due(1, clock(), 60.0, "node-1") == []  # expired: never sent
            [gone] = r.store.expire_due(clock())
            assert gone.id == msg.id and gone.state is State.EXPIRED
            assert list(read_inbox(tmp_path)) == []

    run(main())


def test_claimed_but_expired_before_sending_is_not_sent(tmp_path: Path) -> None:
    async def main() -> None:
        clock = Clock()
        async with rig(tmp_path, clock=clock, start=False) as r:
            msg = make_msg(DEST, validity_s=5.0)
            await r.committer.insert(msg)
            [claimed] = r.store.claim_due(1, T0, 60.0, "node-1")
            clock.advance(10.0)
            done = await r.worker.process(claimed)
            assert done is not None and done.state is State.EXPIRED
            assert done.error == DeliveryError.EXPIRED
            assert list(read_inbox(tmp_path)) == []
            assert r.network.stats.forwarded == 0
            [att] = r.store.attempts_for_message(msg.id)
            assert att.outcome == "EXPIRED" and att.imsi is None

    run(main())


def test_tag_mismatch_quarantined_and_nothing_sent(tmp_path: Path) -> None:
    async def main() -> None:
        async with rig(tmp_path) as r:
            good = make_msg(OTHER, "meant for someone else")
            # an in-memory mix-up: DEST's record carrying another message's tag
            mixed = make_msg(DEST, "hello", tag=good.tag, registered_delivery=1)
            await r.insert(mixed)
            done = await r.wait_state(mixed.id, State.QUARANTINED)
            assert done.error == DeliveryError.TAG_MISMATCH
            assert list(read_inbox(tmp_path)) == []
            assert r.network.stats.forwarded == 0
            assert [(m.id, o.error) for m, o in r.integrity] == [(mixed.id, 30)]
            [rcpt] = r.store.pending_receipts("acme")
            assert rcpt.state is State.QUARANTINED
            [att] = r.store.attempts_for_message(mixed.id)
            assert att.outcome == "QUARANTINE" and att.error == 30

    run(main())


class AckFromStranger(Faults):
    """The answer comes back carrying another subscriber's identity."""

    def __init__(self, stranger: tuple[str, str]) -> None:
        self.stranger = stranger

    async def on_ack(
        self, result: Ack | Failure, imsi: str, node: str, sms: NetSms
    ) -> Ack | Failure:
        return Ack(*self.stranger) if isinstance(result, Ack) else result


class SwapBeforeAck(Faults):
    """A SIM swap between the routing answer and the acknowledgement."""

    def __init__(self) -> None:
        self.register = None

    async def on_ack(
        self, result: Ack | Failure, imsi: str, node: str, sms: NetSms
    ) -> Ack | Failure:
        assert self.register is not None
        if isinstance(result, Ack):
            self.register.sim_swap(result.msisdn)
        return result


def test_identity_mismatch_quarantined_never_retried(tmp_path: Path) -> None:
    async def main() -> None:
        faults = AckFromStranger(("", ""))
        async with rig(tmp_path, faults=faults) as r:
            faults.stranger = (r.network.register.identity(OTHER), OTHER)
            msg = make_msg(DEST)
            await r.insert(msg)
            done = await r.wait_state(msg.id, State.QUARANTINED)
            assert done.error == DeliveryError.IDENTITY_MISMATCH
            assert done.delivered_imsi is None
            assert [(m.id, o.error, o.msisdn) for m, o in r.integrity] == [(msg.id, 31, OTHER)]
            await asyncio.sleep(0.05)
            assert r.get(msg.id).attempts == 1
            assert r.network.stats.forwarded == 1
            [att] = r.store.attempts_for_message(msg.id)
            assert att.imsi == r.network.register.identity(OTHER)  # who answered, for forensics

    run(main())


def test_sim_swap_between_lookup_and_ack_quarantined(tmp_path: Path) -> None:
    async def main() -> None:
        faults = SwapBeforeAck()
        async with rig(tmp_path, faults=faults) as r:
            faults.register = r.network.register  # type: ignore[assignment]
            msg = make_msg(DEST)
            await r.insert(msg)
            done = await r.wait_state(msg.id, State.QUARANTINED)
            assert done.error == DeliveryError.IDENTITY_MISMATCH

    run(main())


def test_per_destination_order(tmp_path: Path) -> None:
    async def main() -> None:
        async with rig(tmp_path, start=False) as r:
            msgs = [make_msg(DEST, f"message {i}", submitted_at=T0 - 10 + i) for i in range(5)] + [
                make_msg(OTHER, "other", submitted_at=T0 - 10)
            ]
            await r.committer.insert_many(list(reversed(msgs)))
            r.start()
            for m in msgs:
                await r.wait_state(m.id, State.DELIVERED)
            got = [x.smsc_message_id for x in r.network.inbox_of(DEST)]
            assert got == [m.id for m in msgs[:5]]

    run(main())


def test_long_gsm7_message_in_parts_to_one_identity(tmp_path: Path) -> None:
    text = "".join("abcdefghij0123456789"[i % 20] for i in range(300))

    async def main() -> None:
        async with rig(tmp_path) as r:
            msg = make_msg(DEST, text)  # 300 septets: came as message_payload
            await r.insert(msg)
            done = await r.wait_state(msg.id, State.DELIVERED)
            inbox = r.network.inbox_of(DEST)
            assert len(inbox) == 2
            imsi = r.network.register.identity(DEST)
            assert {x.imsi for x in inbox} == {imsi} == {done.delivered_imsi}
            assert {x.smsc_message_id for x in inbox} == {msg.id}
            # both parts carry the message's TP-SCTS; the handset tells them apart by the
            # part number of their concatenation element
            assert done.scts is not None
            assert [(x.scts, x.part) for x in inbox] == [
                (encode_scts(done.scts), 1),
                (encode_scts(done.scts), 2),
            ]
            assert r.network.stats.forwarded == 2
            [att] = r.store.attempts_for_message(msg.id)
            assert att.outcome == "DELIVERED"

    run(main())
    assert gsm7_septet_length(text) == 300


def test_timeout_is_temporary(tmp_path: Path) -> None:
    class Hang:
        async def deliver(self, msg: object, addressed: object = None) -> Outcome:
            await asyncio.sleep(3600)
            raise AssertionError

    async def main() -> None:
        async with rig(tmp_path, wrap=lambda a: Hang(), delivery_timeout_s=0.05) as r:
            msg = make_msg(DEST)
            await r.insert(msg)
            done = await r.wait_state(msg.id, State.DEFERRED)
            assert done.error == DeliveryError.TIMEOUT

    run(main())


def test_unroutable_route_kind(tmp_path: Path) -> None:
    async def main() -> None:
        async with rig(tmp_path) as r:
            msg = make_msg(DEST)
            from dataclasses import replace

            await r.insert(replace(msg, route="smpp-partner"))
            done = await r.wait_state(msg.id, State.UNDELIVERABLE)
            assert done.error == DeliveryError.UNROUTABLE

    run(main())


def test_lease_recovery_after_crash_delivers_once(tmp_path: Path) -> None:
    class CrashAfterSend:
        """Sends for real, then the process 'dies' before the outcome is written."""

        def __init__(self, inner: object) -> None:
            self.inner = inner
            self.sent = 0

        async def deliver(self, msg: object, addressed: object = None) -> Outcome:
            await self.inner.deliver(msg, addressed)  # type: ignore[attr-defined]
            self.sent += 1
            await asyncio.sleep(3600)
            raise AssertionError

    async def main() -> None:
        holder: list[CrashAfterSend] = []

        def wrap(a: object) -> CrashAfterSend:
            holder.append(CrashAfterSend(a))
            return holder[0]

        msg = make_msg(DEST, registered_delivery=1)
        async with rig(tmp_path, wrap=wrap) as r1:
            await r1.insert(msg)
            await r1.wait_for(lambda: holder[0].sent == 1)
            assert r1.task is not None
            r1.task.cancel()  # the crash: nothing written after the send
            with pytest.raises(asyncio.CancelledError):
                await r1.task
            r1.task = None
            assert r1.get(msg.id).state is State.DISPATCHED
        # a new process: new network object on the same evidence, new worker
        async with rig(tmp_path) as r2:
            done = await r2.wait_state(msg.id, State.DELIVERED)
            assert done.attempts == 2
            assert r2.network.stats.duplicates == 1
            inbox = r2.network.inbox_of(DEST)
            assert [x.duplicate for x in inbox] == [False, True]
            assert len({x.deliver_key for x in inbox}) == 1  # the same TP-SCTS
            assert [a.outcome for a in r2.store.attempts_for_message(msg.id)] == [
                "INTERRUPTED",
                "DELIVERED",
            ]
            assert len(r2.store.pending_receipts("acme")) == 1
            assert r2.worker.recovered == 1
            from adressat.observe import audit

            report = audit(r2.store, tmp_path, r2.clock())
            assert report["duplicates_discarded"] == 1
            assert report["duplicates_stored"] == 0
            assert report["lost"] == 0 and report["misdelivered"] == 0 and report["ok"]

    run(main())


def test_gsm7_part_packing_round_trip(tmp_path: Path) -> None:
    """The air form decodes back to the text: UDH, fill bits, packed septets."""
    from adressat.delivery import build_parts

    text = "Hello {world} [ok] €" * 12  # extension characters near part boundaries
    body = encode_text(text, Alphabet.GSM7)
    parts = build_parts("ab" * 16, body, 0, 0)
    sizes = [
        len(s.payload)
        for s in segment_payload(
            body, Alphabet.GSM7, concat=Concat.UDH8, reference=concat_reference("ab" * 16)
        )
    ]
    assert len(parts) == len(sizes) > 1 and all(len(p) <= 140 for p in parts)
    septets = b""
    refs = set()
    for p, count in zip(parts, sizes, strict=True):
        elements, rest = parse_udh(p)
        refs.add(elements[0][1][0])
        septets += unpack_septets(rest, count, fill_bits_for_udh(len(p) - len(rest)))
    assert gsm7_decode(septets) == text
    assert refs == {concat_reference("ab" * 16)}
