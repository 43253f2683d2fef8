"""Delivery to other operators and hubs over our SMPP connectors (issue 11).

:meth:`SmppAdapter.deliver` for a message on an operator route (``adressat route add ...
--via C1,C2``):

1. builds the submit_sm PDU(s) it is about to send (destination as international E.164,
   ``registered_delivery`` 1 whatever the sender asked: the partner's receipt is what ends
   the message), and recomputes the binding tag from exactly those PDUs' destination, content,
   data_coding and esm_class: a mismatch is QUARANTINE, nothing sent (DESIGN.md "Binding
   tag", as the netsim adapter does);
2. long content goes whole in ``message_payload`` where the connector allows it
   (``--payload on``), else as parts with a concatenation UDH, one submit_sm each, in order,
   on one connector;
3. tries the route's connectors in order, skipping those the message may not go back to
   (``extra["no_via"]``: the partner it came from) and moving on only when one *cannot take*
   the message: not bound, or it refused the first part. Once a partner answered ESME_ROK for
   a part the message is that partner's: FORWARDED, never offered to another one (I3);
4. a submit that was sent and not answered (timeout, the session gone) may be at the partner:
   no failover, TEMPORARY ``PARTNER_UNANSWERED``, and the retry goes only through that same
   connector (its name is made durable as the attempt's addressed identity, ``smpp:NAME``,
   before the submit leaves, so this holds across a crash too).

Refusals: ESME_RTHROTTLED, ESME_RMSGQFUL and the like are temporary (retried with backoff,
keeping the sender's receipt request); anything else the partner says is permanent
(UNDELIVERABLE, error PARTNER_REFUSED, the partner's status kept as ``partner_status``).
Every outcome records where it went: ``extra`` ``connector``, ``operator``, ``partner_id``.
Message text is never logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from adressat.core.interconnect import canonical_id
from adressat.core.model import ExtraValue, ForwardPart, Message, State
from adressat.core.tag import verify_tag
from adressat.delivery.adapter import Addressed, Outcome, OutcomeKind
from adressat.delivery.errors import DeliveryError
from adressat.delivery.netsim_adapter import concat_reference
from adressat.observe.metrics import PARTNER_SUBMITS, TurnCounts
from adressat.smpp.constants import CommandStatus as S
from adressat.smpp.constants import EsmClass, TlvTag
from adressat.smpp.views import SubmitSm
from adressat.sms import Concat, EncodingError, SegmentationError, codec_for_data_coding
from adressat.sms.segment import segment_payload
from adressat.transport.smpp_client import NotBound, SubmitUnanswered

__all__ = [
    "HOPS_TLV",
    "SHORT_MESSAGE_OCTETS_MAX",
    "SmppAdapter",
    "build_submits",
    "content_of",
]

log = logging.getLogger(__name__)

#: SMPP 3.4 §5.2.21: short_message is at most 254 octets; longer content needs
#: message_payload (§5.3.2.32) or parts.
SHORT_MESSAGE_OCTETS_MAX = 254
#: A vendor-specific TLV (SMPP 3.4 §5.3.2: 0x1400..0x3FFF) counting SMSC hops: another
#: adressat that gets the message from us sees how far it has come (loop limit, Jasmin #376).
HOPS_TLV = int(TlvTag.ADRESSAT_HOPS)
#: Temporary refusals (SMPP 3.4 §5.1.3): try another connector now, or later.
TEMPORARY_STATUSES: frozenset[int] = frozenset(
    {int(S.ESME_RTHROTTLED), int(S.ESME_RMSGQFUL), int(S.ESME_RSYSERR), 0x64}  # RX_T_APPN
)
ADDRESSED_PREFIX = "smpp:"


class SubmitAnswerLike(Protocol):
    status: int
    message_id: str


class Connector(Protocol):
    """What the adapter needs of a connector (``transport.smpp_client.SmppConnector``)."""

    @property
    def bound(self) -> bool: ...
    async def submit(self, pdu: SubmitSm) -> SubmitAnswerLike: ...


@dataclass(frozen=True, slots=True)
class RouteTarget:
    """An operator route as the adapter sees it: connectors in failover order."""

    via: tuple[str, ...]
    operator: str = ""


def build_submits(msg: Message, *, payload: bool) -> list[SubmitSm]:
    """The submit_sm PDUs for ``msg`` (sequence numbers 0: the session numbers them).
    Raises ValueError when the content cannot be carried."""
    base = SubmitSm(
        source_addr_ton=msg.source_ton,
        source_addr_npi=msg.source_npi,
        source_addr=msg.source_addr,
        dest_addr_ton=1,  # international
        dest_addr_npi=1,  # E.164
        destination_addr=msg.destination,
        protocol_id=msg.protocol_id,
        priority_flag=msg.priority,
        registered_delivery=1,
        data_coding=msg.data_coding,
        esm_class=msg.esm_class,
        adressat_hops=min(int(msg.extra.get("hops", 0)) + 1, 127),
    )
    content = msg.content
    if len(content) <= SHORT_MESSAGE_OCTETS_MAX:
        return [replace(base, short_message=content)]
    if payload:
        return [replace(base, message_payload=content)]
    if msg.esm_class & EsmClass.GSM_UDHI:
        raise ValueError("content with its own UDH exceeds one short_message")
    try:
        alphabet = codec_for_data_coding(msg.data_coding).alphabet
        segments = segment_payload(content, alphabet, concat=Concat.UDH8,
                                   reference=concat_reference(msg.id))
    except (EncodingError, SegmentationError, ValueError) as e:
        raise ValueError("content cannot be segmented") from e
    return [
        replace(base, esm_class=msg.esm_class | EsmClass.GSM_UDHI,
                short_message=seg.udh + seg.payload)
        for seg in segments
    ]


def content_of(pdus: Sequence[SubmitSm]) -> tuple[str, bytes, int, int]:
    """(destination, content, data_coding, esm_class) exactly as these PDUs carry them: what
    the binding tag is checked against. Parts are joined with their concatenation UDH
    (which we added) taken off again."""
    first = pdus[0]
    if len(pdus) == 1:
        return first.destination_addr, first.content, first.data_coding, first.esm_class
    chunks: list[bytes] = []
    for p in pdus:
        if p.destination_addr != first.destination_addr:
            return "", b"", first.data_coding, first.esm_class  # can never match
        sm = p.short_message
        chunks.append(sm[sm[0] + 1:] if sm else b"")
    return (first.destination_addr, b"".join(chunks), first.data_coding,
            first.esm_class & ~EsmClass.GSM_UDHI)


class SmppAdapter:
    def __init__(
        self,
        tag_key: bytes,
        *,
        route: Callable[[str], RouteTarget | None],
        connector: Callable[[str], Connector | None],
        payload_allowed: Callable[[str], bool],
        guards: bool = True,
    ) -> None:
        self._tag_key = tag_key
        self._route = route
        self._connector = connector
        self._payload_allowed = payload_allowed
        self.guards = guards
        self._submits = TurnCounts(PARTNER_SUBMITS)  # one inc per label set and loop turn
        self.submitted = 0
        self.refused = 0
        self.unanswered = 0

    async def deliver(self, msg: Message, addressed: Addressed | None = None) -> Outcome:
        target = self._route(msg.route)
        if target is None:
            return Outcome.failed(OutcomeKind.PERMANENT, DeliveryError.UNROUTABLE)
        excluded = set(str(msg.extra.get("no_via", "")).split(",")) - {""}
        via = [c for c in target.via if c not in excluded]
        pinned = self._pinned(msg)
        if pinned is not None:  # the last attempt may be at that partner: only there
            via = [c for c in via if c == pinned] or [pinned]
        if not via:
            return Outcome.failed(OutcomeKind.PERMANENT, DeliveryError.ROUTING_LOOP,
                                  reason="routing_loop")
        refusals: list[tuple[str, int]] = []
        for name in via:
            conn = self._connector(name)
            if conn is None or not conn.bound:
                refusals.append((name, -1))
                continue
            try:
                pdus = build_submits(msg, payload=self._payload_allowed(name))
            except ValueError:
                return Outcome.failed(OutcomeKind.PERMANENT, DeliveryError.INVALID_CONTENT)
            if self.guards:
                dest, content, dcs, esm = content_of(pdus)
                if not verify_tag(self._tag_key, msg.tag, msg.id, dest, content, dcs, esm):
                    log.error("binding tag mismatch",
                              extra={"message_id": msg.id, "account": msg.account,
                                     "route": msg.route, "connector": name,
                                     "error": int(DeliveryError.TAG_MISMATCH)})
                    return Outcome.failed(OutcomeKind.QUARANTINE, DeliveryError.TAG_MISMATCH)
            if addressed is not None and not await addressed(ADDRESSED_PREFIX + name):
                return Outcome.failed(OutcomeKind.TEMPORARY, DeliveryError.SYSTEM_FAILURE)
            outcome = await self._submit_all(msg, name, conn, pdus, target.operator)
            if isinstance(outcome, Outcome):
                return outcome
            refusals.append((name, outcome))
        return self._refused(msg, refusals, target.operator)

    def _pinned(self, msg: Message) -> str | None:
        """After an unanswered submit (or a crash in the middle of one), the connector it
        went to."""
        addressed = msg.addressed_imsi or ""
        if not addressed.startswith(ADDRESSED_PREFIX):
            return None
        if msg.error not in (int(DeliveryError.PARTNER_UNANSWERED), int(DeliveryError.TIMEOUT),
                             int(DeliveryError.SYSTEM_FAILURE), None):
            return None
        return addressed[len(ADDRESSED_PREFIX):]

    async def _submit_all(self, msg: Message, name: str, conn: Connector, pdus: list[SubmitSm],
                          operator: str) -> Outcome | int:
        """Submit every part on ``conn``. An int: the first part's refusal status (-1: the
        connector was not bound after all); nothing was accepted, the next may take it."""
        parts: list[ForwardPart] = []
        total = len(pdus)
        for number, pdu in enumerate(pdus, start=1):
            try:
                answer = await conn.submit(pdu)
            except NotBound:
                if number == 1:
                    return -1
                parts.append(self._failed_part(msg, number, total, name,
                                               DeliveryError.PARTNER_UNAVAILABLE))
                continue
            except SubmitUnanswered:
                self.unanswered += 1
                self._submits.add(name, "unanswered")
                if number == 1:
                    return Outcome(OutcomeKind.TEMPORARY,
                                   error=int(DeliveryError.PARTNER_UNANSWERED),
                                   reason="partner_unanswered",
                                   attribution=_where(name, operator))
                parts.append(self._failed_part(msg, number, total, name,
                                               DeliveryError.PARTNER_UNANSWERED, State.UNKNOWN))
                continue
            status = int(answer.status)
            if status != S.ESME_ROK or not answer.message_id:
                self.refused += 1
                self._submits.add(name, "refused")
                if number == 1:  # an ESME_ROK without an id: as good as refused
                    return status if status != S.ESME_ROK else int(S.ESME_RSYSERR)
                parts.append(self._failed_part(msg, number, total, name,
                                               DeliveryError.PARTNER_REFUSED))
                continue
            try:
                pid: str | None = canonical_id(answer.message_id)
            except ValueError:
                pid = None
            self.submitted += 1
            self._submits.add(name, "accepted")
            if pid is None:  # accepted, but no id we could ever match a receipt to
                parts.append(self._failed_part(msg, number, total, name,
                                               DeliveryError.PARTNER_NO_RECEIPT, State.UNKNOWN))
            else:
                parts.append(ForwardPart(msg.id, number, total, name, pid))
        ids = ",".join(p.partner_id for p in parts if p.partner_id)
        return Outcome(
            OutcomeKind.FORWARDED, error=int(DeliveryError.OK), reason="forwarded",
            forwards=tuple(parts),
            attribution=(*_where(name, operator), ("partner_id", ids)),
        )

    @staticmethod
    def _failed_part(msg: Message, number: int, total: int, name: str, error: DeliveryError,
                     state: State = State.UNDELIVERABLE) -> ForwardPart:
        return ForwardPart(msg.id, number, total, name, None, state, int(error))

    def _refused(self, msg: Message, refusals: list[tuple[str, int]], operator: str) -> Outcome:
        """No connector took it: temporary when one was down or refused for now, else the
        last partner's permanent refusal."""
        answered = [(n, st) for n, st in refusals if st != -1]
        if not answered:  # none bound
            return Outcome(OutcomeKind.TEMPORARY, error=int(DeliveryError.PARTNER_UNAVAILABLE),
                           reason="no_connector_bound",
                           attribution=_where(refusals[-1][0], operator) if refusals else ())
        name, status = answered[-1]
        temporary = any(st == -1 or st in TEMPORARY_STATUSES for _, st in refusals)
        where = (*_where(name, operator), ("partner_status", status))
        if temporary:
            return Outcome(OutcomeKind.TEMPORARY, error=int(DeliveryError.PARTNER_UNAVAILABLE),
                           reason="partner_refused_for_now", attribution=where)
        return Outcome(OutcomeKind.PERMANENT, error=int(DeliveryError.PARTNER_REFUSED),
                       reason="partner_refused", attribution=where)


def _where(connector: str, operator: str) -> tuple[tuple[str, ExtraValue], ...]:
    return (("connector", connector), ("operator", operator)) if operator else (
        ("connector", connector),)
