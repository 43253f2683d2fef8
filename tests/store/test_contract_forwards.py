"""Contract of the forwards to partners and their receipts (issue 11), on every back end:
the mapping is written with the FORWARDED outcome, a receipt is applied once and only to its
own message, one that comes first is held (durably) until its mapping commits, ambiguity and
unmatched receipts are alarms, and a message no receipt ends is UNKNOWN after the grace."""

from __future__ import annotations

from dataclasses import replace

import pytest
from store_helpers import make_msg

from adressat.core.integrity import AlarmKind
from adressat.core.interconnect import (
    ERROR_NO_RECEIPT,
    ERROR_NOT_DELIVERED,
    ERROR_OK,
    canonical_id,
    id_candidates,
)
from adressat.core.model import AttemptRecord, ForwardPart, Message, PartnerReceipt, State
from adressat.delivery.errors import DeliveryError
from adressat.store import StaleState, Store
from adressat.store.base import FinishedAttempt

S = State
NOW = 2000.0


def test_error_codes_agree_with_the_table() -> None:
    assert ERROR_OK == DeliveryError.OK
    assert ERROR_NOT_DELIVERED == DeliveryError.PARTNER_NOT_DELIVERED
    assert ERROR_NO_RECEIPT == DeliveryError.PARTNER_NO_RECEIPT


def _claimed(store: Store, **kw: object) -> Message:
    m = make_msg(route="out", **kw)
    store.insert_messages([m])
    [c] = store.claim_due(1, NOW, 60.0, "w1")
    assert c.id == m.id
    return c


def _item(m: Message, connector: str = "hub") -> FinishedAttempt:
    rec = AttemptRecord(m.id, m.account, m.destination, None, m.route, 1, m.attempts, NOW,
                        NOW + 1, "FORWARDED", 0)
    return FinishedAttempt(m, S.FORWARDED, {"error": 0, "extra": {"connector": connector}},
                           rec, NOW + 1)


def _parts(m: Message, *ids: str | None, connector: str = "hub") -> list[ForwardPart]:
    return [
        ForwardPart(m.id, n, len(ids), connector, None if pid is None else canonical_id(pid),
                    S.FORWARDED if pid is not None else S.UNDELIVERABLE,
                    None if pid is not None else int(DeliveryError.PARTNER_REFUSED), NOW + 1)
        for n, pid in enumerate(ids, start=1)
    ]


def _receipt(raw: str, state: State | None = S.DELIVERED, connector: str = "hub",
             at: float = NOW + 2) -> PartnerReceipt:
    return PartnerReceipt(connector, id_candidates(raw), state, at)


def test_forward_then_receipt_ends_the_message_with_a_receipt(store: Store) -> None:
    m = _claimed(store)
    r = store.record_forwarded(_item(m), _parts(m, "a1f"))
    assert r.message.state is S.FORWARDED and r.alarms == ()
    assert store.count_unfinished() == 1
    assert store.count_unfinished_by_state()[S.FORWARDED] == 1
    # the same id written in decimal with leading zeros (Jasmin #423)
    res = store.apply_partner_receipt(_receipt(str(0xA1F).zfill(10)), NOW + 2)
    assert res.outcome == "final" and res.message is not None
    assert res.message.state is S.DELIVERED and res.message.error == 0
    assert store.count_unfinished() == 0
    [receipt] = store.pending_receipts("acme")
    assert receipt.message_id == m.id and receipt.state is S.DELIVERED
    # a repeat changes nothing
    again = store.apply_partner_receipt(_receipt("A1F"), NOW + 3)
    assert again.outcome == "repeat"
    assert len(store.pending_receipts("acme")) == 1


def test_receipt_before_the_mapping_is_held_then_applied(store: Store) -> None:
    m = _claimed(store)
    held = store.apply_partner_receipt(_receipt("0000beef", S.UNDELIVERABLE), NOW + 0.5)
    assert held.outcome == "held" and store.count_held_receipts() == 1
    r = store.record_forwarded(_item(m), _parts(m, "BEEF"))
    assert r.message.state is S.UNDELIVERABLE
    assert r.message.error == ERROR_NOT_DELIVERED
    assert store.count_held_receipts() == 0
    assert [x.id for x in r.applied] == [m.id]


def test_a_receipt_for_no_one_is_given_up_with_an_alarm(store: Store) -> None:
    m = _claimed(store)
    store.record_forwarded(_item(m), _parts(m, "77"))
    assert store.apply_partner_receipt(_receipt("999"), NOW + 2).outcome == "held"
    assert store.expire_held_receipts(NOW + 1, NOW + 5) == []  # not old enough yet
    [alarm] = store.expire_held_receipts(NOW + 10, NOW + 10)
    assert alarm.kind is AlarmKind.PARTNER_RECEIPT_UNMATCHED and alarm.id > 0
    assert "connector=hub" in alarm.detail and alarm.message_ids == ()
    assert store.count_held_receipts() == 0
    assert store.get_message(m.id).state is S.FORWARDED  # type: ignore[union-attr]


def test_a_reused_partner_id_is_an_alarm_and_applies_to_neither(store: Store) -> None:
    a = _claimed(store)
    store.record_forwarded(_item(a), _parts(a, "1"))
    b = _claimed(store)
    r = store.record_forwarded(_item(b), _parts(b, "1"))
    [alarm] = r.alarms
    assert alarm.kind is AlarmKind.PARTNER_ID_REUSED
    assert set(alarm.message_ids) == {a.id, b.id}
    res = store.apply_partner_receipt(_receipt("1"), NOW + 2)
    assert res.outcome == "ambiguous" and res.alarm is None  # alarmed at the reuse
    for m in (a, b):
        assert store.get_message(m.id).state is S.FORWARDED  # type: ignore[union-attr]
    # a third message under the same id: counted, not alarmed again (one id for every
    # message, for as long as a partner runs, must not be an alarm per message)
    c = _claimed(store)
    again = store.record_forwarded(_item(c), _parts(c, "1"))
    assert again.alarms == () and again.reused == 1
    assert r.reused == 1


