"""``Store.apply_partner_receipts`` (a loop turn's receipts at once) gives each receipt the
result it would have alone, on every back end: drawn forwards (one or several parts, small
ids that read as other ids, ids given twice, messages never forwarded) and drawn receipts
(final, intermediate, repeated, for no one), applied in one batch to one store and one by one
to another; results, messages, parts, receipts to senders, held receipts and alarms agree."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from conftest import BACKENDS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from store_helpers import make_msg

from adressat.core.interconnect import canonical_id, id_candidates
from adressat.core.model import AttemptRecord, ForwardPart, Message, PartnerReceipt, State
from adressat.store import Store
from adressat.store.base import FinishedAttempt

S = State
NOW = 2000.0
#: small and mixed: "10" and "16" read as each other's other spelling, "a" as "10"
IDS = ("1", "2", "10", "16", "a", "22", "beef")
RECEIPT_STATES = (S.DELIVERED, S.UNDELIVERABLE, S.EXPIRED, None)

forward_st = st.lists(  # per message: its parts' partner ids, or None: never forwarded
    st.one_of(st.none(), st.lists(st.sampled_from(IDS), min_size=1, max_size=3)),
    min_size=1, max_size=6)
receipt_st = st.lists(st.tuples(st.sampled_from(IDS), st.sampled_from(RECEIPT_STATES),
                                st.integers(-1, 2)),  # which reading is preferred (-1: none)
                      min_size=1, max_size=14)


def _forward(store: Store, msgs: list[Message], plan: list[list[str] | None]) -> None:
    store.insert_messages(msgs)
    claimed = {m.id: m for m in store.claim_due(len(msgs), NOW, 60.0, "w1")}
    items = []
    for m, ids in zip(msgs, plan, strict=True):
        if ids is None:
            continue
        c = claimed[m.id]
        rec = AttemptRecord(c.id, c.account, c.destination, None, c.route, 1, c.attempts, NOW,
                            NOW + 1, "FORWARDED", 0)
        item = FinishedAttempt(c, S.FORWARDED, {"error": 0, "extra": {"connector": "hub"}},
                               rec, NOW + 1)
        parts = [ForwardPart(c.id, n, len(ids), "hub", canonical_id(pid), S.FORWARDED, None,
                             NOW + 1) for n, pid in enumerate(ids, start=1)]
        items.append((item, parts))
    for r in store.record_forwarded_many(items):
        assert not isinstance(r, Exception)


def _seen(store: Store, msgs: list[Message]) -> object:
    stored = [store.get_message(m.id) for m in msgs]
    messages = [(m.id, m.state, m.error, dict(m.extra)) for m in stored if m is not None]
    parts = [(f.message_id, f.part, f.state, f.error) for m in msgs
             for f in store.forwards_of_message(m.id)]
    # receipts to senders in any order across messages (the batch writes the common case's
    # last); one message has at most one
    receipts = sorted((r.message_id, r.state.value)
                      for r in store.pending_receipts("acme", 1000))
    return (messages, parts, receipts, store.count_held_receipts(),
            store.count_alarms_by_kind())


def _two(make: Callable[[Path], Store], d: str) -> tuple[Store, Store]:
    (Path(d) / "a").mkdir()
    (Path(d) / "b").mkdir()
    return make(Path(d) / "a"), make(Path(d) / "b")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=forward_st, drawn=receipt_st, backend=st.sampled_from(sorted(BACKENDS)))
def test_a_batch_gives_each_receipt_its_result_alone(
        plan: list[list[str] | None], drawn: list[tuple[str, State | None, int]],
        backend: str) -> None:
    msgs = [make_msg(route="out") for _ in plan]
    receipts = []
    for pid, state, which in drawn:
        candidates = id_candidates(pid)
        preferred = candidates[which] if 0 <= which < len(candidates) else None
        receipts.append(PartnerReceipt("hub", candidates, state, NOW + 2, "", 1, preferred))
    with tempfile.TemporaryDirectory() as d:
        batched, alone = _two(BACKENDS[backend], d)
        try:
            _forward(batched, msgs, plan)
            _forward(alone, msgs, plan)
            with batched.batch():
                got = batched.apply_partner_receipts(receipts, NOW + 2)
            want = [alone.apply_partner_receipt(r, NOW + 2) for r in receipts]
            assert [(r.outcome, r.partner_id, r.resolved,
                     None if r.message is None else (r.message.id, r.message.state))
                    for r in got] == [
                (r.outcome, r.partner_id, r.resolved,
                 None if r.message is None else (r.message.id, r.message.state))
                for r in want]
            assert [r.alarm is None for r in got] == [r.alarm is None for r in want]
            assert _seen(batched, msgs) == _seen(alone, msgs)
        finally:
            batched.close()
            alone.close()


def test_the_common_case_ends_many_messages_with_their_receipts(store: Store) -> None:
    msgs = [make_msg(route="out") for _ in range(30)]
    _forward(store, msgs, [[f"{0xA000 + i:x}"] for i in range(30)])
    receipts = [PartnerReceipt("hub", id_candidates(f"{0xA000 + i}"), S.DELIVERED, NOW + 2)
                for i in range(30)]  # decimal in the receipt, hex in the response
    receipts.append(receipts[0])  # a repeat in the same turn
    results = store.apply_partner_receipts(receipts, NOW + 2)
    assert [r.outcome for r in results] == ["final"] * 30 + ["repeat"]
    assert all(r.message is not None and r.message.state is S.DELIVERED
               and r.message.final_at == NOW + 2 for r in results[:30])
    assert sorted(r.message_id for r in store.pending_receipts("acme", 100)) == sorted(
        m.id for m in msgs)
    assert store.count_unfinished() == 0


def test_a_preferred_reading_tells_two_messages_apart_but_not_a_reused_id(store: Store) -> None:
    a, b, c, d, e = (make_msg(route="out") for _ in range(5))
    _forward(store, [a, b, c, d, e], [["16"], ["10"], ["beef"], ["beef"], ["beef0"]])
    # "16" reads as 16 and as 0x10: a's and b's ids
    plain = PartnerReceipt("hub", id_candidates("16"), S.DELIVERED, NOW + 2)
    assert store.apply_partner_receipt(plain, NOW + 2).outcome == "ambiguous"
    told = PartnerReceipt("hub", id_candidates("16"), S.DELIVERED, NOW + 2, preferred="16")
    [r] = store.apply_partner_receipts([told], NOW + 2)
    assert (r.outcome, r.partner_id, r.resolved) == ("final", "16", True)
    assert r.message is not None and r.message.id == a.id
    assert store.get_message(b.id).state is S.FORWARDED  # type: ignore[union-attr]
    # one id given to two messages: no reading tells them apart
    reused = PartnerReceipt("hub", id_candidates("beef"), S.DELIVERED, NOW + 2,
                            preferred="beef")
    assert store.apply_partner_receipt(reused, NOW + 2).outcome == "ambiguous"
    assert {store.get_message(m.id).state for m in (c, d)} == {S.FORWARDED}  # type: ignore[union-attr]
    # an unambiguous match says its id, and that no preference was needed
    alone = store.apply_partner_receipt(
        PartnerReceipt("hub", id_candidates("BEEF0"), S.DELIVERED, NOW + 2), NOW + 2)
    assert (alone.outcome, alone.partner_id, alone.resolved) == ("final", "beef0", False)
    # and b's own receipt still reads as a's id too: ambiguous without a preference
    again = store.apply_partner_receipt(
        PartnerReceipt("hub", id_candidates("10"), S.DELIVERED, NOW + 2), NOW + 2)
    assert (again.outcome, again.partner_id) == ("ambiguous", None)
