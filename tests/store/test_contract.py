"""One contract suite for every Store back end (DESIGN.md, "Storage")."""

from __future__ import annotations

import itertools

import pytest
from store_helpers import make_msg

from adressat.core.integrity import Alarm, AlarmKind, FaultSetting
from adressat.core.lifecycle import TRANSITIONS, IllegalTransition
from adressat.core.model import FINAL_STATES, AttemptRecord, State
from adressat.store import (
    AccountExists,
    DuplicateDelivery,
    DuplicateMessage,
    NotPending,
    StaleState,
    Store,
    Transition,
    UnknownMessage,
)

S = State
NOW = 2000.0


# --- accounts, meta ------------------------------------------------------------------------------
def test_accounts(store: Store) -> None:
    store.add_account("acme", "scrypt$x", 100)
    store.add_account("beta", "scrypt$y")
    with pytest.raises(AccountExists):
        store.add_account("acme", "z")
    a = store.get_account("acme")
    assert a is not None and a.password_hash == "scrypt$x" and a.throughput_per_s == 100
    assert [x.name for x in store.list_accounts()] == ["acme", "beta"]
    assert store.remove_account("beta") and not store.remove_account("beta")
    assert store.get_account("beta") is None


def test_meta(store: Store) -> None:
    assert store.get_meta("node") is None
    store.set_meta("node", "1")
    store.set_meta("node", "2")
    assert store.get_meta("node") == "2"


# --- insert / get --------------------------------------------------------------------------------
def test_round_trip(store: Store) -> None:
    m = make_msg(
        content=bytes(range(256)),
        extra={"sar_msg_ref_num": 7, "note": "ünïcødé ☃"},
        source_addr="Åke",
        priority=2,
        tag=b"\x00\xff" * 8,
        data_coding=8,
        esm_class=0x40,
        source_ton=5,
        source_npi=0,
        protocol_id=1,
    )
    store.insert_messages([m])
    assert store.get_message(m.id) == m
    assert store.get_message("nope") is None


def test_insert_batch_is_all_or_nothing(store: Store) -> None:
    a = make_msg()
    store.insert_messages([a])
    b = make_msg()
    with pytest.raises(DuplicateMessage):
        store.insert_messages([b, a])
    assert store.get_message(b.id) is None
    with pytest.raises(DuplicateMessage):
        store.insert_messages([b, b])
    assert store.get_message(b.id) is None


# --- transitions ---------------------------------------------------------------------------------
def _reach(store: Store, state: State) -> str:
    """Insert a message and drive it to ``state`` with legal moves."""
    paths = {
        S.ACCEPTED: [],
        S.ROUTED: [S.ROUTED],
        S.DISPATCHED: [S.ROUTED, S.DISPATCHED],
        S.DEFERRED: [S.ROUTED, S.DISPATCHED, S.DEFERRED],
        S.HELD: [S.ROUTED, S.HELD],
        S.FORWARDED: [S.ROUTED, S.DISPATCHED, S.FORWARDED],
    }
    m = make_msg(state=S.ACCEPTED)
    store.insert_messages([m])
    cur = S.ACCEPTED
    for nxt in paths[state]:
        store.transition(m.id, cur, nxt, NOW)
        cur = nxt
    return m.id


@pytest.mark.parametrize(
    "old,new",
    [(o, n) for o, n in itertools.product(State, State) if o not in FINAL_STATES],
)
def test_every_transition(store: Store, old: State, new: State) -> None:
    mid = _reach(store, old)
    if new in TRANSITIONS[old]:
        got = store.transition(mid, old, new, NOW + 1, error=5 if new in FINAL_STATES else None)
        assert got.state is new
        assert store.get_message(mid) == got
        if new in FINAL_STATES:
            assert got.final_at == NOW + 1
            # a final state is written once
            for again in State:
                with pytest.raises((StaleState, IllegalTransition, DuplicateDelivery)):
                    store.transition(mid, new, again, NOW + 2)
    else:
        before = store.get_message(mid)
        with pytest.raises(IllegalTransition):
            store.transition(mid, old, new, NOW + 1)
        assert store.get_message(mid) == before


