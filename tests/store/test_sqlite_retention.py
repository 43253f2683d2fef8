"""Retention in the SQLite back end (schema v10): the append-only triggers let only rows older
than the retention horizon go, the upgrade of a v8 database with rows, versions applied
across a gap (a database that has 11 before 10), the partial indexes the passes read, and
free pages reused (the file stops growing at a steady rate once retention is reached)."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import replace
from pathlib import Path

import pytest
from store_helpers import make_msg

from adressat.core.integrity import Alarm, AlarmKind
from adressat.core.model import AttemptRecord, Message, State
from adressat.store import sqlite as sqlite_module
from adressat.store.base import FinishedAttempt
from adressat.store.migrations import (
    MESSAGE_COLUMNS,
    MIGRATIONS,
    SCHEMA_VERSION,
    Dialect,
    migrate_sqlite,
)
from adressat.store.sqlite import SqliteStore

S = State
T0 = 2000.0


def _finish(store: SqliteStore, now: float, n: int, *, destinations: int = 0) -> list[Message]:
    """``n`` messages submitted, claimed and delivered at ``now`` (receipts sent)."""
    first = 46700000000
    msgs = [
        make_msg(submitted_at=now, next_attempt_at=now, expires_at=now + 3600,
                 content=b"x" * 120,
                 **({"destination": str(first + i % destinations)} if destinations else {}))
        for i in range(n)
    ]
    store.insert_messages(msgs)
    out: list[Message] = []
    while claimed := store.claim_due(n, now, 60.0, "w"):
        items = [
            FinishedAttempt(
                c, S.DELIVERED,
                {"error": 0, "delivered_imsi": "240010000000001",
                 "delivered_msisdn": c.destination},
                AttemptRecord(c.id, c.account, c.destination, "240010000000001", c.route, 1,
                              c.attempts, now, now, "DELIVERED", 0),
                now,
            )
            for c in claimed
        ]
        out += [m for m in store.finish_attempts(items) if isinstance(m, Message)]
    receipts = store.pending_receipts("acme", 10 * n)
    store.mark_receipts_sent([r.receipt_id for r in receipts], now)
    return out


def _alarm(at: float) -> Alarm:
    return Alarm(at=at, kind=AlarmKind.LATE_ANSWER, message_ids=("m",), account="acme",
                 route="netsim", node=1, adapter="netsim", detail="test")


def _refused(conn: sqlite3.Connection, sql: str, *params: object) -> bool:
    try:
        conn.execute(sql, params)
    except sqlite3.DatabaseError:
        return True
    return False


def _check_triggers(path: Path, old: Message, recent: Message) -> None:
    """Every audit table refuses an UPDATE and a DELETE not older than the horizon; with the
    horizon past ``old``, only ``old``'s rows may go."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for table in ("attempts", "alarms", "deliveries"):
            assert _refused(conn, f"UPDATE {table} SET rowid = rowid"), table
        conn.execute("DELETE FROM meta WHERE key = 'retention_horizon'")
        for table in ("attempts", "alarms", "deliveries", "messages"):  # no horizon: none
            assert _refused(conn, f"DELETE FROM {table}"), table
        assert _refused(conn, "INSERT INTO meta (key, value) VALUES ('retention_horizon', ?)",
                        repr(time.time() + 3600))  # never in the future
        conn.execute("INSERT INTO meta (key, value) VALUES ('retention_horizon', ?)",
                     (repr(old.final_at + 1),))  # type: ignore[operator]
        assert _refused(conn, "DELETE FROM attempts WHERE message_id = ?", recent.id)
        assert _refused(conn, "DELETE FROM deliveries WHERE message_id = ?", recent.id)
        assert _refused(conn, "DELETE FROM messages WHERE id = ?", recent.id)
        assert _refused(conn, "DELETE FROM messages WHERE final_at IS NULL")
        assert _refused(conn, "DELETE FROM alarms WHERE at >= ?", old.final_at + 1)  # type: ignore[operator]
        conn.execute("BEGIN")
        conn.execute("DELETE FROM attempts WHERE message_id = ?", (old.id,))
        conn.execute("DELETE FROM deliveries WHERE message_id = ?", (old.id,))
        conn.execute("DELETE FROM alarms WHERE at < ?", (old.final_at + 1,))  # type: ignore[operator]
        conn.execute("DELETE FROM receipts WHERE message_id = ?", (old.id,))
        conn.execute("DELETE FROM messages WHERE id = ?", (old.id,))
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def test_the_audit_tables_let_only_rows_older_than_the_horizon_go(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "a.db")
    [old] = _finish(s, T0, 1)
    [recent] = _finish(s, T0 + 100, 1)
    s.append_alarm(_alarm(T0))
    s.append_alarm(_alarm(T0 + 100))
    s.insert_messages([make_msg(submitted_at=1.0)])  # not final
    s.close()
    _check_triggers(tmp_path / "a.db", old, recent)


