"""Contract of ``Store.finish_attempts`` (the delivery worker's batched outcome write), on every
back end: each item is a compare-and-set on its claim, refused alone, with its own result."""

from __future__ import annotations

from typing import Any

import pytest
from store_helpers import make_msg

from adressat.core.lifecycle import IllegalTransition
from adressat.core.model import AttemptRecord, Message, State
from adressat.store import DuplicateDelivery, StaleState, Store, UnknownMessage
from adressat.store.base import FinishedAttempt

S = State
NOW = 2000.0


def _claim(store: Store, *msgs: Message, owner: str = "w1") -> list[Message]:
    store.insert_messages(list(msgs))
    claimed = store.claim_due(len(msgs), NOW, 60.0, owner)
    assert sorted(m.id for m in claimed) == sorted(m.id for m in msgs)
    by_id = {m.id: m for m in claimed}
    return [by_id[m.id] for m in msgs]


def _record(m: Message, outcome: str = "DELIVERED", at: float = NOW + 1) -> AttemptRecord:
    return AttemptRecord(
        message_id=m.id,
        account=m.account,
        destination=m.destination,
        imsi="240010000000001",
        route=m.route,
        node=1,
        attempt=m.attempts,
        started_at=NOW,
        ended_at=at,
        outcome=outcome,
        error=0,
    )


def _delivered(m: Message, at: float = NOW + 1) -> FinishedAttempt:
    changes: dict[str, Any] = {
        "error": 0,
        "delivered_imsi": "240010000000001",
        "delivered_msisdn": m.destination,
    }
    return FinishedAttempt(m, S.DELIVERED, changes, _record(m, at=at), at)


def _failed(m: Message, state: State, error: int = 1, **changes: Any) -> FinishedAttempt:
    return FinishedAttempt(
        m, state, {"error": error, **changes}, _record(m, "TEMPORARY", NOW + 1), NOW + 1
    )


def test_empty(store: Store) -> None:
    assert store.finish_attempts([]) == []


def test_outcomes_written_like_transitions(store: Store) -> None:
    a, b, c = _claim(store, make_msg(), make_msg(), make_msg())
    out = store.finish_attempts(
        [
            _delivered(a),
            _failed(b, S.DEFERRED, next_attempt_at=NOW + 30),
            _failed(c, S.UNDELIVERABLE, error=11),
        ]
    )
    assert all(isinstance(x, Message) for x in out)
    for x in out:
        assert isinstance(x, Message)
        assert store.get_message(x.id) == x  # the returned value is the stored row
        assert x.lease_owner is None and x.lease_until is None
    da, db, dc = (store.get_message(m.id) for m in (a, b, c))
    assert da is not None and da.state is S.DELIVERED and da.final_at == NOW + 1
    assert da.delivered_imsi == "240010000000001" and da.delivered_msisdn == a.destination
    assert da.attempts == 1 and da.error == 0
    assert db is not None and db.state is S.DEFERRED and db.next_attempt_at == NOW + 30
    assert db.final_at is None and db.error == 1
    assert dc is not None and dc.state is S.UNDELIVERABLE and dc.error == 11
    for m in (a, b, c):
        [rec] = store.attempts_for_message(m.id)
        assert rec.attempt == 1 and rec.message_id == m.id
    # the DEFERRED one is claimable again when due, at its next attempt
    [again] = store.claim_due(5, NOW + 30, 60.0, "w2")
    assert again.id == b.id and again.attempts == 2


def test_a_stale_item_fails_alone(store: Store) -> None:
    a, b, c, d = _claim(store, make_msg(), make_msg(), make_msg(), make_msg())
    # moved by someone else meanwhile (lease recovery)
    store.transition(
        b.id, S.DISPATCHED, S.DEFERRED, NOW, expected_attempts=1, next_attempt_at=NOW + 99
    )
    # moved, then claimed again: DISPATCHED as the claim says, but at attempt 2
    store.transition(
        c.id, S.DISPATCHED, S.DEFERRED, NOW, expected_attempts=1, next_attempt_at=NOW
    )
    [again] = store.claim_due(5, NOW, 60.0, "w1")
    assert again.id == c.id and again.attempts == 2
    out = store.finish_attempts([_delivered(a), _delivered(b), _delivered(c), _delivered(d)])
    assert isinstance(out[0], Message) and isinstance(out[3], Message)
    assert isinstance(out[1], StaleState) and isinstance(out[2], StaleState)
    mb, mc = store.get_message(b.id), store.get_message(c.id)
    assert mb is not None and mb.state is S.DEFERRED and mb.attempts == 1
    assert mc is not None and mc.state is S.DISPATCHED and mc.attempts == 2
    for m in (b, c):  # a refused item leaves nothing behind
        assert store.attempts_for_message(m.id) == []
    assert len(store.attempts_for_message(a.id)) == 1
    assert [r.message_id for r in store.pending_receipts("acme")] == [a.id, d.id]


