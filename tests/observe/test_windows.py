"""The live windows: outcome classes, bounded per-second figures, percentiles, the series."""

from __future__ import annotations

import pytest

from adressat.delivery.errors import DeliveryError
from adressat.observe.windows import LiveWindows, OutcomeClass, classify, percentile_ms

E = DeliveryError


@pytest.mark.parametrize(
    ("outcome", "error", "cls"),
    [
        ("DELIVERED", 0, OutcomeClass.OK),
        ("TEMPORARY", E.ABSENT_SUBSCRIBER, OutcomeClass.SUBSCRIBER),
        ("TEMPORARY", E.MEMORY_CAPACITY_EXCEEDED, OutcomeClass.SUBSCRIBER),
        ("PERMANENT", E.UNKNOWN_SUBSCRIBER, OutcomeClass.SUBSCRIBER),
        ("TEMPORARY", E.SYSTEM_FAILURE, OutcomeClass.NETWORK),
        ("TEMPORARY", E.TIMEOUT, OutcomeClass.NETWORK),
        ("TEMPORARY", E.UNIDENTIFIED_SUBSCRIBER, OutcomeClass.NETWORK),
        ("TEMPORARY", E.ROUTING_MISMATCH, OutcomeClass.NETWORK),
        ("PERMANENT", E.UNROUTABLE, OutcomeClass.NETWORK),
        ("QUARANTINE", E.IDENTITY_MISMATCH, OutcomeClass.INTEGRITY),
        ("QUARANTINED", E.TAG_MISMATCH, OutcomeClass.INTEGRITY),
        ("TEMPORARY", E.RETRY_IDENTITY_CHANGED, OutcomeClass.INTEGRITY),
        ("PERMANENT", E.INVALID_CONTENT, OutcomeClass.OTHER),
        ("EXPIRED", E.EXPIRED, OutcomeClass.OTHER),
        ("INTERRUPTED", None, OutcomeClass.OTHER),
        ("FORWARDED", 0, OutcomeClass.OK),
        ("TEMPORARY", E.PARTNER_UNANSWERED, OutcomeClass.NETWORK),
        ("PERMANENT", E.PARTNER_REFUSED, OutcomeClass.NETWORK),
    ],
)
def test_classes(outcome: str, error: int | None, cls: OutcomeClass) -> None:
    assert classify(outcome, None if error is None else int(error)) is cls


def test_every_error_code_has_a_deliberate_class() -> None:
    # a new error code must be placed in a class on purpose (this test fails until it is)
    placed = {0, 1, 2, 3, 4, 5, 6, 10, 11, 20, 30, 31, 32, 33, 34, 35,
              40, 41, 42, 43, 44, 45}
    assert {int(e) for e in E} == placed


def test_figures_by_place_and_second() -> None:
    w = LiveWindows(window_s=30)
    for i in range(10):
        w.add_attempt("netsim", "msc-1", "DELIVERED", 0, 100.0 + i, 100.0 + i + 0.010)
    w.add_attempt("netsim", "msc-1", "TEMPORARY", 4, 105.0, 105.5)
    w.add_attempt("netsim", "msc-2", "TEMPORARY", 1, 105.0, 105.2)
    w.add_attempt("netsim", None, "TEMPORARY", 1, 105.0, 105.0)
    assert w.places() == [("netsim", ""), ("netsim", "msc-1"), ("netsim", "msc-2")]
    f = w.figures(("netsim", "msc-1"), 100, 109)
    assert (f.attempts, f.failures, f.errors) == (11, 1, {4: 1})
    assert f.count(OutcomeClass.OK) == 10
    assert w.figures(("netsim", "msc-1"), 106, 109).attempts == 4
    sub = w.figures(("netsim", "msc-2"), 100, 109)
    assert (sub.attempts, sub.failures, sub.count(OutcomeClass.SUBSCRIBER)) == (1, 0, 1)
    p50 = f.latency_ms(0.5)
    assert p50 is not None and 9.1 <= p50 <= 10.9  # within a bucket (about 9 %)
    p99 = f.latency_ms(0.99)
    assert p99 is not None and 455.0 <= p99 <= 545.0
    total = w.sum_figures(w.places(), 0, 200)
    assert total.attempts == 13


def test_series_and_bounds() -> None:
    w = LiveWindows(window_s=10, places_max=2, place_idle_s=50.0)
    w.add_accepted(100.2, 5)
    w.add_attempt("a", "n1", "DELIVERED", 0, 100.0, 100.1)
    w.add_attempt("a", "n1", "TEMPORARY", 5, 101.0, 101.1)
    s = w.series(101.5, 3)
    assert s == {"t": [99, 100, 101], "accepted": [0, 5, 0], "delivered": [0, 1, 0],
                 "failed": [0, 0, 1]}
    # a third place evicts the least recently seen
    w.add_attempt("b", "n1", "DELIVERED", 0, 102.0, 102.0)
    w.add_attempt("c", "n1", "DELIVERED", 0, 103.0, 103.0)
    assert w.places() == [("b", "n1"), ("c", "n1")] and w.dropped_places == 1
    # seconds older than the window go; so does a place idle too long
    w.advance(120.0)
    assert w.figures(("b", "n1"), 0, 200).attempts == 0
    assert w.series(120.0)["accepted"] == [0] * 10
    w.add_attempt("c", "n1", "DELIVERED", 0, 100.0, 100.0)  # too late for the window
    assert w.dropped_late == 1
    w.advance(160.0)
    assert w.places() == []


def test_percentile_edges() -> None:
    assert percentile_ms({}, 0.95) is None
    assert percentile_ms({0: 3.0}, 0.5) == 0.0
    with pytest.raises(ValueError):
        LiveWindows(window_s=0)
