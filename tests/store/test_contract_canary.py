"""Store contract (issue 10): attempts and alarms attributed to the serving node, the readers
that follow them by seq/id, and the canary probes with their per-place state."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from store_helpers import make_msg

from adressat.core.integrity import Alarm, AlarmKind, FaultSetting
from adressat.core.model import AttemptRecord, CanaryProbe, State
from adressat.store import SqliteStore, Store
from adressat.store.migrations import MIGRATIONS, migrate_sqlite


def _attempt(mid: str, node: str | None, at: float, outcome: str = "DELIVERED") -> AttemptRecord:
    return AttemptRecord(mid, "acme", "46701000001", "240010000000001", "netsim", 1, 1, at,
                         at + 0.01, outcome, 0, serving_node=node)


def test_attempts_carry_the_serving_node_and_are_read_by_seq(store: Store) -> None:
    m = make_msg()
    store.insert_messages([m])
    store.append_attempt(_attempt(m.id, "msc-2", 1000.0, "TEMPORARY"))
    store.append_attempt(_attempt(m.id, None, 1001.0, "TEMPORARY"))
    store.append_attempt(_attempt("gone", "msc-3", 1002.0))
    (a, b, c) = store.attempts_since(0, 10)
    assert a.seq < b.seq < c.seq
    assert (a.serving_node, b.serving_node, c.serving_node) == ("msc-2", None, "msc-3")
    assert (a.message_id, a.account, a.route, a.outcome, a.error) == (
        m.id, "acme", "netsim", "TEMPORARY", 0)
    assert a.started_at == 1000.0 and a.ended_at == 1000.01
    assert a.submitted_at == m.submitted_at
    assert c.submitted_at is None  # no message row
    assert [v.seq for v in store.attempts_since(a.seq, 10)] == [b.seq, c.seq]
    assert [v.seq for v in store.attempts_since(a.seq, 1)] == [b.seq]
    assert store.attempts_since(c.seq, 10) == []
    assert store.attempts_since(0, 0) == []
    # the record itself keeps it too
    assert [r.serving_node for r in store.attempts_for_message(m.id)] == ["msc-2", None]


def test_finish_attempts_keeps_the_serving_node(store: Store) -> None:
    from adressat.store.base import FinishedAttempt

    store.insert_messages([make_msg()])
    (claimed,) = store.claim_due(1, 1000.0, 60.0, "w")
    rec = _attempt(claimed.id, "msc-4", 1000.0, "DELIVERED")
    store.finish_attempts([FinishedAttempt(
        claimed, State.DELIVERED, {"error": 0, "delivered_imsi": "1", "delivered_msisdn": "2"},
        rec, 1000.1)])
    (v,) = store.attempts_since(0, 10)
    assert v.serving_node == "msc-4" and v.outcome == "DELIVERED"


def test_alarms_carry_the_serving_node_and_are_read_by_id(store: Store) -> None:
    a = store.append_alarm(Alarm(1.0, AlarmKind.LATE_ANSWER, ("m1",), "acme", "netsim",
                                 serving_node="msc-1"))
    b = store.append_alarm(Alarm(2.0, AlarmKind.LATE_ANSWER, ("m2",), "acme", "netsim"))
    assert [x.serving_node for x in store.alarms_since(0, 10)] == ["msc-1", None]
    assert [x.id for x in store.alarms_since(a.id, 10)] == [b.id]
    assert [x.id for x in store.alarms_since(0, 1)] == [a.id]
    assert store.alarms_since(b.id, 10) == []
    assert store.alarms_between(0, 10)[0].serving_node == "msc-1"


def test_fault_node_scope_round_trips(store: Store) -> None:
    store.set_fault(FaultSetting("system_failure", True, 0.5, "", {}, 3.0, node="msc-2"))
    (f,) = store.list_faults()
    assert (f.node, f.rate, f.route) == ("msc-2", 0.5, "")
    store.set_fault(FaultSetting("system_failure", False, 0.5, "", {}, 4.0))
    assert store.list_faults()[0].node == ""


def _probe(at: float, result: str, node: str | None = "msc-1", route: str = "netsim"
           ) -> CanaryProbe:
    latency = 0.2 if result == "passed" else None
    return CanaryProbe(0, at, route, node, "46701000009", f"m{at}", result, latency, "")


def test_canary_probes_appended_with_ids_and_read_after_an_id(store: Store) -> None:
    (a, b) = store.append_canary_probes([_probe(1.0, "passed"), _probe(2.0, "lost")])
    c = store.append_canary_probe(_probe(3.0, "passed", "msc-2"))
    assert 0 < a.id < b.id < c.id
    assert store.canary_probes_since(0, 10) == [a, b, c]
    assert store.canary_probes_since(a.id, 1) == [b]
    assert store.canary_probes_since(c.id, 10) == []
    assert (b.result, b.latency_s, b.serving_node) == ("lost", None, "msc-1")


def test_canary_states_per_place(store: Store) -> None:
    store.append_canary_probes([
        _probe(100.0, "passed"),
        _probe(105.0, "misdelivered"),
        _probe(110.0, "passed"),
        _probe(115.0, "passed"),
        _probe(100.0, "passed", "msc-2"),
        _probe(112.0, "passed", "msc-2"),
        _probe(114.0, "lost", "msc-3"),
    ])
    states = {s.serving_node: s for s in store.canary_states(116.0, 10.0)}
    assert set(states) == {"msc-1", "msc-2", "msc-3"}
    one = states["msc-1"]  # window [106, 116]: two passes; the failure at 105 is outside
    assert (one.probes, one.passed, one.failed, one.all_passed) == (2, 2, 0, True)
    assert (one.last_at, one.last_result, one.passing_since) == (115.0, "passed", 110.0)
    two = states["msc-2"]
    assert (two.probes, two.all_passed, two.passing_since) == (1, True, 100.0)
    three = states["msc-3"]
    assert (three.probes, three.failed, three.all_passed, three.passing_since) == (
        1, 1, False, None)
    # a wider window sees the failure of msc-1
    wide = {s.serving_node: s for s in store.canary_states(116.0, 60.0)}
    assert (wide["msc-1"].probes, wide["msc-1"].failed, wide["msc-1"].all_passed) == (
        4, 1, False)
    assert wide["msc-1"].passing_since == 110.0
    # a place with no probe in the window: listed, nothing passed
    late = {s.serving_node: s for s in store.canary_states(1000.0, 10.0)}
    assert late["msc-2"].probes == 0 and not late["msc-2"].all_passed
    assert late["msc-2"].last_result == "passed" and late["msc-2"].passing_since == 100.0


def test_canary_state_of_a_null_node_kept_apart(store: Store) -> None:
    store.append_canary_probes([_probe(1.0, "failed", None), _probe(2.0, "passed")])
    by = {s.serving_node: s for s in store.canary_states(3.0, 10.0)}
    assert by[None].last_result == "failed" and by["msc-1"].all_passed


def test_canary_probes_deleted_oldest_first_bounded(store: Store) -> None:
    store.append_canary_probes([_probe(float(t), "passed") for t in range(1, 6)])
    assert store.delete_canary_probes(3.5, limit=2) == 2
    assert [p.at for p in store.canary_probes_since(0, 10)] == [3.0, 4.0, 5.0]
    assert store.delete_canary_probes(3.5) == 1
    assert store.delete_canary_probes(3.5) == 0
    assert store.delete_canary_probes(10.0, limit=0) == 0


def test_v12_on_an_older_database_leaves_old_rows_null(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate_sqlite(conn, [(v, st) for v, st in MIGRATIONS if v < 12])
    conn.execute(
        "INSERT INTO attempts (message_id, account, destination, imsi, route, node, attempt,"
        " started_at, ended_at, outcome, error) VALUES ('m', 'a', 'd', NULL, 'netsim', 1, 1,"
        " 1.0, 2.0, 'DELIVERED', 0)"
    )
    conn.execute(
        "INSERT INTO faults (name, on_, rate, route, params, updated_at)"
        " VALUES ('slow_ack', 1, 1.0, '', '{}', 1.0)"
    )
    conn.close()
    s = SqliteStore(path)
    try:
        (v,) = s.attempts_since(0, 10)
        assert v.serving_node is None and v.outcome == "DELIVERED"
        assert s.list_faults()[0].node == ""
        assert s.canary_states(10.0, 10.0) == []
    finally:
        s.close()


def _deliver_one(store: Store, account: str, at: float) -> str:
    from adressat.store.base import FinishedAttempt

    m = make_msg(account=account, submitted_at=at, not_before=at, next_attempt_at=at,
                 registered_delivery=0)
    store.insert_messages([m])
    (claimed,) = [c for c in store.claim_due(10, at, 60.0, "w") if c.id == m.id]
    store.finish_attempts([FinishedAttempt(
        claimed, State.DELIVERED, {"error": 0, "delivered_imsi": "1", "delivered_msisdn": "2"},
        _attempt(m.id, "msc-1", at, "DELIVERED"), at + 0.1)])
    return m.id


def test_canary_records_go_at_the_canary_horizon_and_customers_stay(store: Store) -> None:
    from adressat.core.model import CANARY_ACCOUNT

    canary = _deliver_one(store, CANARY_ACCOUNT, 1000.0)
    late_canary = _deliver_one(store, CANARY_ACCOUNT, 3000.0)
    customer = _deliver_one(store, "acme", 1000.0)
    assert store.delete_canary_records(2000.0, 0) == 0
    assert store.delete_canary_records(2000.0, 10) == 1
    assert store.get_message(canary) is None
    assert store.attempts_for_message(canary) == []
    # the customer's message of the same second, and the canary's newer one, stay whole
    assert (c := store.get_message(customer)) is not None and c.state is State.DELIVERED
    assert len(store.attempts_for_message(customer)) == 1
    assert (lc := store.get_message(late_canary)) is not None and lc.state is State.DELIVERED
    assert store.delete_canary_records(2000.0, 10) == 0


def test_sqlite_triggers_refuse_customer_rows_below_the_canary_horizon(tmp_path: Path) -> None:
    from adressat.core.model import CANARY_ACCOUNT

    s = SqliteStore(tmp_path / "t.db")
    try:
        _deliver_one(s, CANARY_ACCOUNT, 1000.0)
        customer = _deliver_one(s, "acme", 1000.0)
        assert s.delete_canary_records(2000.0, 10) == 1
    finally:
        s.close()
    conn = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    try:
        for sql in ("DELETE FROM attempts WHERE message_id = ?",
                    "DELETE FROM deliveries WHERE message_id = ?",
                    "DELETE FROM messages WHERE id = ?"):
            with pytest.raises(sqlite3.IntegrityError):
                conn.execute(sql, (customer,))
        with pytest.raises(sqlite3.IntegrityError, match="future"):
            conn.execute("UPDATE meta SET value = '1e12' WHERE key = 'canary_horizon'")
    finally:
        conn.close()
