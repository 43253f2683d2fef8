"""The per-route breaker decision (DESIGN.md, "Fail closed"). Pure.

When the integrity alarms on a route since it was last released reach
``breaker_alarms_threshold`` (default 1: any), deliveries on that route stop and its
messages are HELD (not rerouted, not expired early) until an operator releases the route.
A threshold of 0 disables the breaker (tests and benchmarks only).
"""

from __future__ import annotations

from adressat.core.integrity import Alarm


def should_trip(alarms_since_release: int, threshold: int, already_held: bool) -> bool:
    """True when the route must be tripped now (an open breaker is not tripped again)."""
    if threshold < 0:
        raise ValueError("breaker threshold must be >= 0")
    if already_held or threshold == 0:
        return False
    return alarms_since_release >= threshold


def counts(alarm: Alarm) -> bool:
    """Whether ``alarm`` counts towards its route's breaker."""
    return bool(alarm.route) and alarm.trips_breaker


def trip_reason(alarm: Alarm) -> str:
    """The reason recorded on the route: the alarm's kind and ids, never text."""
    return f"{alarm.kind.value}:{','.join(alarm.message_ids)}"