def test_compare_and_set(store: Store) -> None:
    mid = _reach(store, S.ROUTED)
    with pytest.raises(StaleState) as ei:
        store.transition(mid, S.DEFERRED, S.DISPATCHED, NOW)
    assert ei.value.actual is S.ROUTED
    [m] = store.claim_due(10, NOW, 30, "n1")
    assert m.id == mid and m.attempts == 1
    with pytest.raises(StaleState):
        store.transition(mid, S.DISPATCHED, S.DEFERRED, NOW, expected_attempts=0)
    got = store.transition(
        mid, S.DISPATCHED, S.DEFERRED, NOW, expected_attempts=1, next_attempt_at=NOW + 15
    )
    assert got.lease_until is None and got.lease_owner is None and got.next_attempt_at == NOW + 15
    got = store.transition(
        mid, S.DEFERRED, S.HELD, NOW, extra={"partner_id": "ab12", "n": 3}, route="hub1", error=8
    )
    assert store.get_message(mid) == got
    assert got.extra == {"partner_id": "ab12", "n": 3} and got.route == "hub1" and got.error == 8
    with pytest.raises(UnknownMessage):
        store.transition("missing", S.ROUTED, S.DISPATCHED, NOW)


def test_immutable_fields_refused(store: Store) -> None:
    mid = _reach(store, S.ROUTED)
    for field in ("destination", "content", "account", "tag", "state", "id"):
        with pytest.raises((ValueError, TypeError)):
            store.transition(mid, S.ROUTED, S.HELD, NOW, **{field: "x"})
    assert store.get_message(mid).state is S.ROUTED  # type: ignore[union-attr]


def test_final_terms_and_delivered_once(store: Store) -> None:
    mid = _reach(store, S.DISPATCHED)
    got = store.transition(
        mid,
        S.DISPATCHED,
        S.DELIVERED,
        NOW,
        delivered_imsi="240011234567890",
        delivered_msisdn="46701234567",
    )
    assert got.delivered_imsi == "240011234567890"
    with pytest.raises(DuplicateDelivery):
        store.transition(mid, S.DISPATCHED, S.DELIVERED, NOW, delivered_imsi="other")
    with pytest.raises(IllegalTransition):
        store.transition(mid, S.DELIVERED, S.DELIVERED, NOW)
    assert store.get_message(mid) == got


def test_apply_transitions_batch(store: Store) -> None:
    a, b = _reach(store, S.ROUTED), _reach(store, S.ROUTED)
    res = store.apply_transitions(
        [
            Transition(a, S.ROUTED, S.HELD),
            Transition(b, S.DEFERRED, S.HELD),
            Transition("missing", S.ROUTED, S.HELD),
            Transition(b, S.ROUTED, S.EXPIRED, {"error": 3}),
            Transition(a, S.HELD, S.DELIVERED),
        ],
        NOW,
    )
    assert res[0].state is S.HELD  # type: ignore[union-attr]
    assert isinstance(res[1], StaleState)
    assert isinstance(res[2], UnknownMessage)
    assert res[3].state is S.EXPIRED and res[3].error == 3  # type: ignore[union-attr]
    assert isinstance(res[4], IllegalTransition)
    assert store.get_message(a).state is S.HELD  # type: ignore[union-attr]
    assert store.get_message(b).state is S.EXPIRED  # type: ignore[union-attr]