def test_the_same_id_on_another_connector_is_another_message(store: Store) -> None:
    a = _claimed(store)
    store.record_forwarded(_item(a), _parts(a, "5", connector="hub"))
    b = _claimed(store)
    r = store.record_forwarded(_item(b, "other"), _parts(b, "5", connector="other"))
    assert r.alarms == ()
    res = store.apply_partner_receipt(_receipt("5", connector="other"), NOW + 2)
    assert res.outcome == "final" and res.message is not None and res.message.id == b.id
    assert store.get_message(a.id).state is S.FORWARDED  # type: ignore[union-attr]


def test_multipart_delivered_only_when_every_part_is(store: Store) -> None:
    m = _claimed(store)
    store.record_forwarded(_item(m), _parts(m, "10", "11", "12"))
    assert store.apply_partner_receipt(_receipt("10"), NOW + 2).outcome == "part"
    assert store.apply_partner_receipt(_receipt("12", S.UNDELIVERABLE), NOW + 2).outcome == "part"
    res = store.apply_partner_receipt(_receipt("11"), NOW + 3)
    assert res.outcome == "final" and res.message is not None
    assert res.message.state is S.UNDELIVERABLE
    assert res.message.extra["failed_part"] == 3
    states = [f.state for f in store.forwards_of_message(m.id)]
    assert states == [S.DELIVERED, S.DELIVERED, S.UNDELIVERABLE]


def test_a_part_refused_after_others_were_accepted(store: Store) -> None:
    m = _claimed(store)
    r = store.record_forwarded(_item(m), _parts(m, "20", None))
    assert r.message.state is S.FORWARDED
    res = store.apply_partner_receipt(_receipt("20"), NOW + 2)
    assert res.message is not None and res.message.state is S.UNDELIVERABLE
    assert res.message.extra["failed_part"] == 2
    assert res.message.error == DeliveryError.PARTNER_REFUSED


def test_intermediate_receipts_leave_it_forwarded(store: Store) -> None:
    m = _claimed(store)
    store.record_forwarded(_item(m), _parts(m, "30"))
    assert store.apply_partner_receipt(_receipt("30", None), NOW + 2).outcome == "intermediate"
    assert store.get_message(m.id).state is S.FORWARDED  # type: ignore[union-attr]


def test_no_receipt_ends_unknown_after_validity_and_grace(store: Store) -> None:
    m = _claimed(store, expires_at=NOW + 100)
    store.record_forwarded(_item(m), _parts(m, "40"))
    assert store.expire_forwarded(NOW + 150, 60.0) == []  # within the grace
    [ended] = store.expire_forwarded(NOW + 161, 60.0)
    assert ended.state is S.UNKNOWN and ended.error == ERROR_NO_RECEIPT
    [receipt] = store.pending_receipts("acme")
    assert receipt.state is S.UNKNOWN
    late = store.apply_partner_receipt(_receipt("40"), NOW + 200)
    assert late.outcome == "repeat"
    assert store.get_message(m.id).state is S.UNKNOWN  # type: ignore[union-attr]


def test_forwarded_is_never_claimed_nor_expired_by_the_queue(store: Store) -> None:
    m = _claimed(store, expires_at=NOW + 10)
    store.record_forwarded(_item(m), _parts(m, "50"))
    assert store.claim_due(10, NOW + 5, 60.0, "w1") == []
    assert store.expire_due(NOW + 20) == []
    assert store.get_message(m.id).state is S.FORWARDED  # type: ignore[union-attr]


def test_a_stale_claim_writes_no_mapping(store: Store) -> None:
    m = _claimed(store)
    stale = replace(m, lease_owner="someone-else")
    with pytest.raises(StaleState):
        store.record_forwarded(_item(stale), _parts(m, "60"))
    assert store.forwards_of_message(m.id) == []
    assert store.get_message(m.id).state is S.DISPATCHED  # type: ignore[union-attr]


def test_many_forwards_in_one_unit_of_work(store: Store) -> None:
    a, b = _claimed(store), _claimed(store)
    c = _claimed(store)
    stale = replace(c, lease_owner="someone-else")
    store.apply_partner_receipt(_receipt("abc"), NOW + 0.5)  # held, for no one yet
    results = store.record_forwarded_many([
        (_item(a), _parts(a, "ABC")),
        (_item(b), _parts(b, "abc")),  # the same id again, in the same turn: reused
        (_item(stale), _parts(c, "def")),
    ])
    ra, rb, rc = results
    assert isinstance(rc, StaleState)
    assert store.forwards_of_message(c.id) == []
    assert not isinstance(ra, Exception) and not isinstance(rb, Exception)
    assert [al.kind for al in rb.alarms] == [AlarmKind.PARTNER_ID_REUSED]
    # the held receipt matches two messages now: applied to neither (the reuse is the alarm)
    assert store.count_held_receipts() == 0
    assert store.get_message(a.id).state is S.FORWARDED  # type: ignore[union-attr]
    assert store.get_message(b.id).state is S.FORWARDED  # type: ignore[union-attr]
    kinds = sorted(al.kind.value for r in (ra, rb) for al in r.alarms)
    assert kinds == ["partner_id_reused"]
    assert store.record_forwarded_many([]) == []
