"""Detection gaps closed (issue 4): stale or recycled routing answers are PREVENTED before
anything is sent (ROUTING_MISMATCH, alarm, breaker, retried or HELD); an acknowledgement from a
number's NEW holder (recycled while the message was on its way) is DETECTED (the addressed IMSI
must answer: IDENTITY_MISMATCH, quarantine, alarm, breaker).

Each test uses netsim's own seeded FaultSwitchboard, with the exact signal its docstring
documents, and judges from the handsets' inbox as well as from the store."""

from __future__ import annotations

import asyncio
from pathlib import Path

from delivery_kit import DEST, T0, make_msg, rig

from adressat.core.integrity import AlarmKind
from adressat.core.model import State
from adressat.delivery import DeliveryError, Outcome, OutcomeKind
from adressat.netsim import Ack, Failure, FailureReason, Faults, NetSms, read_inbox
from adressat.netsim.faults import FaultSwitchboard
from adressat.observe import audit
from adressat.observe.incident import incident_report

ROUTE = "netsim-home"


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def _board(name: str, **params: object) -> FaultSwitchboard:
    board = FaultSwitchboard(seed=11, route_name=ROUTE)
    board.on(name, **params)  # type: ignore[arg-type]
    return board


def _refused_before_sending(tmp_path: Path, name: str, **params: object) -> None:
    """The fault makes the register answer a wrong IMSI: nothing reaches any handset; the
    message is DEFERRED then HELD (breaker) with error 34; one routing_mismatch alarm in the
    same write; after the fault is off and the route released it is delivered to the
    destination's current identity."""

    async def main() -> None:
        board = _board(name, **params)
        async with rig(tmp_path, faults=board, held_refresh_s=0.01) as r:
            msg = make_msg(DEST, registered_delivery=1)
            await r.insert(msg)
            held = await r.wait_state(msg.id, State.HELD)
            assert held.error == DeliveryError.ROUTING_MISMATCH
            assert list(read_inbox(tmp_path)) == []  # prevented: nobody stored it
            [alarm] = r.store.alarms_between(0, float("inf"))
            assert alarm.kind is AlarmKind.ROUTING_MISMATCH
            assert alarm.message_ids == (msg.id,) and alarm.route == ROUTE
            assert "addressed=" in alarm.detail
            assert r.store.held_routes() == frozenset({ROUTE})
            [att] = r.store.attempts_for_message(msg.id)
            assert att.error == DeliveryError.ROUTING_MISMATCH
            assert r.finals == []  # not final: the message itself is fine
            report = incident_report(r.store, T0 - 10, T0 + 10)
            acme = report["accounts"]["acme"]
            assert acme["held"] == [msg.id] and acme["suspect"] == []  # nothing was sent

            board.off(name)
            r.store.release_route(ROUTE, T0)
            await r.worker.refresh_held()
            r.worker.wake()
            done = await r.wait_state(msg.id, State.DELIVERED)
            current = r.network.register.identity(DEST)
            assert done.delivered_imsi == current
            [rec] = list(read_inbox(tmp_path))
            assert (rec.msisdn, rec.imsi) == (DEST, current)
            figures = audit(r.store, tmp_path, T0 + 10)
            assert figures["misdelivered"] == 0 and figures["lost"] == 0
            report = incident_report(r.store, T0 - 10, T0 + 10)
            assert report["accounts"]["acme"]["delivered"] == [msg.id]

    run(main())


def test_stale_routing_after_sim_swap_prevented(tmp_path: Path) -> None:
    _refused_before_sending(tmp_path, "stale_routing")


def test_stale_routing_reassigned_to_another_subscriber_prevented(tmp_path: Path) -> None:
    _refused_before_sending(tmp_path, "stale_routing", reassigned=True)


def test_number_recycled_at_lookup_prevented(tmp_path: Path) -> None:
    _refused_before_sending(tmp_path, "recycled_number", at="lookup")


def test_routing_mismatch_without_breaker_is_deferred_with_its_alarm(tmp_path: Path) -> None:
    """Breaker off (threshold 0): a TEMPORARY outcome, DEFERRED after backoff, and its alarm
    is written in the same store operation as the transition."""

    async def main() -> None:
        board = _board("stale_routing", reassigned=True)
        async with rig(tmp_path, faults=board, breaker_alarms_threshold=0) as r:
            msg = make_msg(DEST)
            await r.insert(msg)
            deferred = await r.wait_state(msg.id, State.DEFERRED)
            assert deferred.error == DeliveryError.ROUTING_MISMATCH
            assert deferred.next_attempt_at is not None and deferred.next_attempt_at > T0
            await r.wait_for(lambda: len(r.store.alarms_between(0, float("inf"))) == 1)
            assert r.store.held_routes() == frozenset()
            assert list(read_inbox(tmp_path)) == []

    run(main())