# --- receipts ------------------------------------------------------------------------------------
def test_receipt_written_with_final_state(store: Store) -> None:
    m1 = make_msg(account="acme", registered_delivery=1, source_addr="A1")
    m2 = make_msg(account="beta", registered_delivery=2)  # failure only
    m3 = make_msg(account="beta", registered_delivery=2)
    m4 = make_msg(account="acme", registered_delivery=0)
    store.insert_messages([m1, m2, m3, m4])
    for m in (m1, m2, m3, m4):
        store.transition(m.id, S.ROUTED, S.DISPATCHED, NOW)
    assert store.pending_receipts("acme") == [] and store.pending_receipts("beta") == []
    store.transition(m1.id, S.DISPATCHED, S.DELIVERED, NOW + 1, delivered_imsi="i1")
    store.transition(m2.id, S.DISPATCHED, S.DELIVERED, NOW + 1, delivered_imsi="i2")
    store.transition(m3.id, S.DISPATCHED, S.QUARANTINED, NOW + 2, error=99)
    store.transition(m4.id, S.DISPATCHED, S.UNDELIVERABLE, NOW + 2)
    [r1] = store.pending_receipts("acme")
    assert (r1.message_id, r1.account, r1.state, r1.final_at) == (
        m1.id,
        "acme",
        S.DELIVERED,
        NOW + 1,
    )
    assert (r1.source_addr, r1.destination, r1.submitted_at) == ("A1", m1.destination, 1000.0)
    [r3] = store.pending_receipts("beta")
    assert (r3.message_id, r3.account, r3.state, r3.error) == (m3.id, "beta", S.QUARANTINED, 99)
    assert store.pending_receipts("nobody") == []
    assert store.mark_receipt_sent(r1.receipt_id, NOW + 3)
    assert not store.mark_receipt_sent(r1.receipt_id, NOW + 4)
    assert not store.mark_receipt_sent(123456, NOW + 4)
    assert store.pending_receipts("acme") == []


def test_receipt_carries_the_user_message_reference(store: Store) -> None:
    m = make_msg(registered_delivery=1, extra={"user_message_reference": 7})
    store.insert_messages([m])
    store.transition(m.id, S.ROUTED, S.DISPATCHED, NOW)
    store.transition(m.id, S.DISPATCHED, S.UNDELIVERABLE, NOW + 1, error=11)
    [r] = store.pending_receipts("acme")
    assert (r.message_id, r.user_message_reference) == (m.id, 7)


def test_receipt_rolls_back_with_the_final_state(store: Store) -> None:
    mid = _reach(store, S.DISPATCHED)
    with pytest.raises(RuntimeError):
        with store.batch():
            store.transition(mid, S.DISPATCHED, S.UNDELIVERABLE, NOW)
            raise RuntimeError("crash before commit")
    assert store.get_message(mid).state is S.DISPATCHED  # type: ignore[union-attr]
    assert store.pending_receipts("acme") == []


def test_receipts_for_expiry_and_cancel(store: Store) -> None:
    a = make_msg(expires_at=NOW)
    b = make_msg()
    store.insert_messages([a, b])
    [e] = store.expire_due(NOW)
    assert e.id == a.id and e.state is S.EXPIRED and e.final_at == NOW
    store.cancel(b.id, "acme", NOW)
    assert [(r.message_id, r.state) for r in store.pending_receipts("acme")] == [
        (a.id, S.EXPIRED),
        (b.id, S.CANCELLED),
    ]


# --- claim_due -----------------------------------------------------------------------------------
def test_claim_order_priority_then_age(store: Store) -> None:
    old = make_msg(submitted_at=900.0, next_attempt_at=900.0)
    new = make_msg(submitted_at=1000.0, next_attempt_at=1000.0)
    urgent = make_msg(submitted_at=1500.0, next_attempt_at=1500.0, priority=3)
    mid = make_msg(submitted_at=1600.0, next_attempt_at=1600.0, priority=1)
    store.insert_messages([new, urgent, old, mid])
    got = store.claim_due(10, NOW, 30.0, "n1")
    assert [m.id for m in got] == [urgent.id, mid.id, old.id, new.id]
    for m in got:
        assert m.state is S.DISPATCHED and m.lease_until == NOW + 30 and m.lease_owner == "n1"
        assert m.attempts == 1
        assert store.get_message(m.id) == m
    assert store.claim_due(10, NOW, 30.0, "n1") == []


def test_claim_limit(store: Store) -> None:
    ms = [make_msg(submitted_at=1000.0 + i, next_attempt_at=1000.0 + i) for i in range(10)]
    store.insert_messages(ms)
    a = store.claim_due(3, NOW, 30, "n1")
    b = store.claim_due(3, NOW, 30, "n1")
    assert [m.id for m in a + b] == [m.id for m in ms[:6]]


