"""Integrity alarms of the delivery worker: which error raises which alarm, the alarm's
record and log line, and the route breaker's trip in the same transaction (DESIGN.md
"Identity checks", "Fail closed"). The store calls run inside the caller's transaction."""

from __future__ import annotations

import logging

from adressat.core.breaker import counts as counts_for_breaker
from adressat.core.breaker import should_trip, trip_reason
from adressat.core.integrity import Alarm, AlarmKind
from adressat.core.model import Message
from adressat.delivery.adapter import Outcome
from adressat.delivery.errors import DeliveryError
from adressat.store.base import Store

__all__ = ["ALARM_KINDS", "ALARMED_TEMPORARY", "alarm_for", "log_alarm", "record_alarm"]

alarm_log = logging.getLogger("adressat.alarm")

#: integrity error code -> alarm kind
ALARM_KINDS: dict[int, AlarmKind] = {
    int(DeliveryError.TAG_MISMATCH): AlarmKind.TAG_MISMATCH,
    int(DeliveryError.IDENTITY_MISMATCH): AlarmKind.IDENTITY_MISMATCH,
    int(DeliveryError.IMSI_CONFLICT): AlarmKind.IMSI_CONFLICT,
    int(DeliveryError.PARTS_IDENTITY_MISMATCH): AlarmKind.PARTS_IDENTITY_MISMATCH,
    int(DeliveryError.ROUTING_MISMATCH): AlarmKind.ROUTING_MISMATCH,
    int(DeliveryError.RETRY_IDENTITY_CHANGED): AlarmKind.RETRY_IDENTITY_CHANGED,
}

#: errors of a TEMPORARY outcome that still raise an alarm (written in the same transaction
#: as the DEFERRED/HELD transition): a refusal before sending because the register's answer
#: was wrong (nothing went out; the route's breaker counts it).
ALARMED_TEMPORARY: frozenset[int] = frozenset({int(DeliveryError.ROUTING_MISMATCH)})


def log_alarm(alarm: Alarm) -> None:
    """The structured log line of an alarm: ids, route, node, adapter; never text."""
    alarm_log.error(
        "integrity alarm",
        extra={
            "alarm_id": alarm.id,
            "kind": alarm.kind.value,
            "message_ids": list(alarm.message_ids),
            "account": alarm.account,
            "route": alarm.route,
            "node": alarm.node,
            "adapter": alarm.adapter,
            "serving_node": alarm.serving_node,
            "detail": alarm.detail,
        },
    )


def record_alarm(store: Store, alarm: Alarm, threshold: int, now: float) -> tuple[Alarm, bool]:
    """Append ``alarm`` and trip its route's breaker if the threshold is reached; inside the
    caller's transaction. Returns (the stored alarm, whether the route was tripped now)."""
    stored = store.append_alarm(alarm)
    if not counts_for_breaker(stored):
        return stored, False
    status = next((r for r in store.route_status() if r.name == stored.route), None)
    alarms = status.alarms if status is not None else 0
    held = status.held if status is not None else False
    if should_trip(alarms, threshold, held):
        store.trip_route(stored.route, trip_reason(stored), now)
        return stored, True
    return stored, False


def alarm_for(msg: Message, outcome: Outcome, now: float, node: int, adapter: str) -> Alarm:
    """The alarm of an integrity outcome: the kind its error names, the message and the
    others the outcome names, where (account, route, node, adapter), and the identities."""
    kind = ALARM_KINDS.get(int(outcome.error), AlarmKind.IDENTITY_MISMATCH)
    return Alarm(
        at=now,
        kind=kind,
        message_ids=(msg.id, *outcome.related),
        account=msg.account,
        route=msg.route,
        node=node,
        adapter=adapter,
        detail=(
            f"error={int(outcome.error)} imsi={outcome.imsi} msisdn={outcome.msisdn}"
            f" network_node={outcome.node}"
            + (f" addressed={outcome.addressed_imsi}" if outcome.addressed_imsi else "")
        ),
        serving_node=outcome.node,
    )
