"""Integrity records (DESIGN.md, "Identity checks", "Fail closed", "Forensics").

* :class:`Alarm`: one append-only integrity alarm: what (``kind``), which messages, where
  (account, route, node, adapter). ``detail`` is a short machine-readable string of ids and
  codes, never message text (I6).
* :class:`RouteStatus`: the durable breaker of one route (held or not, why, since when, the
  integrity alarms counted since it was last released) and how many messages it holds.
* :class:`FaultSetting`: the desired state of one switchable fault (set by ``adressat fault``,
  applied by the running node).

Pure values: no clock, no store, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class AlarmKind(StrEnum):
    TAG_MISMATCH = "tag_mismatch"
    IDENTITY_MISMATCH = "identity_mismatch"
    IMSI_CONFLICT = "imsi_conflict"
    PARTS_IDENTITY_MISMATCH = "parts_identity_mismatch"
    LATE_ANSWER = "late_answer"
    UNMATCHED_ANSWER = "unmatched_answer"
    DUPLICATE_ANSWER = "duplicate_answer"
    STRAY_ACK = "stray_ack"
    DUPLICATE_DELIVERY_REFUSED = "duplicate_delivery_refused"
    ROUTING_MISMATCH = "routing_mismatch"  # refused before sending: the lookup answer is wrong
    # a retry after a timeout would go to another identity than the one that may have it
    RETRY_IDENTITY_CHANGED = "retry_identity_changed"
    # interconnect (issue 11): a partner's receipt that matches no message we forwarded there
    # (or matched more than one), and a partner message id answered for two of our messages.
    # Never applied to another message; not breaker kinds (the partner's fault, not a wrong
    # recipient of ours), counted per connector.
    PARTNER_RECEIPT_UNMATCHED = "partner_receipt_unmatched"
    PARTNER_ID_REUSED = "partner_id_reused"


#: Alarms that say a message may have reached (or was about to reach) a wrong identity. These
#: count towards the route's breaker; so does ``routing_mismatch`` (nothing was sent, but the
#: register is giving wrong answers on this route: fail closed). ``late_answer`` and
#: ``duplicate_answer`` (an answer from the destination's own identity, after the attempt was
#: over or a second time) are recorded and discarded but do not by themselves show a wrong
#: recipient.
BREAKER_KINDS: frozenset[AlarmKind] = frozenset(
    {
        AlarmKind.TAG_MISMATCH,
        AlarmKind.IDENTITY_MISMATCH,
        AlarmKind.IMSI_CONFLICT,
        AlarmKind.PARTS_IDENTITY_MISMATCH,
        AlarmKind.UNMATCHED_ANSWER,
        AlarmKind.STRAY_ACK,
        AlarmKind.DUPLICATE_DELIVERY_REFUSED,
        AlarmKind.ROUTING_MISMATCH,
        AlarmKind.RETRY_IDENTITY_CHANGED,
    }
)


#: Alarms that say a message may have reached a wrong identity (the audit's "detected", the
#: incident report's "suspect"): every breaker kind except ``routing_mismatch`` and
#: ``retry_identity_changed``, raised when nothing was sent (prevented).
MISDELIVERY_KINDS: frozenset[AlarmKind] = BREAKER_KINDS - {
    AlarmKind.ROUTING_MISMATCH,
    AlarmKind.RETRY_IDENTITY_CHANGED,  # nothing sent; the earlier copy went where addressed
}


@dataclass(frozen=True, slots=True)
class Alarm:
    """One integrity alarm. ``id`` is assigned by the store (0 before it is appended)."""

    at: float
    kind: AlarmKind
    message_ids: tuple[str, ...]
    account: str = ""
    route: str = ""
    node: int = 0
    adapter: str = ""
    detail: str = ""
    id: int = 0
    #: netsim's MSC/VLR the attempt went to (e.g. "msc-2"); None when not known/before v12
    serving_node: str | None = None

    @property
    def trips_breaker(self) -> bool:
        return self.kind in BREAKER_KINDS

    @property
    def names_misdelivery(self) -> bool:
        """Whether the messages it names may have reached a wrong identity."""
        return self.kind in MISDELIVERY_KINDS


@dataclass(frozen=True, slots=True)
class RouteStatus:
    name: str
    held: bool
    held_at: float | None
    reason: str
    alarms: int  # breaker alarms since the route was last released
    held_messages: int = 0
    alarms_total: int = 0


@dataclass(frozen=True, slots=True)
class FaultSetting:
    name: str
    on: bool
    rate: float = 1.0
    route: str = ""  # "" = every route
    params: dict[str, object] = field(default_factory=dict, hash=False)
    updated_at: float = 0.0
    node: str = ""  # "" = every serving node (netsim faults only)
