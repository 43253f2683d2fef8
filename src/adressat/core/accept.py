"""``accept_message()``: the only way a message comes in (STYLE.md #8, DESIGN.md lifecycle).

SMPP submit_sm / data_sm / submit_multi, the HTTP API and mobile-originated messages all turn
what they received into a :class:`Submission` and call :func:`accept_message`, which validates
it, normalises the destination, assigns the id and the binding tag and chooses the route. The
result is a :class:`Message` in state ROUTED, not yet durable: the caller commits it and only
then says "accepted" (I1).

Pure: the number normaliser, the router, the id and the clock are passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from adressat.core.model import ExtraValue, Message, State, message_from_values
from adressat.core.tag import binding_tag
from adressat.smpp.constants import EsmClass, Ton

GSM7_DATA_CODINGS = frozenset({0x00, 0x01})  # SMSC default alphabet (GSM 7-bit here), IA5
UCS2_DATA_CODING = 0x08


class Refusal(StrEnum):
    """Why a submission was refused. One table (``ingress/refusals.py``) gives each its SMPP
    command_status and its HTTP status and problem type; every way in raises
    :class:`Refused` with one of these, and nothing else."""

    INVALID_DESTINATION = "invalid_destination"
    #: a valid number outside what this account may send to (a partner's ranges)
    DESTINATION_NOT_ALLOWED = "destination_not_allowed"
    INVALID_SOURCE = "invalid_source"
    #: a valid source address this account may not use (its sender rules, issue 13)
    SOURCE_NOT_ALLOWED = "source_not_allowed"
    INVALID_SCHEDULE = "invalid_schedule"
    INVALID_EXPIRY = "invalid_expiry"
    MESSAGE_TOO_LONG = "message_too_long"
    INVALID_CONTENT = "invalid_content"
    INVALID_PRIORITY = "invalid_priority"
    #: message type bits that an ESME may not submit, or a UDH indicator without a valid UDH
    INVALID_ESM_CLASS = "invalid_esm_class"
    INVALID_PARAMETER = "invalid_parameter"  # an optional parameter with a value out of range
    MISSING_PARAMETER = "missing_parameter"  # one of a set of parameters that go together
    PARAMETER_NOT_ALLOWED = "parameter_not_allowed"  # given twice, or not allowed here
    #: temporary: the account's throughput limit (retry after a second)
    THROTTLED = "throttled"
    #: temporary: the queue of unfinished messages is full, or the store cannot write now
    QUEUE_FULL = "queue_full"
    #: the commit failed for another reason: nothing durable, our fault
    SYSTEM_ERROR = "system_error"


class Refused(Exception):
    """A submission that cannot be accepted. The message carries no content or number."""

    def __init__(self, reason: Refusal, detail: str = "") -> None:
        super().__init__(reason.value + (f": {detail}" if detail else ""))
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Submission:
    """What an ingress received, before validation. Times are epoch seconds or None."""

    account: str
    source_addr: str
    dest_addr: str
    content: bytes
    source_ton: int = 0
    source_npi: int = 0
    dest_ton: int = 0
    dest_npi: int = 0
    data_coding: int = 0
    esm_class: int = 0
    registered_delivery: int = 0
    priority: int = 0
    protocol_id: int = 0
    schedule_at: float | None = None
    expires_at: float | None = None
    extra: Mapping[str, ExtraValue] = field(default_factory=dict)
    #: the sender's own reference (HTTP API, issue 12; the ingress checks it, at most
    #: model.CLIENT_REFERENCE_LENGTH_MAX characters); kept as Message.client_reference
    client_reference: str | None = None


@dataclass(frozen=True, slots=True)
class AcceptLimits:
    validity_s_default: float = 48 * 3600.0
    validity_s_max: float = 7 * 24 * 3600.0
    content_octets_max: int = 255 * 153  # 255 concatenated parts of GSM 7-bit septets
    source_addr_length_max: int = 20  # SMPP 3.4 source_addr: 21 octets with the NUL
    alphanumeric_source_length_max: int = 11  # TS 23.040 alphanumeric originator




def _check_source(sub: Submission, limits: AcceptLimits) -> None:
    addr = sub.source_addr
    if len(addr) > limits.source_addr_length_max:
        raise Refused(Refusal.INVALID_SOURCE, "too long")
    if sub.source_ton == Ton.ALPHANUMERIC:
        if len(addr) > limits.alphanumeric_source_length_max or not addr.isprintable():
            raise Refused(Refusal.INVALID_SOURCE, "alphanumeric originator")
    elif addr and not addr.lstrip("+").isdigit():
        raise Refused(Refusal.INVALID_SOURCE, "not digits")


def _check_content(sub: Submission, limits: AcceptLimits) -> None:
    if len(sub.content) > limits.content_octets_max:
        raise Refused(Refusal.MESSAGE_TOO_LONG, f"{len(sub.content)} octets")
    if sub.esm_class & EsmClass.GSM_UDHI:
        return  # a UDH precedes the text: checked where the UDH is parsed
    data = sub.content
    if sub.data_coding in GSM7_DATA_CODINGS:
        # unpacked septets: one per octet, 0x00..0x7F; an escape must be followed by a char
        if data and max(data) > 0x7F:
            raise Refused(Refusal.INVALID_CONTENT, "octet above 0x7F in 7-bit text")
        if (len(data) - len(data.rstrip(b"\x1b"))) % 2:  # a trailing escape, not escaped
            raise Refused(Refusal.INVALID_CONTENT, "7-bit text ends in an escape")
    elif sub.data_coding == UCS2_DATA_CODING and len(data) % 2:
        raise Refused(Refusal.INVALID_CONTENT, "UCS-2 text of odd length")


def accept_message(
    sub: Submission,
    *,
    now: float,
    message_id: str,
    normalise_destination: Callable[[str, int, int], str],
    route_for: Callable[[str, str], str],
    tag_key: bytes,
    limits: AcceptLimits = AcceptLimits(),
) -> Message:
    """Validate ``sub`` and build its durable record (state ROUTED, route chosen).

    Raises :class:`Refused`. ``normalise_destination(addr, ton, npi)`` returns E.164 digits or
    raises ValueError; ``route_for(destination, account)`` returns a route name.
    """
    try:
        destination = normalise_destination(sub.dest_addr, sub.dest_ton, sub.dest_npi)
    except ValueError:
        raise Refused(Refusal.INVALID_DESTINATION) from None
    _check_source(sub, limits)
    _check_content(sub, limits)
    if not 0 <= sub.priority <= 3:
        raise Refused(Refusal.INVALID_PRIORITY)

    not_before = now if sub.schedule_at is None else sub.schedule_at
    if sub.expires_at is None:
        expires_at = max(now, not_before) + limits.validity_s_default
    else:
        expires_at = sub.expires_at
        if expires_at <= now:
            raise Refused(Refusal.INVALID_EXPIRY, "in the past")
    # a validity beyond the SMSC's maximum is shortened to it, as SMPP 3.4 5.2.15 allows
    extra = dict(sub.extra)
    if expires_at > now + limits.validity_s_max:
        expires_at = now + limits.validity_s_max
        extra["validity_shortened"] = 1
    if not_before >= expires_at:
        raise Refused(Refusal.INVALID_SCHEDULE, "scheduled after expiry")
    if not_before > now + limits.validity_s_max:
        raise Refused(Refusal.INVALID_SCHEDULE, "too far ahead")

    tag = binding_tag(
        tag_key, message_id, destination, sub.content, sub.data_coding, sub.esm_class
    )
    # all the fields, in field order (``Message``): the hot path of every submit, where the
    # frozen dataclass's keyword __init__ costs twice as much (tests compare the two)
    return message_from_values((
        message_id,  # id
        sub.account,  # account
        sub.source_addr,  # source_addr
        destination,  # destination
        sub.content,  # content
        now,  # submitted_at
        expires_at,  # expires_at
        sub.source_ton,  # source_ton
        sub.source_npi,  # source_npi
        sub.data_coding,  # data_coding
        sub.esm_class,  # esm_class
        sub.registered_delivery,  # registered_delivery
        sub.priority,  # priority
        sub.protocol_id,  # protocol_id
        not_before,  # not_before
        State.ROUTED,  # state
        route_for(destination, sub.account),  # route
        0,  # attempts
        not_before,  # next_attempt_at
        tag,  # tag
        None,  # final_at
        None,  # error
        None,  # delivered_imsi
        None,  # delivered_msisdn
        None,  # lease_until
        None,  # lease_owner
        extra,  # extra
        None,  # reference
        None,  # addressed_imsi
        None,  # scts
        sub.client_reference,  # client_reference
    ))