def test_claim_one_per_destination(store: Store) -> None:
    first = make_msg(destination="46700000001", submitted_at=900.0, next_attempt_at=900.0)
    second = make_msg(destination="46700000001", submitted_at=950.0, next_attempt_at=950.0)
    other = make_msg(destination="46700000002")
    store.insert_messages([second, first, other])
    got = store.claim_due(10, NOW, 30, "n1")
    assert {m.id for m in got} == {first.id, other.id}
    # the destination already has a DISPATCHED message: nothing more for it
    assert store.claim_due(10, NOW, 30, "n1") == []
    store.transition(first.id, S.DISPATCHED, S.DELIVERED, NOW, delivered_imsi="x")
    [nxt] = store.claim_due(10, NOW, 30, "n1")
    assert nxt.id == second.id


def test_claim_honours_times(store: Store) -> None:
    later = make_msg(not_before=NOW + 10)
    retry_later = make_msg(state=S.DEFERRED, next_attempt_at=NOW + 10)
    expired = make_msg(expires_at=NOW)
    held = make_msg(state=S.HELD)
    accepted = make_msg(state=S.ACCEPTED)
    store.insert_messages([later, retry_later, expired, held, accepted])
    assert store.claim_due(10, NOW, 30, "n1") == []
    got = store.claim_due(10, NOW + 10, 30, "n1")
    assert {m.id for m in got} == {later.id, retry_later.id}


def test_leases_and_recovery(store: Store) -> None:
    m = make_msg()
    store.insert_messages([m])
    [c] = store.claim_due(1, NOW, 30, "n1")
    assert store.recover_leases(NOW + 29) == 0
    assert store.recover_leases(NOW + 31) == 1
    r = store.get_message(m.id)
    assert r is not None and r.state is S.DEFERRED and r.lease_until is None
    assert r.next_attempt_at == NOW + 31
    # the first node's late result is refused by the attempt check after a re-claim
    [c2] = store.claim_due(1, NOW + 31, 30, "n2")
    assert c2.attempts == 2 and c2.lease_owner == "n2"
    with pytest.raises(StaleState):
        store.transition(m.id, S.DISPATCHED, S.DELIVERED, NOW + 32, expected_attempts=c.attempts)


def _deliver(store: Store, msg_id: str, dest: str, now: float) -> None:
    store.transition(msg_id, S.DISPATCHED, S.DELIVERED, now, expected_attempts=1,
                     delivered_imsi="1", delivered_msisdn=dest, error=0)


def test_tp_scts_given_at_the_first_claim_per_destination_kept_by_resends(store: Store) -> None:
    """TS 23.040 6.2: every message to one MS gets a stamp of its own, and a resend of a
    message is identified by the same one."""
    dest, other = "46701000042", "46701000043"
    a, b = make_msg(destination=dest), make_msg(destination=dest, submitted_at=1001.0)
    c = make_msg(destination=other)
    store.insert_messages([a, b, c])
    assert all(store.get_message(m.id).scts is None for m in (a, b, c))  # type: ignore[union-attr]
    got = {m.id: m for m in store.claim_due(10, NOW + 0.25, 30, "n1")}
    assert set(got) == {a.id, c.id}  # one per destination
    # the second of the claim; destinations are independent
    assert got[a.id].scts == got[c.id].scts == 2000
    assert store.get_message(a.id).scts == 2000  # type: ignore[union-attr]
    assert got[a.id].reference is None  # SMS-DELIVER has no TP-MR
    # a's first attempt fails; b goes next, within the same second: bumped, not shared
    store.transition(a.id, S.DISPATCHED, S.DEFERRED, NOW, expected_attempts=1,
                     next_attempt_at=NOW + 5, lease_until=None, lease_owner=None)
    [gb] = store.claim_due(10, NOW + 0.75, 30, "n1")
    assert gb.id == b.id and gb.scts == 2001
    _deliver(store, b.id, dest, NOW + 1)
    # a's resend keeps its stamp, as does one after lease recovery
    [ra] = store.claim_due(10, NOW + 5, 30, "n1")
    assert ra.id == a.id and ra.attempts == 2 and ra.scts == 2000
    assert store.recover_leases(NOW + 40) == 2  # a and c
    again = {m.id: m for m in store.claim_due(10, NOW + 40, 30, "n2")}
    assert again[a.id].attempts == 3 and again[a.id].scts == 2000
    assert again[c.id].attempts == 2 and again[c.id].scts == 2000
    assert store.get_message(c.id).scts == 2000  # type: ignore[union-attr]


