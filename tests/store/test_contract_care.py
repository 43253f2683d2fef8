"""Store contract of the care console and the operator's views (schema v14), both back ends:
complaints, lookups by number, the complaint's candidates, the queue shape, receipt times."""

from __future__ import annotations

from store_helpers import make_msg

from adressat.core.care import Complaint
from adressat.core.model import AttemptRecord, State
from adressat.store import Store


def _complaint(at: float, verdict: str = "unexplained", route: str = "netsim",
               node: str = "msc-1") -> Complaint:
    return Complaint(at, "46701000001", at - 60, "Clinic", None, verdict, route, node)


def test_complaints_get_ids_and_are_read_after_an_id(store: Store) -> None:
    a = store.add_complaint(_complaint(1000.0))
    b = store.add_complaint(_complaint(1001.0, "misdelivered", node="msc-2"))
    assert 0 < a.id < b.id and a.at == 1000.0 and b.verdict == "misdelivered"
    assert store.complaints_since(0, 10) == [a, b]
    assert store.complaints_since(a.id, 10) == [b]
    assert store.complaints_since(0, 1) == [a]
    assert store.complaints_since(b.id, 10) == []
    assert store.complaint_counts() == {("netsim", "msc-1", "unexplained"): 1,
                                        ("netsim", "msc-2", "misdelivered"): 1}


def test_messages_of_a_number_to_and_from_in_the_window(store: Store) -> None:
    to1 = make_msg(destination="46701000001", submitted_at=1000.0, account="a")
    to2 = make_msg(destination="46701000001", submitted_at=1010.0, account="b")
    fr = make_msg(source_addr="46701000001", destination="46701000009", submitted_at=1005.0)
    other = make_msg(destination="46701000002", submitted_at=1003.0)
    late = make_msg(destination="46701000001", submitted_at=2000.0)
    store.insert_messages([to1, to2, fr, other, late])
    got = store.messages_of_number("46701000001", ("46701000001", "+46701000001"), 900, 1500,
                                   100)
    assert [m.id for m in got] == [to2.id, fr.id, to1.id]  # newest first
    assert [m.id for m in store.messages_of_number("46701000001", (), 900, 1500, 1)] == [to2.id]
    assert store.messages_of_number("46701000003", ("46701000003",), 0, 1e9, 10) == []


def test_messages_from_sources_oldest_first(store: Store) -> None:
    ms = [make_msg(source_addr=s, submitted_at=t) for s, t in
          (("Clinic", 1002.0), ("Clinic", 1001.0), ("Other", 1001.5), ("+4670", 1003.0))]
    store.insert_messages(ms)
    got = store.messages_from_sources(("Clinic", "+4670"), 1000.0, 1003.5, 10)
    assert [m.id for m in got] == [ms[1].id, ms[0].id, ms[3].id]
    assert store.messages_from_sources((), 0, 1e9, 10) == []
    assert len(store.messages_from_sources(("Clinic",), 0, 1e9, 1)) == 1


def test_queue_shape_by_route_serving_node_and_age(store: Store) -> None:
    now = 10_000.0
    young = make_msg(submitted_at=now - 10, route="netsim")
    old = make_msg(submitted_at=now - 700, route="netsim")
    held = make_msg(submitted_at=now - 20_000, route="other", state=State.HELD)
    done = make_msg(submitted_at=now - 10, route="netsim", state=State.ROUTED)
    store.insert_messages([young, old, held, done])
    store.transition(done.id, State.ROUTED, State.CANCELLED, now)  # final: not in the queue
    for m, node in ((old, "msc-2"), (young, "msc-1"), (young, "msc-3")):
        store.append_attempt(AttemptRecord(m.id, m.account, m.destination, None, m.route, 1, 1,
                                           now - 5, now - 4, "TEMPORARY", serving_node=node))
    got = store.queue_shape(now, (300.0, 600.0, 1200.0))
    assert got == [("netsim", "msc-2", 2, 1), ("netsim", "msc-3", 0, 1), ("other", None, 3, 1)]
    assert sum(c for *_, c in got) == store.count_unfinished()


def test_receipt_times(store: Store) -> None:
    m = make_msg(registered_delivery=1)
    store.insert_messages([m])
    assert store.receipt_times(m.id) is None
    store.transition(m.id, State.ROUTED, State.UNDELIVERABLE, 1234.0)
    state, created, sent = store.receipt_times(m.id)  # type: ignore[misc]
    assert (state, created, sent) == ("UNDELIVERABLE", 1234.0, None)


def test_complaints_go_with_record_retention_and_ids_never_repeat(store: Store) -> None:
    a = store.add_complaint(_complaint(1000.0))
    b = store.add_complaint(_complaint(5000.0))
    store.delete_records(2000.0, limit=10)
    assert store.complaints_since(0, 10) == [b]
    store.delete_records(9000.0, limit=10)
    assert store.complaints_since(0, 10) == []
    c = store.add_complaint(_complaint(9500.0))
    assert c.id > b.id > a.id
