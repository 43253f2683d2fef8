"""SQLite-specific checks: PRAGMAs, durability under SIGKILL, speed, query plans, guards."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path

import pytest
from store_helpers import make_msg

from adressat.core.model import AttemptRecord, Message, State
from adressat.delivery.netsim_adapter import legacy_reference
from adressat.store import SqliteStore
from adressat.store.migrations import MESSAGE_COLUMNS, MIGRATIONS, SCHEMA_VERSION
from adressat.store.sqlite import _COUNT_UNFINISHED, _HOLD_QUEUED


def test_pragmas(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "a.db")
    assert s.pragma("journal_mode") == "wal"
    assert s.pragma("synchronous") == 2  # FULL
    assert s.schema_version == SCHEMA_VERSION
    s.close()


def test_reopen_keeps_data_and_migrates_once(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "a.db")
    m = make_msg()
    s.insert_messages([m])
    s.set_meta("node", "3")
    s.close()
    s = SqliteStore(tmp_path / "a.db")
    assert s.get_message(m.id) == m and s.get_meta("node") == "3"
    conn = sqlite3.connect(tmp_path / "a.db")
    assert conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == len(MIGRATIONS)
    conn.close()
    s.close()


def test_database_refuses_second_delivery_row(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "a.db")
    m = make_msg()
    s.insert_messages([m])
    s.transition(m.id, State.ROUTED, State.DISPATCHED, 1.0)
    s.transition(m.id, State.DISPATCHED, State.DELIVERED, 2.0, delivered_imsi="i")
    s.close()
    conn = sqlite3.connect(tmp_path / "a.db")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(
            "INSERT INTO deliveries (message_id, imsi, msisdn, at) VALUES (?, 'j', 'k', 3)", (m.id,)
        )
    with pytest.raises(sqlite3.IntegrityError):  # one receipt per message
        conn.execute(
            "INSERT INTO receipts (message_id, account, state, submitted_at, final_at,"
            " source_addr, source_ton, source_npi, destination, created_at)"
            " VALUES (?, 'x', 'DELIVERED', 0, 0, '', 0, 0, '', 0)",
            (m.id,),
        )
    conn.close()


def test_audit_is_append_only_in_the_database(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "a.db")
    s.append_attempt(AttemptRecord("m", "a", "4670", None, "r", 1, 1, 1.0, 2.0, "absent"))
    s.close()
    conn = sqlite3.connect(tmp_path / "a.db")
    with pytest.raises(sqlite3.DatabaseError):
        conn.execute("UPDATE attempts SET outcome = 'delivered'")
    with pytest.raises(sqlite3.DatabaseError):
        conn.execute("DELETE FROM attempts")
    conn.close()


def test_insert_1000_in_one_transaction_is_fast(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "a.db")
    s.insert_messages([make_msg()])  # warm up
    best = 1e9
    for _ in range(3):
        batch = [make_msg(content=os.urandom(140)) for _ in range(1000)]
        t0 = time.perf_counter()
        s.insert_messages(batch)
        best = min(best, time.perf_counter() - t0)
    assert s.commits == 4
    assert best < 0.05, f"insert of 1000 took {best * 1000:.1f} ms"
    s.close()


def test_claim_due_uses_index_and_is_fast_with_many_queued(tmp_path: Path) -> None:
    s = SqliteStore(tmp_path / "a.db")
    n = 50_000
    # mostly deferred far in the future (absent subscribers), some due
    msgs = [
        make_msg(
            state=State.DEFERRED if i % 5 else State.ROUTED,
            next_attempt_at=10_000.0 if i % 5 else 1000.0 + i * 1e-3,
            priority=i % 4,
        )
        for i in range(n)
    ]
    for i in range(0, n, 5000):
        s.insert_messages(msgs[i : i + 5000])
    conn = sqlite3.connect(tmp_path / "a.db")
    plan = " ".join(
        str(r[3])
        for r in conn.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM messages AS m WHERE state IN ('ROUTED', 'DEFERRED')"
            " AND priority = ? AND next_attempt_at <= ? AND not_before <= ? AND expires_at > ?"
            " AND NOT EXISTS (SELECT 1 FROM messages AS d WHERE d.destination = m.destination"
            " AND d.state = 'DISPATCHED') ORDER BY next_attempt_at, submitted_at, id LIMIT ?",
            (3, 2000.0, 2000.0, 2000.0, 100),
        )
    )
    conn.close()
    assert "messages_due" in plan and "TEMP B-TREE" not in plan, plan
    assert "messages_dispatched" in plan, plan  # the in-flight check reads the small index
    t0 = time.perf_counter()
    got = s.claim_due(500, 2000.0, 30.0, "n1")
    took = time.perf_counter() - t0
    assert len(got) == 500
    assert [m.priority for m in got] == sorted((m.priority for m in got), reverse=True)
    assert len({m.destination for m in got}) == 500
    assert took < 0.1, f"claim took {took * 1000:.1f} ms"
    s.close()


def _plan(conn: sqlite3.Connection, sql: str, *params: object) -> str:
    return " ".join(str(r[3]) for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params))


def test_delivery_side_queries_use_their_indexes(tmp_path: Path) -> None:
    """The state changes of claims and outcomes touch as few index entries as they can
    (schema v3); the queries that lost an index of (x, state) still find their rows."""
    s = SqliteStore(tmp_path / "a.db")
    conn = sqlite3.connect(tmp_path / "a.db")
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "messages_route" not in indexes
    assert "messages_destination" not in indexes  # v5: an insert touches no destination index
    assert {"messages_deferred", "messages_dispatched", "messages_held"} <= indexes
    retry = _plan(
        conn,
        "UPDATE messages SET next_attempt_at = ? WHERE destination = ? AND state = 'DEFERRED'"
        " AND next_attempt_at > ?",
        1.0, "4670", 1.0,
    )
    assert "messages_deferred" in retry, retry
    release = _plan(
        conn, "UPDATE messages SET state = 'ROUTED' WHERE route = ? AND state = 'HELD'", "r"
    )
    assert "messages_held" in release, release
    # v6: no index of every message by state; each reader has a partial index
    assert "messages_state" not in indexes
    hold = _plan(conn, _HOLD_QUEUED, "r")
    assert "messages_expiry" in hold, hold
    recover = _plan(
        conn,
        "UPDATE messages SET state = 'DEFERRED' WHERE state = 'DISPATCHED'"
        " AND (lease_until IS NULL OR lease_until < ?)",
        1.0,
    )
    assert "messages_dispatched" in recover, recover
    unfinished = _plan(conn, _COUNT_UNFINISHED)
    for index in ("messages_expiry", "messages_dispatched", "messages_held", "messages_accepted"):
        assert index in unfinished, unfinished
    assert unfinished.count("SCAN messages") == unfinished.count("SCAN messages USING"), unfinished
    conn.close()
    s.close()


def test_count_unfinished_and_listing_by_state_read_only_their_state(tmp_path: Path) -> None:
    """The queue gauge and the recovery's listing of the in-flight read the partial index of
    their states, not the finished messages (there are many more of those)."""
    s = SqliteStore(tmp_path / "a.db")
    final = [make_msg(state=State.DELIVERED, final_at=1.0) for _ in range(3000)]
    live = [
        make_msg(state=State.ROUTED), make_msg(state=State.DEFERRED),
        make_msg(state=State.HELD), make_msg(state=State.DISPATCHED, lease_until=9.0),
    ]
    s.insert_messages(final + live)
    assert s.count_unfinished() == 4
    assert [m.id for m in s.list_messages(state=State.DISPATCHED)] == [live[3].id]
    conn = sqlite3.connect(tmp_path / "a.db")
    listing = _plan(
        conn, "SELECT id FROM messages WHERE state = 'DISPATCHED' ORDER BY submitted_at, id"
    )
    conn.close()
    assert "messages_dispatched" in listing, listing
    s.close()


def test_expire_due_reads_only_the_expired(tmp_path: Path) -> None:
    """expire_due walks messages_expiry, not every queued message (the planner's own choice
    was messages_state: 30 ms for 200,000 queued, under the write lock, once a second)."""
    s = SqliteStore(tmp_path / "a.db")
    n = 50_000
    msgs = [make_msg(expires_at=10_000.0 + i) for i in range(n)]
    for i in range(0, n, 5000):
        s.insert_messages(msgs[i : i + 5000])
    t0 = time.perf_counter()
    for _ in range(10):
        assert s.expire_due(5_000.0, limit=100) == []
    took = (time.perf_counter() - t0) / 10
    assert took < 0.002, f"expire_due took {took * 1000:.1f} ms"
    assert [m.id for m in s.expire_due(10_002.5, limit=100)] == [m.id for m in msgs[:3]]
    s.close()


def _database_at(path: Path, version: int) -> sqlite3.Connection:
    """A database as a program of schema ``version`` left it (autocommit connection)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for v, statements in MIGRATIONS[:version]:
        for _, sql in statements:
            conn.execute(sql)
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (v,))
    return conn


