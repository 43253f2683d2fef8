"""The retention pass (app/retention.py) prunes HTTP senders' records (issue 12): an
Idempotency-Key's answer after ``idempotency_keep_s``, a callback sent or given up after
``callback_retention_s`` (never later than the records), batch after batch; a pending
callback stays."""

from __future__ import annotations

import asyncio

import pytest
from store_helpers import make_msg

from adressat.app.retention import Retention
from adressat.core.callbacks import CallbackEvent, encode_spec, make_spec
from adressat.store import MemoryStore, SqliteStore, Store
from adressat.store.commit import GroupCommitter

CB = encode_spec(make_spec("webhook", "https://h.example/cb", (CallbackEvent.ACCEPTED,)))


def _pass(store: Store, now: float, **kw: object) -> Retention:
    async def main() -> Retention:
        committer = GroupCommitter(store, inline=True).start()
        r = Retention(committer, clock=lambda: now, content_retention_s=1e9,
                      record_retention_s=1e9, **kw)  # type: ignore[arg-type]
        await r.run_pass()
        await committer.aclose()
        return r

    return asyncio.run(main())


@pytest.fixture(params=["memory", "sqlite"])
def any_store(request: pytest.FixtureRequest, tmp_path: object) -> Store:
    if request.param == "memory":
        return MemoryStore()
    return SqliteStore(f"{tmp_path}/a.db")


def test_idempotency_records_pruned_after_their_keep_time(any_store: Store) -> None:
    store = any_store
    for i in range(9):  # 1000..1008
        store.idempotency_put("acme", f"k{i}", b"\x01" * 32, 202, "{}", 1000.0 + i)
    r = _pass(store, 1000.0 + 86400 + 5.5, idempotency_keep_s=86400.0, batch_max=2)
    assert r.idempotency_deleted == 6 and r.stats().deleted_idempotency_total == 6
    kept = [i for i in range(9) if store.idempotency_get("acme", f"k{i}") is not None]
    assert kept == [6, 7, 8]
    store.close()


def test_callbacks_done_pruned_pending_kept(any_store: Store) -> None:
    store = any_store
    msgs = [make_msg(extra={"cb": CB}) for _ in range(7)]
    store.insert_messages(msgs)
    ids = [store.callbacks_of_message(m.id)[0].event_id for m in msgs]
    store.callbacks_sent(ids[:3], 1000.0)
    store.callback_gave_up(ids[3], 1001.0, 404)
    store.callbacks_sent(ids[4:6], 5000.0)  # recent
    r = _pass(store, 2000.0, callback_retention_s=500.0, batch_max=2)
    assert r.callbacks_deleted == 4 and r.stats().deleted_callbacks_total == 4
    left = [bool(store.callbacks_of_message(m.id)) for m in msgs]
    assert left == [False, False, False, False, True, True, True]
    assert store.pending_callbacks() == 1
    store.close()


def test_callback_retention_never_longer_than_the_records() -> None:
    async def main() -> Retention:
        committer = GroupCommitter(MemoryStore(), inline=True).start()
        r = Retention(committer, content_retention_s=0.0, record_retention_s=100.0,
                      callback_retention_s=1e9)
        await committer.aclose()
        return r

    r = asyncio.run(main())
    assert r.callback_retention_s == 100.0
    with pytest.raises(ValueError):
        Retention(None, content_retention_s=0.0, record_retention_s=1.0,  # type: ignore[arg-type]
                  idempotency_keep_s=-1.0)