def test_routing_mismatch_alarm_and_deferral_are_one_write(tmp_path: Path) -> None:
    async def main() -> None:
        async with rig(tmp_path, start=False) as r:
            msg = make_msg(DEST)
            await r.committer.insert(msg)
            [c] = r.store.claim_due(1, T0, 60, "x")
            out = Outcome.failed(
                OutcomeKind.TEMPORARY,
                DeliveryError.ROUTING_MISMATCH,
                imsi="240990000000001",
                addressed_imsi="240990000000001",
            )
            calls = 0
            real = r.committer.run

            async def counting(fn):  # type: ignore[no-untyped-def]
                nonlocal calls
                calls += 1
                return await real(fn)

            r.committer.run = counting  # type: ignore[method-assign]
            new = await r.worker._write(c, out, r.worker._plan(c, out, T0), T0, T0, sent=True)
            assert calls == 1
            assert new is not None and new.state is State.HELD  # tripped in the same write
            [alarm] = r.store.alarms_between(0, float("inf"))
            assert alarm.kind is AlarmKind.ROUTING_MISMATCH
            assert r.store.held_routes() == frozenset({ROUTE})

    run(main())


def test_number_recycled_on_the_way_detected_quarantined_and_held(tmp_path: Path) -> None:
    """The new holder of the number stores it and acknowledges with the right MSISDN and the
    register's (new) current IMSI: only the addressed IMSI tells. Detected, not prevented."""

    async def main() -> None:
        board = _board("recycled_number", at="forward")
        async with rig(tmp_path, faults=board) as r:
            addressed = r.network.register.identity(DEST)
            msg = make_msg(DEST, registered_delivery=1)
            second = make_msg(DEST, "second")
            await r.insert(msg)
            done = await r.wait_state(msg.id, State.QUARANTINED)
            assert done.error == DeliveryError.IDENTITY_MISMATCH
            new_holder = r.network.register.identity(DEST)
            assert new_holder != addressed
            [rec] = list(read_inbox(tmp_path))
            assert (rec.msisdn, rec.imsi) == (DEST, new_holder)  # reached the new holder
            [alarm] = r.store.alarms_between(0, float("inf"))
            assert alarm.kind is AlarmKind.IDENTITY_MISMATCH
            assert f"addressed={addressed}" in alarm.detail
            assert f"imsi={new_holder}" in alarm.detail
            assert r.store.held_routes() == frozenset({ROUTE})
            assert [m.id for m in r.finals] == [msg.id]  # failure receipt (outbox row)
            await r.insert(second)
            await r.wait_state(second.id, State.HELD)  # the breaker holds the rest
            figures = audit(r.store, tmp_path, T0 + 10)
            assert figures["misdelivered"] == 1
            assert figures["misdelivered_detected"] == 1
            assert figures["misdelivered_undetected"] == 0
            report = incident_report(r.store, T0 - 10, T0 + 10)
            assert report["accounts"]["acme"]["quarantined"] == [msg.id]

    run(main())


def test_guards_off_sends_what_the_register_says(tmp_path: Path) -> None:
    """``guards=False`` (benchmarks only) really switches the checks off: the stale answer
    reaches nobody, so it comes back UNIDENTIFIED_SUBSCRIBER from the network instead."""

    async def main() -> None:
        board = _board("stale_routing")
        async with rig(tmp_path, faults=board, breaker_alarms_threshold=0) as r:
            r.worker.adapters["netsim"].guards = False  # type: ignore[attr-defined]
            msg = make_msg(DEST)
            await r.insert(msg)
            deferred = await r.wait_state(msg.id, State.DEFERRED)
            assert deferred.error == DeliveryError.UNIDENTIFIED_SUBSCRIBER
            assert r.store.alarms_between(0, float("inf")) == []

    run(main())


class AckLostOnce(Faults):
    """The handset stores the first forward but its acknowledgement never arrives."""

    def __init__(self) -> None:
        self.lost = 0

    async def on_ack(
        self, result: Ack | Failure, imsi: str, node: str, sms: NetSms
    ) -> Ack | Failure:
        if isinstance(result, Ack) and self.lost == 0:
            self.lost += 1
            return Failure.of(FailureReason.TIMEOUT)
        return result