def test_v2_database_is_upgraded_to_v3(tmp_path: Path) -> None:
    path = tmp_path / "a.db"
    _database_at(path, 2).close()
    s = SqliteStore(path)
    assert s.schema_version == SCHEMA_VERSION
    m = make_msg()
    s.insert_messages([m])
    [got] = s.claim_due(10, m.next_attempt_at + 1, 30.0, "n1")
    assert got.id == m.id and s.claim_due(10, m.next_attempt_at + 1, 30.0, "n1") == []
    s.close()


def _insert_v3(conn: sqlite3.Connection, m: Message) -> None:
    """``m`` as a program of schema v3 wrote it (no ``reference`` column yet)."""
    cols = [c for c in MESSAGE_COLUMNS if c not in ("reference", "addressed_imsi", "scts",
                                                  "client_reference")]
    values = [getattr(m, c) for c in cols]
    values[cols.index("state")] = m.state.value
    values[cols.index("extra")] = "{}"
    conn.execute(
        f"INSERT INTO messages ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
        values,
    )


def test_v3_database_is_upgraded_to_v4_and_a_message_in_flight_keeps_its_derived_reference(
    tmp_path: Path,
) -> None:
    path = tmp_path / "a.db"
    conn = _database_at(path, 3)
    in_flight = replace(
        make_msg(id="f" * 32), state=State.DISPATCHED, attempts=1, lease_until=5.0,
        lease_owner="old",
    )
    fresh = make_msg(id="a" * 32)
    for m in (in_flight, fresh):
        _insert_v3(conn, m)
    conn.close()
    s = SqliteStore(path)
    assert s.schema_version == SCHEMA_VERSION
    assert s.recover_leases(10.0) == 1
    now = max(in_flight.next_attempt_at, fresh.next_attempt_at) + 11
    claimed = {m.id: m for m in s.claim_due(10, now, 30.0, "n1")}
    assert set(claimed) == {in_flight.id, fresh.id}
    # attempted before v4: no stored reference nor stamp, the adapter derives the old
    # reference from the id
    got = claimed[in_flight.id]
    assert (got.reference, got.scts, got.attempts) == (None, None, 2)
    assert legacy_reference(got, 0) is not None
    # first attempted now: stamped (schema v9), no TP-MR
    assert (claimed[fresh.id].reference, claimed[fresh.id].scts) == (None, int(now))
    assert s.get_message(fresh.id).scts == int(now)  # type: ignore[union-attr]
    s.close()


