"""The incident report names where each message went (serving node) and leaves the canary
prober's messages out; the audit counts those apart (issue 10)."""

from __future__ import annotations

import itertools
from pathlib import Path

from adressat.core.integrity import Alarm, AlarmKind
from adressat.core.model import CANARY_ACCOUNT, AttemptRecord, Message, State
from adressat.observe.audit import audit
from adressat.observe.incident import incident_report
from adressat.store import MemoryStore

_n = itertools.count(1)


def make_msg(account: str = "acme") -> Message:
    n = next(_n)
    return Message(id=f"{n:032x}", account=account, source_addr="ACME",
                   destination=f"467010{n:05d}", content=b"x", submitted_at=1000.0,
                   expires_at=5000.0, not_before=1000.0, next_attempt_at=1000.0,
                   state=State.ROUTED, route="netsim", tag=b"\x01" * 16)


def _attempt(mid: str, account: str, node: str | None, at: float) -> AttemptRecord:
    return AttemptRecord(mid, account, "46701000001", "240010000000001", "netsim", 1, 1, at,
                         at, "QUARANTINE", 7, serving_node=node)


def test_incident_report_names_serving_nodes_and_leaves_canaries_out(tmp_path: Path) -> None:
    store = MemoryStore()
    good, bad, canary = make_msg(), make_msg(), make_msg(account=CANARY_ACCOUNT)
    store.insert_messages([good, bad, canary])
    assert len(store.claim_due(10, 1000.0, 60.0, "w")) == 3
    store.transition(good.id, State.DISPATCHED, State.DELIVERED, 1001.0, error=0,
                     delivered_imsi="1", delivered_msisdn=good.destination)
    store.transition(bad.id, State.DISPATCHED, State.QUARANTINED, 1001.0, error=7)
    store.transition(canary.id, State.DISPATCHED, State.QUARANTINED, 1001.0, error=7)
    store.append_attempt(_attempt(good.id, "acme", "msc-1", 1000.5))
    store.append_attempt(_attempt(bad.id, "acme", "msc-2", 1000.5))
    store.append_attempt(_attempt(canary.id, CANARY_ACCOUNT, "msc-2", 1000.5))
    store.append_alarm(Alarm(1001.0, AlarmKind.IDENTITY_MISMATCH, (canary.id,), CANARY_ACCOUNT,
                             "netsim", serving_node="msc-2"))
    rep = incident_report(store, 900.0, 1100.0)
    assert set(rep["accounts"]) == {"acme"}
    acme = rep["accounts"]["acme"]
    assert acme["quarantined"] == [bad.id] and acme["delivered"] == [good.id]
    assert acme["serving_nodes"] == {bad.id: "msc-2"}
    assert acme["by_serving_node"] == {"msc-1": {"delivered": 1}, "msc-2": {"quarantined": 1}}
    # asked for the canary account: there it is
    own = incident_report(store, 900.0, 1100.0, CANARY_ACCOUNT)
    assert own["accounts"][CANARY_ACCOUNT]["quarantined"] == [canary.id]
    # the audit: customer figures without the canary, which is counted apart
    figures = audit(store, tmp_path, 1100.0)
    assert figures["total"] == 2 and figures["quarantined"] == 1
    assert figures["canary"]["messages"] == 1
    assert figures["canary"]["states"] == {"QUARANTINED": 1}


def test_audit_judges_a_delivery_only_once_its_evidence_was_there_to_read(
        tmp_path: Path) -> None:
    """On a running node the audit reads the handsets' inbox, then the store: a message
    DELIVERED at or after the audit's ``now`` may have its record written after the inbox
    was read, so it is not judged; one delivered before with no record is lost."""
    store = MemoryStore()
    early, late = make_msg(), make_msg()
    store.insert_messages([early, late])
    assert len(store.claim_due(10, 1000.0, 60.0, "w")) == 2
    store.transition(early.id, State.DISPATCHED, State.DELIVERED, 1050.0, error=0,
                     delivered_imsi="1", delivered_msisdn=early.destination)
    store.transition(late.id, State.DISPATCHED, State.DELIVERED, 1100.0, error=0,
                     delivered_imsi="2", delivered_msisdn=late.destination)
    figures = audit(store, tmp_path, 1100.0)  # no inbox record for either
    assert figures["lost_delivered_without_evidence"] == 1
    assert figures["samples"]["lost"] == [early.id]
    assert figures["delivered_after_evidence_read"] == 1
    later = audit(store, tmp_path, 1100.5)  # a moment later both are judged
    assert later["lost_delivered_without_evidence"] == 2
    assert later["delivered_after_evidence_read"] == 0