def _database_at(path: Path, version: int) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for v, statements in MIGRATIONS:
        if v > version:
            break
        for _, sql in statements:
            conn.execute(sql)
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (v,))
    return conn


def _v8_message(conn: sqlite3.Connection, m: Message) -> None:
    """``m`` as a program of schema v8 wrote it (no column added after v8)."""
    cols = [c for c in MESSAGE_COLUMNS if c not in ("scts", "client_reference")]
    values = [getattr(m, c) for c in cols]
    values[cols.index("state")] = m.state.value
    values[cols.index("extra")] = "{}"
    conn.execute(
        f"INSERT INTO messages ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
        values,
    )


def _v8_delivered(conn: sqlite3.Connection, at: float) -> Message:
    """A message delivered at ``at`` with what a v8 program wrote with it: its attempt
    record, delivery row and (sent) receipt."""
    m = replace(make_msg(submitted_at=at - 1), state=S.DELIVERED, final_at=at, attempts=1,
                delivered_imsi="240010000000001", delivered_msisdn="x", error=0)
    _v8_message(conn, m)
    conn.execute(
        "INSERT INTO attempts (message_id, account, destination, imsi, route, node, attempt,"
        " started_at, ended_at, outcome, error) VALUES (?, 'acme', ?, 'i', 'netsim', 1, 1, ?,"
        " ?, 'DELIVERED', 0)", (m.id, m.destination, at - 0.5, at))
    conn.execute("INSERT INTO deliveries (message_id, imsi, msisdn, at) VALUES (?, 'i', 'x', ?)",
                 (m.id, at))
    conn.execute(
        "INSERT INTO receipts (message_id, account, state, error, submitted_at, final_at,"
        " source_addr, source_ton, source_npi, destination, created_at, sent_at)"
        " VALUES (?, 'acme', 'DELIVERED', 0, ?, ?, 'ACME', 5, 0, ?, ?, ?)",
        (m.id, at - 1, at, m.destination, at, at + 1))
    return m