def _insert_v8(conn: sqlite3.Connection, m: Message) -> None:
    """``m`` as a program of schema v4..v8 wrote it (a ``reference``, no ``scts`` yet)."""
    cols = [c for c in MESSAGE_COLUMNS if c not in ("scts", "client_reference")]
    values = [getattr(m, c) for c in cols]
    values[cols.index("state")] = m.state.value
    values[cols.index("extra")] = "{}"
    conn.execute(
        f"INSERT INTO messages ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
        values,
    )


def test_v8_database_is_upgraded_to_v9_and_a_message_in_flight_keeps_its_tp_mr(
    tmp_path: Path,
) -> None:
    """A message first attempted under v4..v8 has a TP-MR and no TP-SCTS: the handsets knew
    it by that reference, so its resends keep it (``legacy_reference``) and it is never
    stamped; a message first claimed after the upgrade is stamped and has no TP-MR."""
    path = tmp_path / "a.db"
    conn = _database_at(path, 8)
    dest = "46701000042"
    in_flight = replace(
        make_msg(id="f" * 32, destination=dest), state=State.DISPATCHED, attempts=1,
        lease_until=5.0, lease_owner="old", reference=17, addressed_imsi="240010000000042",
    )
    deferred = replace(
        make_msg(id="d" * 32), state=State.DEFERRED, attempts=2, reference=250,
        next_attempt_at=900.0,
    )
    fresh = make_msg(id="a" * 32, destination=dest, submitted_at=1001.0)
    for m in (in_flight, deferred, fresh):
        _insert_v8(conn, m)
    conn.execute("INSERT INTO destination_references VALUES (?, ?)", (int(dest), 18))
    conn.close()
    s = SqliteStore(path)
    assert s.schema_version == SCHEMA_VERSION >= 9
    conn = sqlite3.connect(path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    conn.close()
    assert "destination_timestamps" in tables and "destination_references" not in tables
    assert s.recover_leases(10.0) == 1
    now = 2000.5
    claimed = {m.id: m for m in s.claim_due(10, now, 30.0, "n1")}
    assert set(claimed) == {in_flight.id, deferred.id}  # fresh waits: one per destination
    for old, ref in ((in_flight, 17), (deferred, 250)):
        got = claimed[old.id]
        assert (got.reference, got.scts) == (ref, None)
        assert [legacy_reference(got, i) for i in range(2)] == [ref, (ref + 1) % 256]
        stored = s.get_message(old.id)
        assert stored is not None and (stored.reference, stored.scts) == (ref, None)
    assert claimed[in_flight.id].addressed_imsi == "240010000000042"
    s.transition(in_flight.id, State.DISPATCHED, State.DELIVERED, now, expected_attempts=2,
                 delivered_imsi="240010000000042", delivered_msisdn=dest, error=0)
    [f] = s.claim_due(10, now, 30.0, "n1")
    assert (f.id, f.reference, f.scts) == (fresh.id, None, 2000)
    s.close()


def test_v3_database_is_upgraded_to_v5(tmp_path: Path) -> None:
    """v5 drops messages_destination (every insert paid for it) for messages_deferred (what
    retry_now reads); messages written under v3 are still found by destination."""
    path = tmp_path / "a.db"
    conn = _database_at(path, 3)
    deferred = make_msg(state=State.DEFERRED, next_attempt_at=9000.0)
    routed = make_msg()
    for m in (deferred, routed):
        _insert_v3(conn, m)
    conn.close()
    s = SqliteStore(path)
    assert s.schema_version == SCHEMA_VERSION >= 5
    conn = sqlite3.connect(path)
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    conn.close()
    assert "messages_destination" not in indexes and "messages_deferred" in indexes
    assert s.retry_now(deferred.destination, 2000.0) == 1
    assert s.retry_now(routed.destination, 2000.0) == 0
    assert [m.id for m in s.list_messages(destination=routed.destination)] == [routed.id]
    s.close()


_WRITER = textwrap.dedent(
    """
    import os, sys
    from adressat.core.model import Message, State
    from adressat.store import SqliteStore
    s = SqliteStore(sys.argv[1])
    n = 0
    while True:
        batch = []
        for _ in range(1 + n % 7):
            n += 1
            batch.append(Message(id=f"{os.getpid():08x}{n:024x}", account="acme",
                                 source_addr="A", destination="4670%07d" % n,
                                 content=os.urandom(100), submitted_at=1.0, expires_at=9.0,
                                 state=State.ROUTED))
        s.insert_messages(batch)
        sys.stdout.write("".join(m.id + "\\n" for m in batch))
        sys.stdout.flush()
    """
)


def test_committed_ids_survive_sigkill(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(db)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    printed: list[str] = []
    try:
        while len(printed) < 300:
            line = proc.stdout.readline()
            assert line, "writer died"
            printed.append(line.strip())
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    # read what was already in the pipe too: those were printed after commit as well
    printed.extend(x.strip() for x in proc.stdout.read().splitlines() if len(x.strip()) == 32)
    s = SqliteStore(db)
    missing = [i for i in printed if s.get_message(i) is None]
    assert not missing, f"{len(missing)} acknowledged ids lost"
    s.close()
