"""The retention pass (app/retention.py) over the group committer: text first, then records,
in batches of ``batch_max``; unsent receipts given up are counted and logged per account; a
failing pass is counted and the next one tries again."""

from __future__ import annotations

import asyncio
import logging

import pytest
from store_helpers import make_msg

from adressat.app.retention import Retention
from adressat.core.model import AttemptRecord, Message, State
from adressat.store import MemoryStore, Store
from adressat.store.base import FinishedAttempt
from adressat.store.commit import GroupCommitter

S = State


def _finish(store: Store, now: float, n: int, account: str = "acme") -> list[Message]:
    msgs = [make_msg(account=account, submitted_at=now, next_attempt_at=now) for _ in range(n)]
    store.insert_messages(msgs)
    claimed = [c for c in store.claim_due(10 * n, now, 60.0, "w") if c.account == account]
    items = [
        FinishedAttempt(c, S.DELIVERED, {"error": 0, "delivered_imsi": "2400",
                                         "delivered_msisdn": c.destination},
                        AttemptRecord(c.id, c.account, c.destination, "2400", c.route, 1,
                                      c.attempts, now, now, "DELIVERED", 0), now)
        for c in claimed
    ]
    return [m for m in store.finish_attempts(items) if isinstance(m, Message)]


def _pass(store: Store, now: float, **kw: object) -> Retention:
    async def main() -> Retention:
        committer = GroupCommitter(store, inline=True).start()
        r = Retention(committer, clock=lambda: now, **kw)  # type: ignore[arg-type]
        await r.run_pass()
        await committer.aclose()
        return r

    return asyncio.run(main())


def test_a_pass_purges_then_deletes_in_batches(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore()
    old = _finish(store, 1000.0, 25) + _finish(store, 1000.0, 3, account="beta")
    recent = _finish(store, 1095.0, 5)
    pending = make_msg(submitted_at=1.0, next_attempt_at=9e9)
    store.insert_messages([pending])
    sent = [r.receipt_id for r in store.pending_receipts("acme", 100)][:20]
    store.mark_receipts_sent(sent, 1001.0)
    with caplog.at_level(logging.WARNING, logger="adressat.retention"):
        r = _pass(store, 1100.0, content_retention_s=0.0, record_retention_s=50.0,
                  batch_max=4)
    st = r.stats()
    assert st.purged_total == 33 and st.deleted_messages_total == 28
    assert st.deleted_attempts_total == 28 and st.deleted_receipts_total == 28
    assert st.receipts_unsent_total == 8 and st.passes_total == 1 and st.failures_total == 0
    assert all(store.get_message(m.id) is None for m in old)
    assert all(store.get_message(m.id).content == b"" for m in recent)  # type: ignore[union-attr]
    assert store.get_message(pending.id) == pending
    given_up = {(rec.account, rec.receipts) for rec in caplog.records  # type: ignore[attr-defined]
                if rec.name == "adressat.retention"}
    assert given_up == {("acme", 5), ("beta", 3)}
    assert all(m.content not in rec.getMessage().encode() for rec in caplog.records
               for m in old)  # I6: no text in logs


def test_text_is_kept_for_its_retention_and_records_for_theirs() -> None:
    store = MemoryStore()
    done = _finish(store, 1000.0, 3)
    r = _pass(store, 1050.0, content_retention_s=100.0, record_retention_s=200.0)
    assert r.stats().purged_total == 0
    assert all(store.get_message(m.id).content for m in done)  # type: ignore[union-attr]
    r = _pass(store, 1150.0, content_retention_s=100.0, record_retention_s=200.0)
    assert r.stats().purged_total == 3 and r.stats().deleted_messages_total == 0
    r = _pass(store, 1250.0, content_retention_s=100.0, record_retention_s=200.0)
    assert r.stats().deleted_messages_total == 2  # the newest receipt's message stays


def test_a_failing_pass_is_counted_and_the_next_one_goes_on() -> None:
    store = MemoryStore()
    _finish(store, 1000.0, 2)
    calls = {"n": 0}
    real = store.purge_content

    def flaky(final_before: float, limit: int = 500) -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("disk")
        return real(final_before, limit)

    store.purge_content = flaky  # type: ignore[method-assign]

    async def main() -> Retention:
        committer = GroupCommitter(store, inline=True).start()
        r = Retention(committer, content_retention_s=0.0, record_retention_s=1e9,
                      interval_s=0.01, clock=lambda: 2000.0)
        task = asyncio.create_task(r.run())
        for _ in range(200):
            if r.passes >= 1:
                break
            await asyncio.sleep(0.01)
        r.stop()
        await asyncio.wait_for(task, 2)
        await committer.aclose()
        return r

    r = asyncio.run(main())
    assert r.failures == 1 and r.passes >= 1 and r.purged == 2


def test_retention_durations_on_the_command_line() -> None:
    import argparse

    from adressat.cli import _duration, build_parser

    assert [_duration(t) for t in ("0", "90", "3s", "30m", "12h", "7d", "1.5d")] == [
        0.0, 90.0, 3.0, 1800.0, 43200.0, 604800.0, 129600.0]
    for bad in ("", "x", "-1", "3w", "inf", "nan"):
        with pytest.raises(argparse.ArgumentTypeError):
            _duration(bad)
    args = build_parser().parse_args(["run", "--content-retention", "0", "--record-retention",
                                      "3s"])
    assert (args.content_retention, args.record_retention) == (0.0, 3.0)
    defaults = build_parser().parse_args(["run"])
    assert (defaults.content_retention, defaults.record_retention) == (7 * 86400.0, 90 * 86400.0)


def test_canary_probes_deleted_after_their_retention_never_after_the_records() -> None:
    from adressat.core.model import CanaryProbe

    store = MemoryStore()
    store.append_canary_probes([
        CanaryProbe(0, at, "netsim", "msc-1", "46701099999", f"m{at}", "passed", 0.1)
        for at in (100.0, 500.0, 900.0, 990.0)
    ])
    r = _pass(store, 1000.0, content_retention_s=1e9, record_retention_s=1e9,
              canary_probes_retention_s=200.0, batch_max=1)
    assert r.canary_probes_deleted == 2  # batch after batch
    assert [p.at for p in store.canary_probes_since(0, 10)] == [900.0, 990.0]
    # the records' retention is the upper bound
    r = _pass(store, 1000.0, content_retention_s=1e9, record_retention_s=50.0,
              canary_probes_retention_s=86400.0)
    assert [p.at for p in store.canary_probes_since(0, 10)] == [990.0]


def test_canary_messages_go_with_the_probes_retention_customers_with_theirs() -> None:
    from adressat.core.model import CANARY_ACCOUNT

    store = MemoryStore()
    canaries = _finish(store, 1000.0, 3, account=CANARY_ACCOUNT)
    customers = _finish(store, 1000.0, 2)
    assert len(canaries) == 3 and len(customers) == 2
    r = _pass(store, 2000.0, content_retention_s=1e9, record_retention_s=1e9,
              canary_probes_retention_s=200.0, batch_max=2)
    assert r.canary_messages_deleted == 3  # batch after batch
    assert all(store.get_message(m.id) is None for m in canaries)
    assert all(store.get_message(m.id) is not None for m in customers)