def test_a_v8_database_with_rows_is_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "v8.db"
    conn = _database_at(path, 8)
    old = _v8_delivered(conn, T0)
    recent = _v8_delivered(conn, T0 + 100)
    pending = make_msg(submitted_at=1.0)
    _v8_message(conn, pending)
    for at in (T0, T0 + 100):
        conn.execute(
            "INSERT INTO alarms (at, kind, message_ids, account, route, node, adapter, detail)"
            " VALUES (?, 'late_answer', '[]', 'acme', 'netsim', 1, 'netsim', '')", (at,))
    assert "messages_final" in {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    conn.close()

    s = SqliteStore(path)
    assert s.schema_version == SCHEMA_VERSION >= 10
    conn = sqlite3.connect(path)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    versions = [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY 1")]
    conn.close()
    assert "messages_final" not in names
    assert {"messages_final_content", "messages_final_purged", "messages_no_delete",
            "deliveries_no_delete", "retention_horizon_insert"} <= names
    assert versions == [v for v, _ in MIGRATIONS]
    s.close()
    _check_triggers(path, old, recent)
    s = SqliteStore(path)
    assert s.purge_content(T0 + 200) == 2  # the rows of v8 are found by the new indexes
    assert s.get_message(old.id).content == b""  # type: ignore[union-attr]
    got = s.delete_records(T0 + 50)
    assert (got.messages, got.attempts, got.deliveries, got.receipts, got.alarms) == (
        1, 1, 1, 1, 1)
    assert s.get_message(old.id) is None and s.get_message(recent.id) is not None
    assert s.get_message(pending.id) == pending
    s.close()


def test_versions_are_applied_across_a_gap_and_an_unknown_one_is_refused(tmp_path: Path) -> None:
    """Numbers are taken by changes made side by side: a database that already has 11 (and
    not 10: it ran a program without this change) gets 10; one with a version the program
    does not know is refused."""
    path = tmp_path / "gap.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for v, statements in MIGRATIONS:
        if v == 10:
            continue
        for _, sql in statements:
            conn.execute(sql)
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (v,))
    assert migrate_sqlite(conn) == SCHEMA_VERSION
    versions = [r[0] for r in conn.execute("SELECT version FROM schema_version ORDER BY 1")]
    assert versions == [v for v, _ in MIGRATIONS] and 10 in versions
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert "messages_final_purged" in names
    assert migrate_sqlite(conn) == SCHEMA_VERSION  # once each
    later: list[tuple[Dialect, str]] = [("any", "CREATE TABLE later (x INTEGER)")]
    assert migrate_sqlite(conn, [*MIGRATIONS, (99, later)]) == 99
    with pytest.raises(RuntimeError, match="does not know"):
        migrate_sqlite(conn)  # this program's list has no 99
    conn.close()


def test_the_passes_read_only_their_partial_index(tmp_path: Path) -> None:
    """However many purged messages the store keeps, a purge reads only the final messages
    with text; a deletion only those final before the horizon."""
    s = SqliteStore(tmp_path / "p.db")
    for i in range(10):
        _finish(s, T0 + i, 1000, destinations=5000)
    assert s.purge_content(T0 + 100, limit=100_000) == 10_000
    _finish(s, T0 + 200, 10)
    conn = sqlite3.connect(tmp_path / "p.db")
    q = sqlite_module
    for sql, params in ((q._PURGE_CONTENT, (T0 + 300, 100)), (q._FINAL_PURGED, (T0 + 1, 100)),
                        (q._FINAL_CONTENT, (T0 + 300, 100)), (q._OLD_ALARMS, (T0, 100))):
        plan = " ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params))
        assert "USING" in plan and "SCAN messages" not in plan, plan
    conn.close()
    t0 = time.perf_counter()
    for _ in range(10):
        s.purge_content(T0 + 150, limit=100)  # nothing: 10,000 purged messages not read
    took = (time.perf_counter() - t0) / 10
    assert took < 0.002, f"an empty purge took {took * 1000:.1f} ms"
    assert s.purge_content(T0 + 300, limit=100) == 10
    got = s.delete_records(T0 + 1, limit=100)
    assert got.messages == 100 and got.attempts == 100 and got.receipts == 100
    s.close()


def test_the_database_file_stops_growing_once_retention_is_reached(tmp_path: Path) -> None:
    """A steady 300 messages a "second" (5,000 subscribers), text purged at once, records
    kept 5 s: once the first records go, new rows take the pages freed (SQLite reuses free
    pages; no VACUUM), and the file stays within a few pages of its size at that point."""
    path = tmp_path / "steady.db"
    s = SqliteStore(path)
    keep_s, steps = 5, 40
    pages: list[int] = []
    for step in range(steps):
        now = 1_000_000.0 + step
        _finish(s, now, 300, destinations=5000)
        for _ in range(1000):  # batches until one is not full (bounded)
            if s.purge_content(now, 100) < 100:
                break
        for _ in range(1000):
            if s.delete_records(now - keep_s, 100).messages < 99:
                break
        s.pragma("wal_checkpoint")  # the file as the checkpointer would leave it
        pages.append(s.pragma("page_count"))
    s.close()
    reached = pages[3 * keep_s]  # retention reached, freed pages in use again
    assert pages[keep_s] < reached  # it grew until then
    assert max(pages[3 * keep_s:]) <= reached * 1.02, pages
    assert path.stat().st_size <= reached * 1.02 * 4096
