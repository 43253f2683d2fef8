"""core.breaker: the pure trip decision; core.integrity: which alarms count."""

from __future__ import annotations

import pytest

from adressat.core.breaker import counts, should_trip, trip_reason
from adressat.core.integrity import BREAKER_KINDS, Alarm, AlarmKind


def test_default_threshold_trips_on_any_alarm() -> None:
    assert not should_trip(0, 1, False)
    assert should_trip(1, 1, False)
    assert not should_trip(5, 1, True)  # already held: not tripped again
    assert not should_trip(2, 3, False) and should_trip(3, 3, False)
    assert not should_trip(100, 0, False)  # 0 disables the breaker
    with pytest.raises(ValueError):
        should_trip(1, -1, False)


def test_which_alarms_count() -> None:
    assert AlarmKind.LATE_ANSWER not in BREAKER_KINDS
    assert AlarmKind.DUPLICATE_ANSWER not in BREAKER_KINDS
    assert AlarmKind.STRAY_ACK in BREAKER_KINDS and AlarmKind.TAG_MISMATCH in BREAKER_KINDS
    a = Alarm(1.0, AlarmKind.IMSI_CONFLICT, ("m2", "m1"), route="netsim")
    assert counts(a) and trip_reason(a) == "imsi_conflict:m2,m1"
    assert not counts(Alarm(1.0, AlarmKind.IMSI_CONFLICT, ("m",)))  # no route: nothing to trip
    assert not counts(Alarm(1.0, AlarmKind.LATE_ANSWER, ("m",), route="netsim"))
