"""Store contract: health episodes and the cheap figures that metrics and readiness read."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from store_helpers import make_msg

from adressat.core.health import Episode, EpisodeKind
from adressat.core.integrity import Alarm, AlarmKind
from adressat.core.model import State
from adressat.store import SqliteStore, Store
from adressat.store.base import StoreUnavailable
from adressat.store.sqlite import unavailable


def test_episode_written_open_then_ended_once(store: Store) -> None:
    ep = store.write_episode(Episode(EpisodeKind.STORE_UNWRITABLE, "smpp", "disk_full", 10.0))
    assert ep.id > 0 and ep.is_open
    assert [e.id for e in store.episodes(open_only=True)] == [ep.id]
    ended = Episode(ep.kind, ep.process, ep.cause, ep.started_at, 20.0, 7, ep.id)
    store.write_episode(ended)
    assert store.episodes(open_only=True) == []
    (got,) = store.episodes()
    assert (got.ended_at, got.failures, got.cause) == (20.0, 7, "disk_full")
    # an end is written once: a second end does not move it
    store.write_episode(Episode(ep.kind, ep.process, ep.cause, ep.started_at, 99.0, 9, ep.id))
    assert store.episodes()[0].ended_at == 20.0


def test_episode_written_whole_and_listed_newest_first(store: Store) -> None:
    a = store.write_episode(Episode(EpisodeKind.DELIVERY_PROCESS_DOWN, "smpp", "exit_code=70",
                                    5.0, 6.0))
    b = store.write_episode(Episode(EpisodeKind.DELIVERY_LOOP_FAILING, "delivery", "io_error",
                                    8.0))
    assert [e.id for e in store.episodes()] == [b.id, a.id]
    assert [e.id for e in store.episodes(since=7.0)] == [b.id]
    assert [e.id for e in store.episodes(limit=1)] == [b.id]


def test_unfinished_by_state_and_pending_receipts(store: Store) -> None:
    deferred = make_msg()
    store.insert_messages([deferred])
    (claimed,) = store.claim_due(1, 1000.0, 60.0, "w")
    store.transition(claimed.id, State.DISPATCHED, State.DEFERRED, 1001.0,
                     next_attempt_at=1100.0)
    routed = make_msg()
    done = make_msg()
    store.insert_messages([routed, done])
    store.transition(done.id, State.ROUTED, State.UNDELIVERABLE, 1001.0, error=1)
    counts = store.count_unfinished_by_state()
    assert counts[State.ROUTED] == 1 and counts[State.DEFERRED] == 1
    assert counts[State.DISPATCHED] == counts[State.HELD] == counts[State.ACCEPTED] == 0
    assert State.UNDELIVERABLE not in counts
    assert sum(counts.values()) == store.count_unfinished()
    assert store.count_pending_receipts() == 1  # registered_delivery=1, final
    (r,) = store.pending_receipts("acme")
    store.mark_receipt_sent(r.receipt_id, 1002.0)
    assert store.count_pending_receipts() == 0


def test_alarms_by_kind(store: Store) -> None:
    for kind in (AlarmKind.STRAY_ACK, AlarmKind.STRAY_ACK, AlarmKind.LATE_ANSWER):
        store.append_alarm(Alarm(at=1.0, kind=kind, message_ids=("x",)))
    assert store.count_alarms_by_kind() == {"stray_ack": 2, "late_answer": 1}


def test_oldest_due_skips_destinations_in_flight_and_future(store: Store) -> None:
    assert store.oldest_due_at(2000.0) is None
    a = make_msg(next_attempt_at=1000.0)
    b = make_msg(next_attempt_at=1500.0, not_before=1600.0)
    later = make_msg(next_attempt_at=3000.0)
    store.insert_messages([a, b, later])
    assert store.oldest_due_at(2000.0) == 1000.0
    # a's destination gets a message in flight: a waits for it, not for the scheduler
    busy = make_msg(destination=a.destination, next_attempt_at=900.0, not_before=900.0,
                    submitted_at=900.0)
    store.insert_messages([busy])
    (claimed,) = [m for m in store.claim_due(1, 950.0, 60.0, "w") if m.id == busy.id]
    assert claimed.state is State.DISPATCHED
    assert store.oldest_due_at(2000.0) == 1600.0  # b, due since its schedule


@pytest.mark.parametrize(
    ("message", "cause"),
    [
        ("database or disk is full", "disk_full"),
        ("disk I/O error", "io_error"),
        ("attempt to write a readonly database", "read_only"),
        ("database is locked", "lock_timeout"),
    ],
)
def test_sqlite_errors_of_the_disk_become_store_unavailable(message: str, cause: str) -> None:
    names = {"disk_full": "SQLITE_FULL", "io_error": "SQLITE_IOERR_WRITE",
             "read_only": "SQLITE_READONLY", "lock_timeout": "SQLITE_BUSY"}
    e = sqlite3.OperationalError(message)
    e.sqlite_errorname = names[cause]  # type: ignore[attr-defined]
    u = unavailable(e)
    assert isinstance(u, StoreUnavailable) and u.cause == cause
    assert unavailable(sqlite3.IntegrityError("UNIQUE constraint failed")) is None


def test_a_read_only_file_refuses_writes_as_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "adressat.db"
    SqliteStore(path).close()
    ro = SqliteStore(path)
    # the connection itself is made read-only: what SQLite answers a write on such a file
    ro._conn.execute("PRAGMA query_only = 1")  # noqa: SLF001 - the test's lever
    with pytest.raises(StoreUnavailable):
        ro.set_meta("k", "v")
    ro.close()


def test_record_retention_takes_episodes_over_before_the_horizon(store: Store) -> None:
    old = store.write_episode(Episode(EpisodeKind.STORE_UNWRITABLE, "smpp", "disk_full", 10.0,
                                      20.0))
    still_open = store.write_episode(Episode(EpisodeKind.DELIVERY_STALLED, "smpp", "x", 15.0))
    recent = store.write_episode(Episode(EpisodeKind.DELIVERY_PROCESS_DOWN, "smpp", "y", 90.0,
                                         95.0))
    store.delete_records(50.0, limit=10)
    assert {e.id for e in store.episodes()} == {still_open.id, recent.id}
    assert old.id not in {e.id for e in store.episodes()}
    store.write_episode(Episode(still_open.kind, "smpp", "x", 15.0, 99.0, 2, still_open.id))
    assert store.episodes(open_only=True) == []
