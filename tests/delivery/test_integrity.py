"""Issue 4 guards in the delivery worker: alarms, quarantine in one transaction, the durable
route breaker, stray/late answers, IMSI conflict, the internal ``corrupt_pairing`` fault; and
the incident report and audit figures they feed."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from delivery_kit import DEST, OTHER, T0, Rig, make_msg, rig

from adressat.core.integrity import AlarmKind
from adressat.core.model import Message, State
from adressat.delivery import Adapter, DeliveryError, NetsimAdapter, Outcome, OutcomeKind
from adressat.delivery.adapter import Addressed
from adressat.delivery.answers import NetworkAnswer
from adressat.delivery.faults import InternalFaults, UnknownFault
from adressat.netsim import Ack, Failure, Faults, NetSms, RoutingInfo, read_inbox
from adressat.observe import audit
from adressat.observe.incident import incident_report

ROUTE = "netsim-home"


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


class Slow:
    """Keeps each delivery in flight a little, so several are concurrent."""

    def __init__(self, inner: Adapter) -> None:
        self.inner = inner

    async def deliver(self, msg: Message, addressed: Addressed | None = None) -> Outcome:
        await asyncio.sleep(0.02)
        return await self.inner.deliver(msg, addressed)


class AckFromStranger(Faults):
    def __init__(self) -> None:
        self.stranger: tuple[str, str] = ("", "")

    async def on_ack(
        self, result: Ack | Failure, imsi: str, node: str, sms: NetSms
    ) -> Ack | Failure:
        if isinstance(result, Ack) and self.stranger[0]:
            return Ack(*self.stranger)
        return result


def _wrong_identity_records(home: Path, r: object) -> list[str]:
    store = r.store  # type: ignore[attr-defined]
    bad = []
    for rec in read_inbox(home):
        m = store.get_message(rec.smsc_message_id)
        if m is None or rec.msisdn != m.destination:
            bad.append(rec.smsc_message_id)
    return bad


def test_corrupt_pairing_stopped_by_the_tag_every_time(tmp_path: Path) -> None:
    n = 24

    async def main() -> None:
        async with rig(
            tmp_path, wrap=Slow, start=False, breaker_alarms_threshold=0, concurrency_max=n
        ) as r:
            faults = InternalFaults(seed=3)
            faults.on("corrupt_pairing", rate=1.0)
            r.worker.faults = faults
            msgs = [
                make_msg(str(46701000300 + i), f"code {i}", registered_delivery=1) for i in range(n)
            ]
            await r.committer.insert_many(msgs)
            r.start()
            for m in msgs:
                await r.wait_state(m.id, State.DELIVERED, State.QUARANTINED)
            states = {m.id: r.get(m.id) for m in msgs}
            quarantined = [m for m in states.values() if m.state is State.QUARANTINED]
            [st] = faults.list()
            assert st.fired >= n // 2  # the fault really fired, concurrently
            assert len(quarantined) == st.fired  # every corrupted message was stopped
            assert all(m.error == DeliveryError.TAG_MISMATCH for m in quarantined)
            assert _wrong_identity_records(tmp_path, r) == []  # nothing reached a stranger
            delivered_ids = {x.smsc_message_id for x in read_inbox(tmp_path)}
            assert delivered_ids.isdisjoint({m.id for m in quarantined})
            alarms = r.store.alarms_between(0, float("inf"))
            assert sorted(a.message_ids[0] for a in alarms) == sorted(m.id for m in quarantined)
            assert {a.kind for a in alarms} == {AlarmKind.TAG_MISMATCH}
            assert all(a.route == ROUTE and a.adapter == "netsim" and a.node == 1 for a in alarms)
            receipts = {x.message_id: x for x in r.store.pending_receipts("acme", 1000)}
            assert all(receipts[m.id].state is State.QUARANTINED for m in quarantined)

    run(main())


def test_breaker_trips_on_first_alarm_holds_the_rest_until_release(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        caplog.set_level(logging.ERROR, logger="adressat.alarm")
        async with rig(
            tmp_path,
            wrap=Slow,
            start=False,
            held_refresh_s=0.05,
            concurrency_max=2,
            claim_batch_max=2,
        ) as r:
            faults = InternalFaults()
            faults.on("corrupt_pairing")
            r.worker.faults = faults
            msgs = [make_msg(str(46701000400 + i), f"m{i}") for i in range(12)]
            await r.committer.insert_many(msgs)
            r.start()
            for m in msgs:
                await r.wait_state(m.id, State.DELIVERED, State.QUARANTINED, State.HELD)
            states = [r.get(m.id).state for m in msgs]
            assert State.QUARANTINED in states and State.HELD in states
            assert r.store.held_routes() == frozenset({ROUTE})
            [status] = r.store.route_status()
            assert status.held and status.reason.startswith("tag_mismatch:")
            held_ids = [m.id for m in msgs if r.get(m.id).state is State.HELD]
            assert status.held_messages == len(held_ids)
            # the trip is in the same transaction as the first quarantine
            first = min(r.store.alarms_between(0, float("inf")), key=lambda a: a.id)
            assert status.held_at == first.at
            # a new message on the held route is claimed, not sent, HELD
            late = make_msg(DEST, "after the trip")
            forwarded = r.network.stats.forwarded
            await r.insert(late)
            await r.wait_state(late.id, State.HELD)
            assert r.network.stats.forwarded == forwarded
            held_ids.append(late.id)
            # held messages are never expired while held
            r.clock.advance(10 * 3600)
            await asyncio.sleep(0.1)
            assert all(r.get(i).state is State.HELD for i in held_ids)
            r.clock.t = T0 + 1
            # release (as the CLI does, straight in the store): the worker picks it up
            faults.off("corrupt_pairing")
            assert r.store.release_route(ROUTE, r.clock()) == len(held_ids)
            r.worker.wake()
            for i in held_ids:
                await r.wait_state(i, State.DELIVERED)
            assert _wrong_identity_records(tmp_path, r) == []
        assert any(rec.name == "adressat.alarm" for rec in caplog.records)
        for rec in caplog.records:  # ids, never text
            assert "m1" not in rec.getMessage() and "after the trip" not in str(rec.__dict__)

    run(main())


def test_identity_mismatch_alarm_attempt_and_trip_in_one_write(tmp_path: Path) -> None:
    async def main() -> None:
        faults = AckFromStranger()
        async with rig(tmp_path, faults=faults) as r:
            faults.stranger = (r.network.register.identity(OTHER), OTHER)
            msg = make_msg(DEST, registered_delivery=1)
            await r.insert(msg)
            done = await r.wait_state(msg.id, State.QUARANTINED)
            assert done.error == DeliveryError.IDENTITY_MISMATCH
            [alarm] = r.store.alarms_between(0, float("inf"))
            assert (alarm.kind, alarm.message_ids, alarm.account, alarm.route) == (
                AlarmKind.IDENTITY_MISMATCH,
                (msg.id,),
                "acme",
                ROUTE,
            )
            assert f"msisdn={OTHER}" in alarm.detail
            assert r.store.held_routes() == frozenset({ROUTE})
            [att] = r.store.attempts_for_message(msg.id)
            assert att.outcome == "QUARANTINE"
            [rcpt] = r.store.pending_receipts("acme")
            assert rcpt.state is State.QUARANTINED and rcpt.error == 31
            await asyncio.sleep(0.05)
            assert r.get(msg.id).attempts == 1  # never retried

    run(main())


class ImsiReused(Faults):
    """The network answers for OTHER with the IMSI that earlier answered for DEST (and the
    register, wrongly, agrees in every answer: lookup, identity, owner): one IMSI, two
    numbers."""

    def __init__(self) -> None:
        self.imsi = ""
        self.active = False

    async def on_ack(
        self, result: Ack | Failure, imsi: str, node: str, sms: NetSms
    ) -> Ack | Failure:
        if self.active and isinstance(result, Ack) and imsi == self.imsi:
            return Ack(self.imsi, OTHER)
        return result


def _imsi_conflict(tmp_path: Path, *, restart_between: bool) -> None:
    """DEST gets ``first``; then the network answers for OTHER with DEST's IMSI. With
    ``restart_between``, the delivery side starts afresh in between and knows the first
    delivery only from the store (``recent_deliveries``), as the delivery process does."""
    faults = ImsiReused()
    first = make_msg(DEST, "first", submitted_at=T0 - 2)

    async def conflict(r: Rig) -> None:
        register = r.network.register
        faults.imsi = register.identity(DEST)
        real = register.identity
        real_lookup, real_owner = register.lookup, register.msisdn_for_imsi
        register.identity = lambda m: faults.imsi if m == OTHER else real(m)  # type: ignore[method-assign]
        register.lookup = lambda m: (  # type: ignore[method-assign]
            RoutingInfo(OTHER, faults.imsi, real_lookup(DEST).node)
            if m == OTHER
            else real_lookup(m)
        )
        register.msisdn_for_imsi = lambda i: (  # type: ignore[method-assign]
            OTHER if i == faults.imsi else real_owner(i)
        )
        faults.active = True
        second = make_msg(OTHER, "second", submitted_at=T0 - 1)
        await r.insert(second)
        done = await r.wait_state(second.id, State.QUARANTINED)
        assert done.error == DeliveryError.IMSI_CONFLICT
        assert r.get(first.id).state is State.DELIVERED  # a final state is written once
        [alarm] = r.store.alarms_between(0, float("inf"))
        assert alarm.kind is AlarmKind.IMSI_CONFLICT
        assert alarm.message_ids == (second.id, first.id)
        report = incident_report(r.store, T0 - 10, T0 + 10)
        acme = report["accounts"]["acme"]
        assert acme["suspect"] == [first.id] and acme["quarantined"] == [second.id]
        assert acme["delivered"] == [] and acme["held"] == []

    async def main() -> None:
        async with rig(tmp_path, faults=faults, breaker_alarms_threshold=0) as r:
            await r.insert(first)
            await r.wait_state(first.id, State.DELIVERED)
            if not restart_between:
                await conflict(r)
                return
        async with rig(tmp_path, faults=faults, breaker_alarms_threshold=0, start=False) as r:
            assert isinstance(r.adapter, NetsimAdapter)
            assert r.adapter.remember_deliveries(r.store.recent_deliveries(100)) == 1
            r.start()
            await conflict(r)

    run(main())


def test_imsi_conflict_quarantines_current_and_names_both(tmp_path: Path) -> None:
    _imsi_conflict(tmp_path, restart_between=False)


def test_imsi_conflict_with_a_delivery_made_before_a_restart(tmp_path: Path) -> None:
    _imsi_conflict(tmp_path, restart_between=True)


def test_answers_outside_their_attempt_are_never_applied(tmp_path: Path) -> None:
    async def main() -> None:
        async with rig(tmp_path) as r:
            msg = make_msg(DEST)
            await r.insert(msg)
            done = await r.wait_state(msg.id, State.DELIVERED)
            imsi = done.delivered_imsi
            assert imsi is not None
            # the same handset answers again: discarded, alarmed, no trip
            a = await r.worker.on_network_answer(NetworkAnswer(msg.id, 1, imsi, DEST))
            assert a is not None and a.kind is AlarmKind.DUPLICATE_ANSWER
            # an id we never sent
            b = await r.worker.on_network_answer(NetworkAnswer("f" * 32, 1, imsi, DEST))
            assert b is not None and b.kind is AlarmKind.UNMATCHED_ANSWER
            assert r.store.held_routes() == frozenset()
            # a stranger's handset acknowledges the delivered message: double delivery
            stranger = r.network.register.identity(OTHER)
            r.worker.on_late_ack(msg.id, 1, Ack(stranger, OTHER))  # netsim's channel shape
            await r.wait_for(lambda: r.store.alarm_count() == 3)
            c = r.store.alarms_between(0, float("inf"))[-1]
            assert c.kind is AlarmKind.STRAY_ACK and c.message_ids == (msg.id,)
            assert r.get(msg.id).state is State.DELIVERED  # never applied, never rewritten
            assert r.store.held_routes() == frozenset({ROUTE})
            assert incident_report(r.store, 0, T0 + 10)["accounts"]["acme"]["suspect"] == [msg.id]

    run(main())


def test_stray_ack_for_a_deferred_message_quarantines_it(tmp_path: Path) -> None:
    async def main() -> None:
        async with rig(tmp_path, start=False) as r:
            msg = make_msg(DEST, registered_delivery=1)
            await r.committer.insert(msg)
            [c] = r.store.claim_due(1, T0, 60, "x")
            r.store.transition(c.id, State.DISPATCHED, State.DEFERRED, T0, next_attempt_at=T0 + 99)
            stranger = r.network.register.identity(OTHER)
            a = await r.worker.on_network_answer(NetworkAnswer(msg.id, 1, stranger, OTHER))
            assert a is not None and a.kind is AlarmKind.STRAY_ACK
            m = r.get(msg.id)
            assert m.state is State.QUARANTINED and m.error == DeliveryError.IDENTITY_MISMATCH
            [rcpt] = r.store.pending_receipts("acme")
            assert rcpt.state is State.QUARANTINED

    run(main())


def test_audit_detected_and_undetected_misdeliveries(tmp_path: Path) -> None:
    async def main() -> None:
        faults = AckFromStranger()
        async with rig(tmp_path, faults=faults, breaker_alarms_threshold=0) as r:
            ok = make_msg(OTHER, "fine")
            await r.insert(ok)
            await r.wait_state(ok.id, State.DELIVERED)
            faults.stranger = (r.network.register.identity(OTHER), OTHER)
            bad = make_msg(DEST, "to a stranger")
            await r.insert(bad)
            await r.wait_state(bad.id, State.QUARANTINED)
            report = audit(r.store, tmp_path, T0 + 10)
            # the handset at DEST stored it; the ack lied: the record is at DEST, which is the
            # destination, so the audit sees no misdelivery; quarantine is counted
            assert report["quarantined"] == 1 and report["held"] == 0
            assert report["misdelivered_undetected"] == 0
            # forge a record at a stranger for the delivered message: undetected (no alarm)
            from adressat.netsim.inbox import InboxRecord

            [good] = r.network.inbox_of(OTHER)
            r.network.inbox.append(
                InboxRecord(
                    T0,
                    DEST,
                    "999",
                    good.node,
                    good.originator,
                    good.scts,
                    good.part,
                    0,
                    ok.id,
                    good.content_sha256,
                    False,
                )
            )
            r.network.inbox.append(
                InboxRecord(
                    T0,
                    OTHER,
                    "998",
                    good.node,
                    good.originator,
                    good.scts,
                    good.part,
                    0,
                    bad.id,
                    good.content_sha256,
                    False,
                )
            )
            r.network.inbox.close()
            report = audit(r.store, tmp_path, T0 + 10)
            assert report["misdelivered"] == 2
            assert report["misdelivered_detected"] == 1  # bad is QUARANTINED
            assert report["misdelivered_undetected"] == 1  # ok: nobody noticed
            assert report["samples"]["misdelivered_undetected"] == [ok.id]

    run(main())


def test_unknown_internal_fault_refused() -> None:
    f = InternalFaults()
    with pytest.raises(UnknownFault) as e:
        f.on("nope")
    assert "corrupt_pairing" in str(e.value)
    with pytest.raises(ValueError):
        f.on("corrupt_pairing", rate=2.0)


class TwoHandsets(Faults):
    """A node that stores one message at the right handset and at a stranger's."""

    def __init__(self) -> None:
        self.stranger = ""

    def recipients(self, imsi: str, node: str, sms: NetSms) -> tuple[str, ...]:
        return (imsi, self.stranger) if self.stranger else (imsi,)