def test_tp_scts_bumped_within_one_second_and_back_to_the_clock(store: Store) -> None:
    dest = "46701000044"
    stamps = []
    for t in (0.0, 0.1, 0.2, 0.9, 1.0, 1.5, 100.0, 100.5, 50.0):
        m = make_msg(destination=dest)
        store.insert_messages([m])
        [got] = store.claim_due(1, NOW + t, 30, "n1")
        assert got.id == m.id
        stamps.append(got.scts)
        _deliver(store, m.id, dest, NOW + t)
    # distinct, each as close to its second as distinctness allows (TS 23.040 6.2 b); a
    # clock that steps back still gets one after the last
    assert stamps == [2000, 2001, 2002, 2003, 2004, 2005, 2100, 2101, 2102]


def test_tp_scts_of_many_destinations_in_one_claim(store: Store) -> None:
    msgs = [make_msg(destination=f"4670200{i:04d}") for i in range(600)]  # > one IN (...)
    store.insert_messages(msgs)
    got = store.claim_due(700, NOW, 30, "n1")
    assert len(got) == 600 and {m.scts for m in got} == {2000}
    # each destination's counter moved on: the next message to any of them is bumped
    nxt = make_msg(destination=msgs[7].destination)
    store.insert_messages([nxt])
    _deliver(store, msgs[7].id, msgs[7].destination, NOW)
    [n] = store.claim_due(10, NOW, 30, "n1")
    assert n.id == nxt.id and n.scts == 2001


def test_replace_gives_a_stamped_message_a_new_stamp(store: Store) -> None:
    """New content under the old stamp would be taken for a resend by a handset that had
    stored the old one (an attempt whose answer was lost)."""
    dest = "46701000045"
    a, fresh = make_msg(destination=dest), make_msg(destination="46701000046")
    store.insert_messages([a, fresh])
    assert {m.id for m in store.claim_due(10, NOW, 30, "n1")} == {a.id, fresh.id}
    store.transition(a.id, S.DISPATCHED, S.DEFERRED, NOW, expected_attempts=1,
                     next_attempt_at=NOW + 5, lease_until=None, lease_owner=None)
    r = store.replace(a.id, "acme", NOW + 0.5, content=b"new", tag=b"\x02" * 16)
    assert r.scts == 2001
    [ra] = store.claim_due(10, NOW + 5, 30, "n1")
    assert ra.id == a.id and ra.scts == 2001 and ra.content == b"new"
    # never attempted: nothing to change, its first claim stamps it
    b = make_msg(destination=dest)
    store.insert_messages([b])
    assert store.replace(b.id, "acme", NOW + 6, content=b"x", tag=b"\x03" * 16).scts is None


def test_recent_deliveries_oldest_first_with_identity_only(store: Store) -> None:
    ids = []
    for i, imsi in enumerate(["i0", None, "i2", "i3"]):
        m = make_msg()
        store.insert_messages([m])
        [c] = store.claim_due(1, NOW, 30, "n1")
        store.transition(m.id, S.DISPATCHED, S.DELIVERED, NOW + i, expected_attempts=1,
                         delivered_imsi=imsi, delivered_msisdn=None if imsi is None else "4670",
                         error=0)
        ids.append(m.id)
    assert store.recent_deliveries(10) == [
        (ids[0], "i0", "4670"), (ids[2], "i2", "4670"), (ids[3], "i3", "4670")
    ]
    assert store.recent_deliveries(2) == [(ids[2], "i2", "4670"), (ids[3], "i3", "4670")]
    assert store.recent_deliveries(0) == []


