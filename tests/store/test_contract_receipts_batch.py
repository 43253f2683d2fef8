"""Store contract: ``mark_receipts_sent`` marks many outbox rows at once (every back end)."""

from __future__ import annotations

from store_helpers import make_msg

from adressat.core.model import State
from adressat.store import Store

S = State
NOW = 2000.0


def _final_with_receipts(store: Store, account: str, n: int) -> list[int]:
    msgs = [make_msg(account=account, registered_delivery=1) for _ in range(n)]
    store.insert_messages(msgs)
    for m in msgs:
        store.transition(m.id, S.ROUTED, S.DISPATCHED, NOW)
        store.transition(m.id, S.DISPATCHED, S.DELIVERED, NOW + 1, delivered_imsi="i")
    return [r.receipt_id for r in store.pending_receipts(account)]


def test_marks_many_once(store: Store) -> None:
    ids = _final_with_receipts(store, "acme", 5)
    other = _final_with_receipts(store, "beta", 2)
    assert len(ids) == 5
    assert store.mark_receipts_sent(ids[:3], NOW + 2) == 3
    assert [r.receipt_id for r in store.pending_receipts("acme")] == ids[3:]
    # already sent, unknown and empty: nothing newly marked, the first sent_at stays
    assert store.mark_receipts_sent([ids[0], 987654], NOW + 3) == 0
    assert store.mark_receipts_sent([], NOW + 3) == 0
    assert store.mark_receipts_sent(ids[3:], NOW + 4) == 2
    assert store.pending_receipts("acme") == []
    assert [r.receipt_id for r in store.pending_receipts("beta")] == other  # untouched


def test_inside_a_batch_rolls_back_with_it(store: Store) -> None:
    ids = _final_with_receipts(store, "acme", 3)
    try:
        with store.batch():
            assert store.mark_receipts_sent(ids, NOW + 2) == 3
            raise RuntimeError("abort")
    except RuntimeError:
        pass
    assert [r.receipt_id for r in store.pending_receipts("acme")] == ids
