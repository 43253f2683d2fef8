"""Contract of retention on every back end (docs/architecture.md, "Disk: WAL and retention"):
``purge_content`` empties the text of final messages only, ``delete_records`` deletes final
messages with everything of theirs and old alarms, in batches, earliest first."""

from __future__ import annotations

from typing import Any

from store_helpers import make_msg

from adressat.core.integrity import Alarm, AlarmKind
from adressat.core.model import AttemptRecord, Message, State
from adressat.store import Store
from adressat.store.base import DeletedRecords, FinishedAttempt

S = State
T0 = 2000.0


def _record(m: Message, started_at: float, outcome: str = "DELIVERED") -> AttemptRecord:
    return AttemptRecord(m.id, m.account, m.destination, "240010000000001", m.route, 1,
                         m.attempts, started_at, started_at + 0.5, outcome, 0)


def _delivered(store: Store, at: float, **kw: Any) -> Message:
    """A message delivered at ``at`` through a claim (attempt record, delivery row, receipt)."""
    m = make_msg(next_attempt_at=at - 1, submitted_at=at - 1, **kw)
    store.insert_messages([m])
    [claimed] = [c for c in store.claim_due(100, at - 1, 60.0, "w1") if c.id == m.id]
    changes = {"error": 0, "delivered_imsi": "240010000000001", "delivered_msisdn": m.destination}
    [done] = store.finish_attempts(
        [FinishedAttempt(claimed, S.DELIVERED, changes, _record(claimed, at - 1), at)]
    )
    assert isinstance(done, Message) and done.final_at == at
    return done


def _failed_then_undeliverable(store: Store, at: float) -> Message:
    """Two attempts (DEFERRED, then UNDELIVERABLE at ``at``), no receipt asked for."""
    m = make_msg(next_attempt_at=at - 2, registered_delivery=0)
    store.insert_messages([m])
    [c1] = [c for c in store.claim_due(100, at - 2, 60.0, "w1") if c.id == m.id]
    store.finish_attempts([FinishedAttempt(c1, S.DEFERRED, {"error": 1, "next_attempt_at": at - 1},
                                           _record(c1, at - 2, "TEMPORARY"), at - 1.5)])
    [c2] = [c for c in store.claim_due(100, at - 1, 60.0, "w1") if c.id == m.id]
    [done] = store.finish_attempts([FinishedAttempt(c2, S.UNDELIVERABLE, {"error": 1},
                                                    _record(c2, at - 1, "PERMANENT"), at)])
    assert isinstance(done, Message)
    return done


def _alarm(at: float) -> Alarm:
    return Alarm(at=at, kind=AlarmKind.LATE_ANSWER, message_ids=("x",), account="acme",
                 route="netsim", node=1, adapter="netsim", detail="test")


# --- purge_content -------------------------------------------------------------------------------
def test_purge_empties_text_and_tag_of_final_messages_only_earliest_first(store: Store) -> None:
    done = [_delivered(store, T0 + i) for i in range(5)]
    pending = make_msg(submitted_at=1.0)  # old, but not final: never purged
    store.insert_messages([pending])
    assert store.purge_content(T0 + 3, limit=2) == 2
    got = [store.get_message(m.id) for m in done]
    assert [g.content for g in got] == [b"", b"", done[2].content, done[3].content,  # type: ignore[union-attr]
                                        done[4].content]
    assert [g.tag for g in got][:2] == [b"", b""]  # type: ignore[union-attr]
    assert store.purge_content(T0 + 3, limit=2) == 1  # only the third is before T0 + 3
    assert store.purge_content(T0 + 3, limit=2) == 0  # what was purged is not counted again
    assert store.purge_content(T0 + 100) == 2
    assert store.get_message(pending.id) == pending
    # the rest of a purged message stays as it was
    g = store.get_message(done[0].id)
    assert g is not None and g.state is S.DELIVERED and g.destination == done[0].destination
    assert g.final_at == done[0].final_at and store.attempts_for_message(done[0].id)


def test_purge_of_a_message_without_text_and_a_zero_limit(store: Store) -> None:
    empty = _delivered(store, T0, content=b"")
    full = _delivered(store, T0 + 1)
    assert store.purge_content(T0 + 10, limit=0) == 0
    assert store.purge_content(T0 + 10) == 1
    assert store.get_message(empty.id).content == b""  # type: ignore[union-attr]
    assert store.get_message(full.id).content == b""  # type: ignore[union-attr]