def test_another_lease_owner_is_stale(store: Store) -> None:
    a, b = _claim(store, make_msg(), make_msg(), owner="w1")
    forged = FinishedAttempt(
        Message(**{**_fields(b), "lease_owner": "w2"}),
        S.DELIVERED,
        {"error": 0},
        _record(b),
        NOW + 1,
    )
    out = store.finish_attempts([_delivered(a), forged])
    assert isinstance(out[0], Message)
    assert isinstance(out[1], StaleState)
    mb = store.get_message(b.id)
    assert mb is not None and mb.state is S.DISPATCHED and mb.lease_owner == "w1"


def test_a_claim_that_is_not_the_stored_message_is_refused(store: Store) -> None:
    a, b = _claim(store, make_msg(), make_msg())
    other_dest = Message(**{**_fields(b), "destination": "46709999999"})
    other_account = Message(**{**_fields(a), "account": "mallory"})
    out = store.finish_attempts([_delivered(other_account), _delivered(other_dest)])
    assert isinstance(out[0], StaleState) and isinstance(out[1], StaleState)
    assert store.pending_receipts("mallory") == [] and store.pending_receipts("acme") == []
    assert store.count_by_state()[S.DISPATCHED] == 2


def test_a_second_delivery_is_refused_alone(store: Store) -> None:
    a, b = _claim(store, make_msg(), make_msg())
    [first] = store.finish_attempts([_delivered(a)])
    assert isinstance(first, Message)
    out = store.finish_attempts([_delivered(a, at=NOW + 5), _delivered(b)])
    assert isinstance(out[0], DuplicateDelivery)
    assert isinstance(out[1], Message) and out[1].state is S.DELIVERED
    ma = store.get_message(a.id)
    assert ma == first  # untouched: final_at still the first delivery's
    assert len(store.attempts_for_message(a.id)) == 1
    assert [r.message_id for r in store.pending_receipts("acme")] == [a.id, b.id]


def test_receipts_only_when_wanted_and_to_the_owner(store: Store) -> None:
    msgs = [
        make_msg(account="acme", registered_delivery=1),  # delivered: receipt
        make_msg(account="beta", registered_delivery=0),  # delivered: none
        make_msg(account="beta", registered_delivery=2),  # delivered, failure only: none
        make_msg(account="gamma", registered_delivery=2),  # undeliverable: receipt
        make_msg(account="acme", registered_delivery=1),  # deferred: none (not final)
        make_msg(account="delta", registered_delivery=1),  # quarantined: receipt
    ]
    claimed = _claim(store, *msgs)
    out = store.finish_attempts(
        [
            _delivered(claimed[0]),
            _delivered(claimed[1]),
            _delivered(claimed[2]),
            _failed(claimed[3], S.UNDELIVERABLE, error=11),
            _failed(claimed[4], S.DEFERRED, next_attempt_at=NOW + 30),
            _failed(claimed[5], S.QUARANTINED, error=31),
        ]
    )
    assert all(isinstance(x, Message) for x in out)
    got = {
        (r.account, r.message_id, r.state, r.error, r.final_at)
        for acct in ("acme", "beta", "gamma", "delta")
        for r in store.pending_receipts(acct)
    }
    assert got == {
        ("acme", msgs[0].id, S.DELIVERED, 0, NOW + 1),
        ("gamma", msgs[3].id, S.UNDELIVERABLE, 11, NOW + 1),
        ("delta", msgs[5].id, S.QUARANTINED, 31, NOW + 1),
    }
    [r] = store.pending_receipts("acme")
    assert (r.source_addr, r.destination, r.submitted_at) == (
        msgs[0].source_addr,
        msgs[0].destination,
        msgs[0].submitted_at,
    )


