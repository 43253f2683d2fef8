"""An alert as the store keeps it (docs/alerts.md): a rule fired on a place, with its lifecycle.

An alert is *firing* or *resolved* (by the evidence: the evaluator in ``observe/alerts.py``
decides), and independently *acknowledged* or not (by a person, with a note: ``adressat alarm
ack``). The evaluator writes the state and the evidence; the CLI writes only the ack. Pure
values: no clock, no store, no I/O. Nothing in an alert is message text (I6): places, counts,
rates, error codes and message ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AlertRecord", "ALERT_STATES", "SEVERITIES", "alert_json"]

#: ``state``: firing until the evidence says the condition is gone, then resolved
ALERT_STATES: tuple[str, ...] = ("firing", "resolved")
SEVERITIES: tuple[str, ...] = ("critical", "warning")


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """One alert. ``id`` is given by the store (0 before it is opened).

    ``place``: ``{"route": ..., "serving_node": ...}``; ``serving_node`` None means the route
    as a whole. ``alarm_first_id``/``alarm_last_id``: the integrity alarms it accumulated
    (None for the other rules). ``evidence``: the rule's own figures (JSON-able)."""

    rule: str
    severity: str
    place: Mapping[str, str | None]
    state: str
    started_at: float
    last_evidence_at: float
    summary: str = ""
    evidence: Mapping[str, Any] = field(default_factory=dict, hash=False)
    resolved_at: float | None = None
    acked_at: float | None = None
    acked_by: str | None = None
    note: str | None = None
    alarm_first_id: int | None = None
    alarm_last_id: int | None = None
    id: int = 0

    @property
    def acknowledged(self) -> bool:
        return self.acked_at is not None

    @property
    def open(self) -> bool:
        """Still asks for a person: firing, or not yet acknowledged."""
        return self.state == "firing" or self.acked_at is None


def alert_json(a: AlertRecord) -> dict[str, Any]:
    """The alert as ``GET /v1/alerts`` and the webhook give it."""
    return {
        "id": a.id,
        "rule": a.rule,
        "severity": a.severity,
        "state": a.state,
        "acknowledged": a.acknowledged,
        "place": {"route": a.place.get("route"), "serving_node": a.place.get("serving_node")},
        "summary": a.summary,
        "started_at": a.started_at,
        "last_evidence_at": a.last_evidence_at,
        "resolved_at": a.resolved_at,
        "acked_at": a.acked_at,
        "acked_by": a.acked_by,
        "note": a.note,
        "evidence": dict(a.evidence),
        "alarm_ids": None if a.alarm_first_id is None else [a.alarm_first_id, a.alarm_last_id],
    }


def check_alert(a: AlertRecord) -> None:
    """What every back end refuses to store (ValueError)."""
    if a.state not in ALERT_STATES:
        raise ValueError(f"alert state must be one of {list(ALERT_STATES)}")
    if a.severity not in SEVERITIES:
        raise ValueError(f"alert severity must be one of {list(SEVERITIES)}")
    if not a.rule:
        raise ValueError("alert rule must not be empty")


def check_ack(by: str, note: str) -> None:
    if not by.strip():
        raise ValueError("an acknowledgement names who gives it")
    if not note.strip():
        raise ValueError("an acknowledgement needs a note")


def check_alert_filters(state: str | None, limit: int) -> None:
    if state is not None and state not in ALERT_STATES:
        raise ValueError(f"alert state must be one of {list(ALERT_STATES)}")
    if limit < 0:
        raise ValueError("limit must be >= 0")