def test_double_delivery_detected_quarantined_and_route_held(tmp_path: Path) -> None:
    async def main() -> None:
        faults = TwoHandsets()
        async with rig(tmp_path, faults=faults) as r:
            faults.stranger = r.network.register.identity(OTHER)
            msg = make_msg(DEST, registered_delivery=1)
            await r.insert(msg)
            done = await r.wait_state(msg.id, State.QUARANTINED)
            assert done.error == DeliveryError.IDENTITY_MISMATCH
            assert r.store.held_routes() == frozenset({ROUTE})
            report = audit(r.store, tmp_path, T0 + 10)
            assert report["misdelivered"] == 1 and report["misdelivered_detected"] == 1
            assert report["misdelivered_undetected"] == 0

    run(main())


def test_temporary_failure_on_a_held_route_is_held_not_deferred(tmp_path: Path) -> None:
    async def main() -> None:
        async with rig(tmp_path, start=False, held_refresh_s=0.01) as r:
            msg = make_msg(DEST)
            await r.committer.insert(msg)
            [c] = r.store.claim_due(1, T0, 60, "x")
            r.store.trip_route(ROUTE, "test", T0)
            await r.worker.refresh_held()
            out = Outcome.failed(OutcomeKind.TEMPORARY, DeliveryError.ABSENT_SUBSCRIBER)
            plan = r.worker._plan(c, out, T0)
            assert plan.new_state is State.HELD
            new = await r.worker._write(c, out, plan, T0, T0, sent=True)
            assert new is not None and new.state is State.HELD
            # released meanwhile (cache stale): the store check picks the retry plan
            msg2 = make_msg(OTHER)
            await r.committer.insert(msg2)
            r.store.release_route(ROUTE, T0)
            [c2] = [m for m in r.store.claim_due(5, T0, 60, "x") if m.id == msg2.id]
            plan2 = r.worker._plan(c2, out, T0)
            assert plan2.new_state is State.HELD  # the cache still says held
            new2 = await r.worker._write(c2, out, plan2, T0, T0, sent=True)
            assert new2 is not None and new2.state is State.DEFERRED

    run(main())


