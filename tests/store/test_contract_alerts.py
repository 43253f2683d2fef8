"""Store contract: alerts (schema v13) and the due count of the live view, on every back end."""

from __future__ import annotations

from dataclasses import replace

import pytest
from store_helpers import make_msg

from adressat.core.alert import AlertRecord, alert_json
from adressat.core.model import State
from adressat.store import Store

PLACE = {"route": "netsim", "serving_node": "msc-2"}


def _alert(**kw: object) -> AlertRecord:
    base: dict[str, object] = dict(
        rule="integrity", severity="critical", place=PLACE, state="firing", started_at=10.0,
        last_evidence_at=10.0, summary="1 integrity alarm on netsim msc-2",
        evidence={"alarms": 1, "kinds": {"identity_mismatch": 1}}, alarm_first_id=3,
        alarm_last_id=3,
    )
    base.update(kw)
    return AlertRecord(**base)  # type: ignore[arg-type]


def test_open_read_and_list(store: Store) -> None:
    a = store.open_alert(_alert())
    b = store.open_alert(_alert(rule="failure_rate", severity="warning", alarm_first_id=None,
                                alarm_last_id=None, place={"route": "r2", "serving_node": None}))
    assert a.id > 0 and b.id > a.id
    got = store.alert(a.id)
    assert got == a and got is not None
    assert got.place == PLACE and got.evidence["kinds"] == {"identity_mismatch": 1}
    assert store.alert(b.id).place == {"route": "r2", "serving_node": None}  # type: ignore[union-attr]
    assert store.alert(999) is None
    assert [x.id for x in store.alerts()] == [b.id, a.id]  # newest first
    assert [x.id for x in store.alerts(limit=1)] == [b.id]
    assert [x.id for x in store.alerts(state="resolved")] == []
    assert [x.id for x in store.alerts(open_only=True)] == [b.id, a.id]
    j = alert_json(a)
    assert j["acknowledged"] is False and j["alarm_ids"] == [3, 3] and j["place"] == PLACE


def test_update_keeps_the_ack_and_ack_is_written_once(store: Store) -> None:
    a = store.open_alert(_alert())
    acked = store.ack_alert(a.id, "ops", "looking at msc-2", 20.0)
    assert acked is not None and acked.acked_at == 20.0 and acked.acked_by == "ops"
    assert acked.note == "looking at msc-2" and acked.acknowledged
    # the evaluator's update (it does not know of the ack) leaves the ack alone
    up = store.update_alert(replace(a, state="resolved", resolved_at=30.0,
                                    last_evidence_at=25.0, alarm_last_id=9,
                                    evidence={"alarms": 4}))
    assert up is not None and up.state == "resolved" and up.acked_by == "ops"
    assert up.alarm_last_id == 9 and up.evidence == {"alarms": 4}
    # a second ack changes nothing
    again = store.ack_alert(a.id, "someone else", "other note", 40.0)
    assert again is not None and (again.acked_at, again.acked_by, again.note) == (
        20.0, "ops", "looking at msc-2")
    assert store.ack_alert(12345, "ops", "x", 1.0) is None
    assert store.update_alert(replace(a, id=12345)) is None
    assert store.alerts(open_only=True) == []  # resolved and acked: closed
    assert [x.id for x in store.alerts(acknowledged=True)] == [a.id]
    assert store.alerts(acknowledged=False) == []


def test_bad_input_is_refused_and_changes_nothing(store: Store) -> None:
    a = store.open_alert(_alert())
    for by, note in (("", "n"), ("ops", ""), ("ops", "   ")):
        with pytest.raises(ValueError):
            store.ack_alert(a.id, by, note, 5.0)
    assert store.alert(a.id).acked_at is None  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        store.open_alert(_alert(state="gone"))
    with pytest.raises(ValueError):
        store.open_alert(_alert(severity="info"))
    with pytest.raises(ValueError):
        store.alerts(state="open")
    assert len(store.alerts()) == 1


def test_firing_unacked_and_acked_firing_stay_open(store: Store) -> None:
    a = store.open_alert(_alert())
    store.ack_alert(a.id, "ops", "n", 11.0)  # acked but still firing: open
    b = store.open_alert(_alert(state="resolved", resolved_at=12.0))  # resolved, not acked
    c = store.open_alert(_alert(state="resolved", resolved_at=12.0))
    store.ack_alert(c.id, "ops", "n", 13.0)  # closed
    assert [x.id for x in store.alerts(open_only=True)] == [b.id, a.id]
    assert [x.id for x in store.alerts(state="firing", acknowledged=False)] == []


def test_retention_deletes_only_closed_alerts_before(store: Store) -> None:
    old = store.open_alert(_alert(state="resolved", resolved_at=100.0))
    store.ack_alert(old.id, "ops", "n", 101.0)
    unacked = store.open_alert(_alert(state="resolved", resolved_at=100.0))
    firing = store.open_alert(_alert())
    store.ack_alert(firing.id, "ops", "n", 101.0)
    newer = store.open_alert(_alert(state="resolved", resolved_at=300.0))
    store.ack_alert(newer.id, "ops", "n", 301.0)
    assert store.delete_alerts(200.0) == 1
    assert store.alert(old.id) is None
    assert {a.id for a in store.alerts()} == {unacked.id, firing.id, newer.id}
    assert store.delete_alerts(200.0) == 0


def test_count_due(store: Store) -> None:
    due = [make_msg(), make_msg()]
    later = make_msg(next_attempt_at=3000.0)
    future = make_msg(not_before=2500.0, next_attempt_at=2500.0)
    expired = make_msg(expires_at=1500.0)
    store.insert_messages([*due, later, future, expired])
    assert store.count_due(999.0) == 0
    assert store.count_due(1000.0) == 3  # the two due and the one expiring at 1500
    assert store.count_due(1000.0, limit=2) == 2
    assert store.count_due(2000.0) == 2  # past the expiry
    assert store.count_due(2600.0) == 3
    assert store.count_due(3000.0) == 4
    store.transition(due[0].id, State.ROUTED, State.CANCELLED, 3000.0)
    assert store.count_due(3000.0) == 3


def test_last_attempt_seq(store: Store) -> None:
    from adressat.core.model import AttemptRecord

    assert store.last_attempt_seq() == 0
    for i in range(3):
        store.append_attempt(AttemptRecord(f"{i:032x}", "acme", "46701000001", None, "netsim",
                                           1, 1, 10.0, 11.0, "DELIVERED", 0))
    assert store.last_attempt_seq() == max(a.seq for a in store.attempts_since(0, 10)) >= 3


def test_attempt_outcomes_since(store: Store) -> None:
    from adressat.core.model import AttemptRecord

    for i in range(3):
        store.append_attempt(AttemptRecord(f"{i:032x}", "acme", "46701000001", None, "netsim",
                                           1, 1, 10.0 + i, 11.0 + i, "TEMPORARY", 4,
                                           serving_node="msc-3"))
    views = store.attempts_since(0, 10)
    rows = store.attempt_outcomes_since(0, 10)
    assert [tuple(r) for r in rows] == [
        (v.seq, v.account, v.route, v.serving_node, v.outcome, v.error, v.started_at,
         v.ended_at) for v in views]
    assert rows[0][1:] == ("acme", "netsim", "msc-3", "TEMPORARY", 4, 10.0, 11.0)
    assert [r[0] for r in store.attempt_outcomes_since(rows[0][0], 1)] == [rows[1][0]]
    assert store.attempt_outcomes_since(0, 0) == []