def test_expire_due_leaves_held_and_dispatched(store: Store) -> None:
    a = make_msg(expires_at=NOW)
    b = make_msg(expires_at=NOW, state=S.DEFERRED)
    held = make_msg(expires_at=NOW, state=S.HELD)
    flying = make_msg(expires_at=NOW, state=S.DISPATCHED, lease_until=NOW + 5)
    fresh = make_msg(expires_at=NOW + 1)
    store.insert_messages([a, b, held, flying, fresh])
    got = store.expire_due(NOW)
    assert {m.id for m in got} == {a.id, b.id}
    assert store.expire_due(NOW) == []
    assert store.get_message(held.id).state is S.HELD  # type: ignore[union-attr]


def test_retry_now_hold_release(store: Store) -> None:
    d = make_msg(state=S.DEFERRED, next_attempt_at=NOW + 100, route="r1")
    r = make_msg(route="r1")
    o = make_msg(route="r2")
    store.insert_messages([d, r, o])
    assert store.retry_now(d.destination, NOW) == 1
    assert store.get_message(d.id).next_attempt_at == NOW  # type: ignore[union-attr]
    assert store.hold_route("r1", NOW) == 2
    assert [m.id for m in store.claim_due(10, NOW, 30, "n")] == [o.id]
    assert store.release_route("r1", NOW + 1) == 2
    assert {m.id for m in store.claim_due(10, NOW + 1, 30, "n")} == {d.id, r.id}


# --- cancel / replace ----------------------------------------------------------------------------
def test_cancel(store: Store) -> None:
    m = make_msg()
    store.insert_messages([m])
    with pytest.raises(UnknownMessage):
        store.cancel(m.id, "someone-else", NOW)
    got = store.cancel(m.id, "acme", NOW)
    assert got.state is S.CANCELLED and got.final_at == NOW
    with pytest.raises(NotPending):
        store.cancel(m.id, "acme", NOW)
    f = make_msg()
    store.insert_messages([f])
    store.claim_due(1, NOW, 30, "n")
    with pytest.raises(NotPending):
        store.cancel(f.id, "acme", NOW)


def test_replace(store: Store) -> None:
    m = make_msg()
    store.insert_messages([m])
    with pytest.raises(UnknownMessage):
        store.replace(m.id, "other", NOW, content=b"x", tag=b"t" * 16)
    got = store.replace(
        m.id,
        "acme",
        NOW,
        content=b"new text",
        tag=b"t" * 16,
        not_before=NOW + 50,
        registered_delivery=0,
        expires_at=9000.0,
    )
    assert got.content == b"new text" and got.tag == b"t" * 16
    assert got.not_before == NOW + 50 and got.next_attempt_at == NOW + 50
    assert got.registered_delivery == 0 and got.expires_at == 9000.0
    assert got.destination == m.destination and got.state is S.ROUTED
    assert store.get_message(m.id) == got
    store.claim_due(1, NOW + 50, 30, "n")
    with pytest.raises(NotPending):
        store.replace(m.id, "acme", NOW, content=b"y", tag=b"t" * 16)


def test_replace_moves_a_scheduled_message_earlier_but_keeps_a_backoff(store: Store) -> None:
    m = make_msg(not_before=NOW + 300, next_attempt_at=NOW + 300)
    store.insert_messages([m])
    got = store.replace(m.id, "acme", NOW, content=b"x", tag=b"t" * 16, not_before=NOW + 10)
    assert got.next_attempt_at == NOW + 10 and got.not_before == NOW + 10
    assert [c.id for c in store.claim_due(5, NOW + 10, 30, "n")] == [m.id]
    # after a failed attempt the retry time stays, a replace cannot pull it forward
    store.transition(m.id, S.DISPATCHED, S.DEFERRED, NOW + 11, next_attempt_at=NOW + 500)
    again = store.replace(m.id, "acme", NOW + 12, content=b"y", tag=b"t" * 16,
                          not_before=NOW + 20)
    assert again.next_attempt_at == NOW + 500