# --- delete_records ------------------------------------------------------------------------------
def test_delete_takes_the_message_with_its_attempts_receipt_and_delivery(store: Store) -> None:
    old = _delivered(store, T0)
    twice = _failed_then_undeliverable(store, T0 + 1)
    recent = _delivered(store, T0 + 50)
    [r_old, r_recent] = store.pending_receipts("acme")
    assert store.mark_receipts_sent([r_old.receipt_id, r_recent.receipt_id], T0 + 2) == 2
    got = store.delete_records(T0 + 10)
    assert (got.messages, got.attempts, got.receipts, got.deliveries, got.alarms) == (2, 3, 1, 1, 0)
    assert dict(got.receipts_unsent) == {}
    for m in (old, twice):
        assert store.get_message(m.id) is None and store.attempts_for_message(m.id) == []
    assert store.get_message(recent.id) is not None
    assert len(store.attempts_for_message(recent.id)) == 1
    assert [d[0] for d in store.recent_deliveries(10)] == [recent.id]
    assert store.delete_records(T0 + 10) == DeletedRecords()


def test_an_unsent_receipt_is_given_up_with_its_message_and_counted(store: Store) -> None:
    a = _delivered(store, T0)
    b = _delivered(store, T0 + 1, account="beta")
    c = _delivered(store, T0 + 2, account="beta")
    newest = _delivered(store, T0 + 20)
    [rb, _] = store.pending_receipts("beta")
    store.mark_receipt_sent(rb.receipt_id, T0 + 3)
    got = store.delete_records(T0 + 10)
    assert got.messages == 3 and got.receipts == 3
    assert dict(got.receipts_unsent) == {"acme": 1, "beta": 1}
    assert [r.message_id for r in store.pending_receipts("acme")] == [newest.id]
    assert store.pending_receipts("beta") == []
    assert all(store.get_message(m.id) is None for m in (a, b, c))


def test_the_newest_receipt_and_alarm_stay_until_newer_ones_exist(store: Store) -> None:
    """Their ids are never given again (SQLite gives a new row the highest id + 1)."""
    a = _delivered(store, T0)
    b = _delivered(store, T0 + 1)
    alarm = store.append_alarm(_alarm(T0))
    got = store.delete_records(T0 + 10)
    assert got.messages == 1 and got.alarms == 0
    assert store.get_message(a.id) is None and store.get_message(b.id) is not None
    [rb] = store.pending_receipts("acme")
    c = _delivered(store, T0 + 30)
    later = store.append_alarm(_alarm(T0 + 30))
    assert later.id > alarm.id
    got = store.delete_records(T0 + 10)
    assert got.messages == 1 and got.alarms == 1 and store.get_message(b.id) is None
    [rc] = store.pending_receipts("acme")
    assert rc.message_id == c.id and rc.receipt_id > rb.receipt_id


def test_delete_never_takes_a_message_that_is_not_final(store: Store) -> None:
    states = [S.ROUTED, S.DEFERRED, S.HELD, S.DISPATCHED]
    msgs = [make_msg(submitted_at=1.0, next_attempt_at=1.0, state=st, final_at=None,
                     lease_until=9e9 if st is S.DISPATCHED else None,
                     lease_owner="w" if st is S.DISPATCHED else None) for st in states]
    store.insert_messages(msgs)
    store.append_attempt(_record(msgs[1], 1.0, "TEMPORARY"))
    assert store.delete_records(T0 + 1000) == DeletedRecords()
    assert store.purge_content(T0 + 1000) == 0
    assert [store.get_message(m.id) for m in msgs] == msgs
    assert len(store.attempts_for_message(msgs[1].id)) == 1


def test_delete_in_batches_earliest_first_and_alarms_by_time(store: Store) -> None:
    done = [_delivered(store, T0 + i) for i in range(5)]
    store.purge_content(T0 + 2)  # some purged, some not: both are deleted, earliest first
    alarms = [store.append_alarm(_alarm(T0 + i)) for i in range(4)]
    got = store.delete_records(T0 + 10, limit=3)
    assert got.messages == 3 and got.alarms == 3
    assert [store.get_message(m.id) is None for m in done] == [True] * 3 + [False] * 2
    assert [a.id for a in store.alarms_between(0, T0 + 100)] == [alarms[3].id]
    got = store.delete_records(T0 + 3.5, limit=3)
    assert got.messages == 1 and got.alarms == 0  # the newest alarm stays (ids not given again)
    assert store.delete_records(T0 + 3.5, limit=3) == DeletedRecords()
    assert store.append_alarm(_alarm(T0 + 5)).id > alarms[-1].id
    assert store.delete_records(T0 + 3.5, limit=3).alarms == 1
    assert store.alarm_count() == 1