def test_node_applies_desired_faults_to_both_switchboards(tmp_path: Path) -> None:
    from adressat.app.delivery_process import DeliveryNode
    from adressat.app.settings import Settings
    from adressat.core.integrity import FaultSetting
    from adressat.observe.faults import network_switchboard
    from adressat.store.commit import GroupCommitter
    from adressat.store.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "adressat.db")
    node = DeliveryNode(Settings(home=tmp_path, subscribers=100, smpp_port=0),
                        GroupCommitter(store), b"k" * 32, on_final=lambda m: None)
    try:
        board = network_switchboard(node.network)
        assert board is not None
        on = [
            FaultSetting("corrupt_pairing", True, 0.5, "netsim", {}, 1.0),
            FaultSetting("ack_late", True, 1.0, "", {"delay_s": 3.0}, 1.0),
        ]
        assert sorted(node.apply_faults(on)) == ["ack_late", "corrupt_pairing"]
        assert node.apply_faults(on) == []  # unchanged: nothing re-applied
        assert node.internal_faults.is_on("corrupt_pairing")
        assert board.is_on("ack_late") and board.state("ack_late").params["delay_s"] == 3.0
        counters = node.fault_counters()
        assert counters["corrupt_pairing"]["on"] == 1 and counters["ack_late"]["on"] == 1
        off = [
            FaultSetting("corrupt_pairing", False, 1.0, "", {}, 2.0),
            FaultSetting("ack_late", False, 1.0, "", {}, 2.0),
        ]
        node.apply_faults(off)
        assert not node.internal_faults.is_on("corrupt_pairing") and not board.is_on("ack_late")
    finally:
        node.network.close()
        store.close()