# --- audit, counts, listing ----------------------------------------------------------------------
def _attempt(mid: str, account: str, t: float, end: float | None = None) -> AttemptRecord:
    return AttemptRecord(mid, account, "4670", "24001", "netsim", 1, 1, t, end, "delivered")


def test_audit_append_only(store: Store) -> None:
    store.append_attempt(_attempt("m1", "acme", 10.0, 11.0))
    store.append_attempt(_attempt("m2", "beta", 20.0, None))
    store.append_attempt(_attempt("m1", "acme", 30.0, 31.0))
    assert [a.started_at for a in store.attempts_between(0, 100)] == [10.0, 20.0, 30.0]
    assert [a.message_id for a in store.attempts_between(15, 25)] == ["m2"]
    assert [a.started_at for a in store.attempts_between(0, 100, "acme")] == [10.0, 30.0]
    assert [a.started_at for a in store.attempts_between(10.5, 12)] == [10.0]  # overlap
    assert len(store.attempts_for_message("m1")) == 2
    for name in ("update_attempt", "delete_attempt", "remove_attempt"):
        assert not hasattr(store, name)


def test_counts_and_listing(store: Store) -> None:
    ms = [make_msg(submitted_at=1000.0 + i) for i in range(3)] + [make_msg(account="beta")]
    store.insert_messages(ms)
    store.transition(ms[0].id, S.ROUTED, S.HELD, NOW)
    counts = store.count_by_state()
    assert counts[S.ROUTED] == 3 and counts[S.HELD] == 1 and counts[S.DELIVERED] == 0
    assert set(counts) == set(State)
    assert [m.id for m in store.list_messages(account="acme")] == [m.id for m in ms[:3]]
    assert [m.id for m in store.list_messages(state=S.HELD)] == [ms[0].id]
    assert [m.id for m in store.list_messages(since=1001.0, until=1002.0)] == [ms[1].id]
    assert [m.id for m in store.list_messages(destination=ms[2].destination)] == [ms[2].id]


def test_purge_content(store: Store) -> None:
    a, b = make_msg(), make_msg()
    store.insert_messages([a, b])
    store.transition(a.id, S.ROUTED, S.UNDELIVERABLE, NOW)
    assert store.purge_content(NOW) == 0
    assert store.purge_content(NOW + 1) == 1
    assert store.get_message(a.id).content == b""  # type: ignore[union-attr]
    assert store.get_message(b.id).content == b.content  # type: ignore[union-attr]


# --- units of work -------------------------------------------------------------------------------
def test_batch_savepoint_isolates_a_failed_op(store: Store) -> None:
    a, b = make_msg(), make_msg()
    with store.batch():
        store.insert_messages([a])
        with pytest.raises(DuplicateMessage):
            store.insert_messages([b, a])
        try:
            with store.savepoint():
                store.insert_messages([b])
                raise RuntimeError
        except RuntimeError:
            pass
    assert store.get_message(a.id) is not None and store.get_message(b.id) is None


# --- integrity: alarms, route breakers, faults ---------------------------------------------------
def _alarm(at: float, kind: str = "tag_mismatch", route: str = "r1", *ids: str) -> Alarm:
    return Alarm(
        at=at,
        kind=AlarmKind(kind),
        message_ids=ids or ("m1",),
        account="acme",
        route=route,
        node=1,
        adapter="netsim",
        detail="error=30",
    )


def test_alarms_append_only_and_counted(store: Store) -> None:
    a = store.append_alarm(_alarm(10.0, "imsi_conflict", "r1", "m1", "m0"))
    b = store.append_alarm(_alarm(20.0, "late_answer", "r2"))
    c = store.append_alarm(_alarm(30.0, "stray_ack", "r1"))
    assert 0 < a.id < b.id < c.id
    assert a.message_ids == ("m1", "m0")
    got = store.alarms_between(0, 100)
    assert got == [a, b, c]
    assert [x.id for x in store.alarms_between(15, 30)] == [b.id]  # [t1, t2)
    assert store.alarm_count() == 3
    assert store.alarm_count("r1") == 2 and store.alarm_count("r2") == 1
    assert store.alarm_count("nope") == 0
    for name in ("update_alarm", "delete_alarm", "remove_alarm"):
        assert not hasattr(store, name)
    # breaker counts: only kinds that show a wrong recipient, per route
    by_name = {r.name: r for r in store.route_status()}
    assert by_name["r1"].alarms == 2 and by_name["r1"].alarms_total == 2
    assert (by_name["r2"].alarms, by_name["r2"].alarms_total) == (0, 1)  # listed, not counted