def test_receipts_carry_the_submitters_user_message_reference(store: Store) -> None:
    with_ref = make_msg(account="acme", extra={"user_message_reference": 4242})
    without = make_msg(account="acme")
    a, b = _claim(store, with_ref, without)
    out = store.finish_attempts([_delivered(a), _delivered(b)])
    assert all(isinstance(x, Message) for x in out)
    got = {r.message_id: r.user_message_reference for r in store.pending_receipts("acme")}
    assert got == {with_ref.id: 4242, without.id: None}


def test_refused_items_of_every_kind_each_get_their_own_error(store: Store) -> None:
    a, b, c, d = _claim(store, make_msg(), make_msg(), make_msg(), make_msg())
    ghost = make_msg()  # never inserted
    out = store.finish_attempts(
        [
            FinishedAttempt(a, S.ROUTED, {}, _record(a), NOW + 1),  # not in the lifecycle
            _failed(b, S.UNDELIVERABLE, content=b"x"),  # not a changeable field
            FinishedAttempt(ghost, S.DELIVERED, {}, _record(ghost), NOW + 1),
            FinishedAttempt(c, S.DELIVERED, {}, _record(d), NOW + 1),  # d's record
            _delivered(d),
        ]
    )
    assert isinstance(out[0], IllegalTransition)
    assert type(out[1]) is ValueError
    assert isinstance(out[2], UnknownMessage | StaleState)
    assert type(out[3]) is ValueError
    assert isinstance(out[4], Message)
    assert store.count_by_state()[S.DISPATCHED] == 3
    assert len(store.attempts_between(0, 10**10)) == 1


def test_finish_rolls_back_with_its_batch(store: Store) -> None:
    a, b = _claim(store, make_msg(), make_msg())
    with pytest.raises(RuntimeError), store.batch():
        store.finish_attempts([_delivered(a), _delivered(b)])
        raise RuntimeError("boom")
    assert store.count_by_state()[S.DISPATCHED] == 2
    assert store.attempts_between(0, 10**10) == [] and store.pending_receipts("acme") == []
    out = store.finish_attempts([_delivered(a), _delivered(b)])
    assert all(isinstance(x, Message) for x in out)


def test_same_result_as_transition_plus_attempt(store: Store) -> None:
    a, b = _claim(store, make_msg(extra={"k": 1}), make_msg(extra={"k": 1}))
    via_transition = store.transition(
        a.id,
        S.DISPATCHED,
        S.DEFERRED,
        NOW + 1,
        expected_attempts=1,
        error=1,
        next_attempt_at=NOW + 30,
    )
    [via_finish] = store.finish_attempts([_failed(b, S.DEFERRED, next_attempt_at=NOW + 30)])
    assert isinstance(via_finish, Message)
    assert _fields(via_finish) | {"id": "", "destination": "", "content": b""} == _fields(
        via_transition
    ) | {"id": "", "destination": "", "content": b""}


def _fields(m: Message) -> dict[str, Any]:
    return {name: getattr(m, name) for name in Message.__dataclass_fields__}


def test_sqlite_writes_a_clean_batch_without_reading_a_row(tmp_path: Any) -> None:
    """The fast path (no per-item read) is the one taken when nothing is refused, and its
    result is the same as the per-item path's (compared on the memory store)."""
    from adressat.store import MemoryStore, SqliteStore

    sq = SqliteStore(tmp_path / "f.db")
    mem = MemoryStore()
    try:
        results = []
        for s in (sq, mem):
            msgs = [make_msg(id=f"{i:032x}", destination=f"4670{i:07d}") for i in range(20)]
            claimed = _claim(s, *msgs)
            items = [
                _delivered(m) if i % 2 else _failed(m, S.DEFERRED, next_attempt_at=NOW + 9)
                for i, m in enumerate(claimed)
            ]
            if s is sq:
                seen: list[str] = []
                sq._conn.set_trace_callback(seen.append)  # noqa: SLF001 - white-box check
                out = s.finish_attempts(items)
                sq._conn.set_trace_callback(None)  # noqa: SLF001
                assert not [q for q in seen if q.lstrip().upper().startswith("SELECT")]
            else:
                out = s.finish_attempts(items)
            results.append((out, s.list_messages(), s.attempts_between(0, 10**10)))
        assert results[0] == results[1]
    finally:
        sq.close()