def test_node_remembers_the_stores_deliveries_when_it_starts(tmp_path: Path) -> None:
    from adressat.app.delivery_process import DeliveryNode
    from adressat.app.settings import Settings
    from adressat.store.commit import GroupCommitter
    from adressat.store.sqlite import SqliteStore

    store = SqliteStore(tmp_path / "adressat.db")
    msgs = [make_msg(DEST, "a"), make_msg(OTHER, "b"), make_msg(DEST, "c")]
    store.insert_messages(msgs)
    for i in range(len(msgs)):
        [c] = store.claim_due(1, T0 + i, 60, "old-node")
        store.transition(c.id, State.DISPATCHED, State.DELIVERED, T0 + i,
                         expected_attempts=c.attempts, delivered_imsi=f"24001000000000{i % 2}",
                         delivered_msisdn=c.destination, error=0)
    assert [d[0] for d in store.recent_deliveries(10)] == [m.id for m in msgs]

    async def main() -> None:
        committer = GroupCommitter(store, inline=True)
        node = DeliveryNode(Settings(home=tmp_path, subscribers=100, smpp_port=0),
                            committer, b"k" * 32, on_final=lambda m: None)
        await node.start()
        try:
            # the newest delivery per IMSI wins, as when the guard saw them one by one
            assert node.adapter.answered_for("240010000000000") == (DEST, msgs[2].id)
            assert node.adapter.answered_for("240010000000001") == (OTHER, msgs[1].id)
        finally:
            await node.stop()
            await committer.aclose()

    try:
        run(main())
    finally:
        store.close()