def test_alarm_rolls_back_with_its_transaction(store: Store) -> None:
    with pytest.raises(RuntimeError):
        with store.savepoint():
            store.append_alarm(_alarm(1.0))
            raise RuntimeError
    assert store.alarm_count() == 0
    assert all(r.alarms == 0 for r in store.route_status())


def test_trip_route_holds_queued_and_release_brings_them_back(store: Store) -> None:
    routed = make_msg(route="r1")
    deferred = make_msg(route="r1", state=S.DEFERRED, next_attempt_at=NOW + 50)
    other = make_msg(route="r2")
    flying = make_msg(route="r1")
    store.insert_messages([flying])
    [claimed] = store.claim_due(1, NOW, 30, "n")
    assert claimed.id == flying.id
    store.insert_messages([routed, deferred, other])
    store.append_alarm(_alarm(NOW, "tag_mismatch", "r1", flying.id))
    assert store.held_routes() == frozenset()
    assert store.trip_route("r1", "tag_mismatch:" + flying.id, NOW) == 2
    assert store.held_routes() == frozenset({"r1"})
    assert store.get_message(routed.id).state is S.HELD  # type: ignore[union-attr]
    assert store.get_message(deferred.id).state is S.HELD  # type: ignore[union-attr]
    assert store.get_message(other.id).state is S.ROUTED  # type: ignore[union-attr]
    assert store.get_message(flying.id).state is S.DISPATCHED  # type: ignore[union-attr]
    # a second trip keeps the first reason and time
    assert store.trip_route("r1", "later", NOW + 5) == 0
    [r1] = [r for r in store.route_status() if r.name == "r1"]
    assert (r1.held, r1.held_at, r1.reason, r1.alarms, r1.held_messages) == (
        True,
        NOW,
        "tag_mismatch:" + flying.id,
        1,
        2,
    )
    # held messages are not claimed and not expired while held
    assert [m.id for m in store.claim_due(10, NOW, 30, "n")] == [other.id]
    assert store.expire_due(NOW + 10_000) == []  # r2's message is in flight, r1's are held
    assert store.get_message(routed.id).state is S.HELD  # type: ignore[union-attr]
    assert store.release_route("r1", NOW + 1) == 2
    assert store.held_routes() == frozenset()
    [r1] = [r for r in store.route_status() if r.name == "r1"]
    assert (r1.held, r1.held_at, r1.reason, r1.alarms, r1.held_messages) == (False, None, "", 0, 0)
    assert r1.alarms_total == 1
    m = store.get_message(deferred.id)
    assert m is not None and m.state is S.ROUTED and m.next_attempt_at == NOW + 1


def test_trip_route_rolls_back_whole(store: Store) -> None:
    m = make_msg(route="r1")
    store.insert_messages([m])
    with pytest.raises(RuntimeError):
        with store.savepoint():
            store.trip_route("r1", "x", NOW)
            raise RuntimeError
    assert store.held_routes() == frozenset()
    assert store.get_message(m.id).state is S.ROUTED  # type: ignore[union-attr]


def test_faults_desired_state(store: Store) -> None:
    assert store.list_faults() == []
    store.set_fault(FaultSetting("corrupt_pairing", True, 0.5, "r1", {"k": 1}, 10.0))
    store.set_fault(FaultSetting("ack_lost", False, 1.0, "", {}, 11.0))
    store.set_fault(FaultSetting("corrupt_pairing", False, 0.25, "", {}, 12.0))
    assert store.list_faults() == [
        FaultSetting("ack_lost", False, 1.0, "", {}, 11.0),
        FaultSetting("corrupt_pairing", False, 0.25, "", {}, 12.0),
    ]