def test_retry_after_lost_ack_never_goes_to_another_identity(tmp_path: Path) -> None:
    """I3: the first attempt was stored by X but its ack was lost; the number then changes
    hands. The retry must not reach the new identity: QUARANTINED (35), alarm, nothing sent."""

    async def main() -> None:
        faults = AckLostOnce()
        async with rig(tmp_path, faults=faults, breaker_alarms_threshold=0) as r:
            r.worker.current_imsi = r.network.register.identity  # as app/node.py wires it
            first = r.network.register.identity(DEST)
            msg = make_msg(DEST, registered_delivery=1)
            await r.insert(msg)
            deferred = await r.wait_state(msg.id, State.DEFERRED)
            assert deferred.error == DeliveryError.TIMEOUT
            r.network.register.recycle(DEST)
            r.clock.advance(1.0)
            await r.worker.retry_destination(DEST)
            done = await r.wait_state(msg.id, State.QUARANTINED)
            assert done.error == DeliveryError.RETRY_IDENTITY_CHANGED
            [rec] = list(read_inbox(tmp_path))  # only the first copy, at the first holder
            assert (rec.msisdn, rec.imsi) == (DEST, first)
            [alarm] = r.store.alarms_between(0, float("inf"))
            assert alarm.kind is AlarmKind.RETRY_IDENTITY_CHANGED
            assert f"addressed={first}" in alarm.detail
            figures = audit(r.store, tmp_path, T0 + 10)
            assert figures["misdelivered"] == 0 and figures["lost"] == 0

    run(main())


class HangAfterStoring(Faults):
    """The handset stores the message, then the SMSC never hears back: it is killed in the
    middle of the attempt (the test cancels the worker, as a crash does)."""

    async def on_ack(
        self, result: Ack | Failure, imsi: str, node: str, sms: NetSms
    ) -> Ack | Failure:
        await asyncio.sleep(3600)
        return result


def test_retry_after_a_crash_mid_attempt_never_goes_to_another_identity(
    tmp_path: Path,
) -> None:
    """I3 across a crash: the handset stored the message, the SMSC died before it heard so,
    and the number changed hands before the restart. The identity the attempt addressed was
    written before it went out, so the retry does not reach the new holder: QUARANTINED (35),
    alarm naming the first identity, nothing sent."""

    async def main() -> None:
        msg = make_msg(DEST, registered_delivery=1)
        async with rig(tmp_path, faults=HangAfterStoring()) as r:
            first = r.network.register.identity(DEST)
            await r.insert(msg)
            await r.wait_for(lambda: len(list(read_inbox(tmp_path))) == 1)
            assert r.get(msg.id).addressed_imsi == first
            assert r.task is not None
            r.task.cancel()  # the crash: nothing of the attempt is written
        async with rig(tmp_path, breaker_alarms_threshold=0, start=False) as r:
            r.worker.current_imsi = r.network.register.identity
            r.network.register.recycle(DEST)
            assert r.network.register.identity(DEST) != first
            assert await r.worker.recover() == 1
            [interrupted] = r.store.attempts_for_message(msg.id)
            assert (interrupted.outcome, interrupted.imsi) == ("INTERRUPTED", first)
            r.start()
            done = await r.wait_state(msg.id, State.QUARANTINED)
            assert done.error == DeliveryError.RETRY_IDENTITY_CHANGED
            [rec] = list(read_inbox(tmp_path))  # only the first copy, at the first holder
            assert (rec.msisdn, rec.imsi) == (DEST, first)
            [alarm] = r.store.alarms_between(0, float("inf"))
            assert alarm.kind is AlarmKind.RETRY_IDENTITY_CHANGED
            assert f"addressed={first}" in alarm.detail
            figures = audit(r.store, tmp_path, T0 + 10)
            assert figures["misdelivered"] == 0 and figures["lost"] == 0

    run(main())


def test_retry_after_lost_ack_to_the_same_identity_is_delivered_once(tmp_path: Path) -> None:
    async def main() -> None:
        async with rig(tmp_path, faults=AckLostOnce()) as r:
            r.worker.current_imsi = r.network.register.identity
            msg = make_msg(DEST)
            await r.insert(msg)
            await r.wait_state(msg.id, State.DEFERRED)
            r.clock.advance(1.0)
            await r.worker.retry_destination(DEST)
            await r.wait_state(msg.id, State.DELIVERED)
            recs = list(read_inbox(tmp_path))
            assert [x.duplicate for x in recs] == [False, True]  # the handset discarded it
            assert r.store.alarms_between(0, float("inf")) == []

    run(main())
