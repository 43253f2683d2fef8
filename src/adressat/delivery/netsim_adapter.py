"""Delivery to the built-in simulated network: SRI-for-SM, then MT-ForwardSM per part.

The last moment before the wire is where the SMSC can still catch a mix-up (DESIGN.md,
"Binding tag", I2), so :meth:`NetsimAdapter.deliver`:

1. recomputes the binding tag from exactly the values it is about to send and refuses on a
   mismatch (QUARANTINE, nothing sent);
2. asks the register where the destination is (``lookup``), never caching the answer, and
   cross-checks the answer before anything is sent: the IMSI it names must be the
   destination's current identity (``register.identity``) and that IMSI must belong to the
   destination (``register.msisdn_for_imsi``). Otherwise nothing is sent: ``ROUTING_MISMATCH``
   (TEMPORARY: the message itself is fine; the worker raises the ``routing_mismatch`` alarm,
   which trips the route's breaker): routing info gone stale after a SIM swap, a number
   recycled between the lookup and now, or another subscriber's IMSI are PREVENTED;
3. builds the TP-UD of each part from the content as submitted (GSM 7-bit is carried unpacked
   in SMPP and packed for the air, after the UDH with fill bits), segmenting with a
   concatenation UDH when it does not fit one SMS;
4. forwards each part by IMSI and checks every acknowledgement: the acknowledging MSISDN must be
   the destination, its IMSI the destination's CURRENT identity in the register AND the IMSI
   the SMSC addressed (a number recycled while the message was on its way: the register
   already shows the new holder, only the addressed IMSI tells; detected, not preventable),
   the same for every part, no second handset, and an IMSI must never answer for two numbers.

``guards=False`` (benchmarks only: ``adressat run --integrity-guards off``) skips the binding
tag, the routing cross-check and the acknowledgement checks, to measure what they cost.

Every part carries the message's TP-SCTS (given by the store at its first claim, distinct for
every message to one destination, kept by its resends; TS 23.040 §6.2, encoded as in
§9.2.3.11) and the parts of a long message a concatenation element whose reference is derived
from the message id, so a retry after a crash sends identical SMS-DELIVERs and the handset,
which knows them by (TP-OA, TP-SCTS, part number), discards them as duplicates. A message first
attempted before schema v9 has no stamp: its parts are sent as its first attempt identified
them then (``legacy_reference``). Message text is never logged.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Iterable

from adressat.core.model import Message
from adressat.core.tag import verify_tag
from adressat.delivery.adapter import Addressed, Outcome, OutcomeKind
from adressat.delivery.errors import DeliveryError
from adressat.netsim import (
    Absent,
    AbsentReason,
    Ack,
    Failure,
    FailureReason,
    NetSms,
    Network,
    RegisterError,
    Unknown,
)
from adressat.netsim.faults import ROUTE as NETSIM_ROUTE
from adressat.netsim.forward import TP_UD_BYTES_MAX
from adressat.smpp.constants import EsmClass
from adressat.sms import (
    Alphabet,
    Concat,
    EncodingError,
    SctsError,
    SegmentationError,
    UdhError,
    codec_for_data_coding,
    encode_scts,
    fill_bits_for_udh,
    pack_septets,
    parse_udh,
    segment_payload,
)
from adressat.sms.timestamp import TZ_QUARTERS_MAX

__all__ = ["NetsimAdapter", "ContentError", "build_parts", "legacy_reference", "ESM_UDHI"]

log = logging.getLogger(__name__)

ESM_UDHI = EsmClass.GSM_UDHI
GSM7_SEPTETS_MAX = 160

_FAILURE_ERRORS: dict[FailureReason, DeliveryError] = {
    FailureReason.ABSENT_SUBSCRIBER: DeliveryError.ABSENT_SUBSCRIBER,
    FailureReason.MEMORY_CAPACITY_EXCEEDED: DeliveryError.MEMORY_CAPACITY_EXCEEDED,
    FailureReason.UNKNOWN_SUBSCRIBER: DeliveryError.UNKNOWN_SUBSCRIBER,
    FailureReason.UNIDENTIFIED_SUBSCRIBER: DeliveryError.UNIDENTIFIED_SUBSCRIBER,
    FailureReason.SYSTEM_FAILURE: DeliveryError.SYSTEM_FAILURE,
    FailureReason.TIMEOUT: DeliveryError.TIMEOUT,
}


class ContentError(ValueError):
    """The content cannot be carried on the air interface (never carries the text)."""


def _id_hash(message_id: str, label: bytes) -> int:
    return hashlib.blake2b(label + message_id.encode(), digest_size=2).digest()[0]


def legacy_reference(msg: Message, part_index: int) -> int | None:
    """None for a message with a TP-SCTS (everything claimed since schema v9). A message first
    attempted before v9 has none: netsim's handsets knew its parts then by a TP-MR (which
    SMS-DELIVER does not have), the stored reference plus the part index (schema v4..v8) or,
    first attempted before v4, 8 bits of a hash of the id plus the index; its resends carry
    the same one, so that what a handset stored before the upgrade is still recognised."""
    if msg.scts is not None:
        return None
    base = msg.reference
    if base is None:
        base = _id_hash(msg.id, b"tp-mr\x00")
    return (base + part_index) & 0xFF


def concat_reference(message_id: str) -> int:
    """The 8-bit concatenation reference of a long message, derived from its id."""
    return _id_hash(message_id, b"concat\x00")


def _pack_gsm7(udh: bytes, septets: bytes) -> bytes:
    try:
        return udh + pack_septets(septets, fill_bits_for_udh(len(udh)) if udh else 0)
    except EncodingError as e:
        raise ContentError("content is not GSM 7-bit septets") from e


def build_parts(message_id: str, content: bytes, data_coding: int, esm_class: int) -> list[bytes]:
    """The TP-UD of each SMS to send for this content (one element for a short message).

    GSM 7-bit (per ``codec_for_data_coding``) is packed; with UDHI the UDH the sender supplied
    is kept and the text after it packed with fill bits (such a message is already a part and
    must fit one SMS). Content over one SMS is split with an 8-bit concatenation UDH. An
    unsupported data coding is carried as opaque octets if it fits one SMS.
    Raises :class:`ContentError`.
    """
    try:
        alphabet: Alphabet | None = codec_for_data_coding(data_coding).alphabet
    except ValueError:  # UnsupportedDataCoding is an EncodingError (a ValueError)
        alphabet = None
    udhi = bool(esm_class & ESM_UDHI)
    if udhi:
        try:
            _, rest = parse_udh(content)
        except UdhError as e:
            raise ContentError("malformed user data header") from e
        udh = content[: len(content) - len(rest)]
        ud = _pack_gsm7(udh, rest) if alphabet is Alphabet.GSM7 else content
        if len(ud) > TP_UD_BYTES_MAX:
            raise ContentError("content with its own UDH exceeds one SMS")
        return [ud]
    if alphabet is Alphabet.GSM7:
        if len(content) <= GSM7_SEPTETS_MAX:
            return [_pack_gsm7(b"", content)]
    elif len(content) <= TP_UD_BYTES_MAX:
        return [content]
    if alphabet is None:
        raise ContentError("long content in an unsupported data coding")
    try:
        segments = segment_payload(
            content, alphabet, concat=Concat.UDH8, reference=concat_reference(message_id)
        )
    except (SegmentationError, EncodingError) as e:
        raise ContentError("content cannot be segmented") from e
    if alphabet is Alphabet.GSM7:
        return [_pack_gsm7(s.udh, s.payload) for s in segments]
    return [s.udh + s.payload for s in segments]


class NetsimAdapter:
    """The ``netsim`` route kind. ``tag_key`` is the binding-tag key used at ingress."""

    def __init__(
        self,
        network: Network,
        tag_key: bytes,
        *,
        default_originator: str = "adressat",
        acks_remembered_max: int = 100_000,
        guards: bool = True,
        scts_tz_quarters: int = 0,
    ) -> None:
        """``scts_tz_quarters``: the SC's time zone, in quarters of an hour from GMT, that the
        TP-SCTS is written in (TS 23.040 §9.2.3.11); 0 writes GMT."""
        if not tag_key:
            raise ValueError("tag_key must not be empty")
        if not -TZ_QUARTERS_MAX <= scts_tz_quarters <= TZ_QUARTERS_MAX:
            raise ValueError(f"scts_tz_quarters must be within +-{TZ_QUARTERS_MAX}")
        self.network = network
        self._tag_key = tag_key
        self.default_originator = default_originator
        self.acks_remembered_max = acks_remembered_max
        self.guards = guards
        self.scts_tz_quarters = scts_tz_quarters
        # IMSI -> (the number it last acknowledged for, that message's id), bounded:
        # one IMSI, two numbers = alarm naming both messages
        self._acked_by: OrderedDict[str, tuple[str, str]] = OrderedDict()

    async def deliver(self, msg: Message, addressed: Addressed | None = None) -> Outcome:
        # the network's faults know which of the SMSC's routes this dialogue is on
        token = NETSIM_ROUTE.set(msg.route)
        try:
            return await self._deliver(msg, addressed)
        finally:
            NETSIM_ROUTE.reset(token)

    async def _deliver(self, msg: Message, addressed: Addressed | None = None) -> Outcome:
        # Exactly these values are checked and then sent; besides them only the TP-SCTS
        # (and, first attempted before schema v9, the TP-MR) is read from ``msg``: it names
        # no recipient.
        message_id = msg.id
        destination = msg.destination
        content = msg.content
        data_coding = msg.data_coding
        esm_class = msg.esm_class
        if self.guards and not verify_tag(
            self._tag_key, msg.tag, message_id, destination, content, data_coding, esm_class
        ):
            log.error(
                "binding tag mismatch",
                extra={"message_id": message_id, "account": msg.account, "route": msg.route,
                       "error": int(DeliveryError.TAG_MISMATCH)},
            )
            return Outcome.failed(OutcomeKind.QUARANTINE, DeliveryError.TAG_MISMATCH)
        try:
            parts = build_parts(message_id, content, data_coding, esm_class)
        except ContentError:
            return Outcome.failed(OutcomeKind.PERMANENT, DeliveryError.INVALID_CONTENT)

        register = self.network.register
        try:
            info = register.lookup(destination)
        except Unknown:
            return Outcome.failed(OutcomeKind.PERMANENT, DeliveryError.UNKNOWN_SUBSCRIBER)
        except Absent as e:
            self._report_waiting(destination, e.reason)
            error = (
                DeliveryError.MEMORY_CAPACITY_EXCEEDED
                if e.reason is AbsentReason.MEMORY_CAPACITY_EXCEEDED
                else DeliveryError.ABSENT_SUBSCRIBER
            )
            return Outcome.failed(OutcomeKind.TEMPORARY, error, msisdn=destination)
        except RegisterError:
            return Outcome.failed(OutcomeKind.TEMPORARY, DeliveryError.SYSTEM_FAILURE)
        if self.guards:
            refused = self._check_routing(message_id, destination, info.imsi, info.node)
            if refused is not None:
                return refused

        if addressed is not None and not await addressed(info.imsi):
            # not durable, or the message is no longer this attempt's: nothing goes out
            return Outcome.failed(OutcomeKind.TEMPORARY, DeliveryError.SYSTEM_FAILURE)
        originator = msg.source_addr or self.default_originator
        digest = hashlib.sha256(content).hexdigest()
        # stamped by the store at the first claim; first attempted before v9: its arrival
        # (the handset knows such a message by its legacy reference)
        scts = msg.scts if msg.scts is not None else int(msg.submitted_at)
        try:
            stamp = encode_scts(scts, self.scts_tz_quarters)
        except SctsError:  # a clock outside 1970..2069: nothing can be sent
            log.error("TP-SCTS out of range", extra={"message_id": message_id})
            return Outcome.failed(OutcomeKind.TEMPORARY, DeliveryError.SYSTEM_FAILURE)
        udhi = len(parts) > 1 or bool(esm_class & ESM_UDHI)
        acked: Ack | None = None
        for index, ud in enumerate(parts):
            sms = NetSms(
                originator,
                stamp,
                data_coding,
                ud,
                message_id,
                digest,
                udhi,
                index,
                legacy_reference(msg, index),
            )
            result = await self.network.forward_sm(info.imsi, info.node, sms)
            if isinstance(result, Failure):
                error = _FAILURE_ERRORS.get(result.reason, DeliveryError.SYSTEM_FAILURE)
                kind = OutcomeKind.PERMANENT if result.permanent else OutcomeKind.TEMPORARY
                return Outcome.failed(
                    kind, error, imsi=info.imsi, msisdn=destination, node=info.node
                )
            if not self.guards:
                acked = result
                continue
            integrity, related = self._check_ack(
                result, destination, info.imsi, acked, message_id
            )
            if integrity is not None:
                log.error(
                    "acknowledging identity rejected",
                    extra={
                        "message_id": message_id,
                        "part": index,
                        "error": int(integrity),
                        "serving_node": info.node, "account": msg.account, "route": msg.route,
                    },
                )
                return Outcome.failed(
                    OutcomeKind.QUARANTINE,
                    integrity,
                    imsi=result.imsi,
                    msisdn=result.msisdn,
                    node=info.node,
                    related=related,
                    addressed_imsi=info.imsi,
                )
            acked = result
        assert acked is not None  # build_parts never returns no parts
        return Outcome.delivered(acked.imsi, acked.msisdn, info.node)

    def _check_routing(
        self, message_id: str, destination: str, imsi: str, node: str
    ) -> Outcome | None:
        """Before sending: the lookup answer must name the destination's current identity,
        and that IMSI must belong to the destination. None: send; else the refusal."""
        register = self.network.register
        try:
            current: str | None = register.identity(destination)
            owner = register.msisdn_for_imsi(imsi)
        except RegisterError:
            current, owner = None, None
        if imsi == current and owner == destination:
            return None
        log.error(
            "routing answer rejected before sending",
            extra={
                "message_id": message_id,
                "error": int(DeliveryError.ROUTING_MISMATCH),
                "serving_node": node,
            },
        )
        return Outcome.failed(
            OutcomeKind.TEMPORARY,
            DeliveryError.ROUTING_MISMATCH,
            imsi=imsi,
            msisdn=owner,
            node=node,
            reason="routing_mismatch",
            addressed_imsi=imsi,
        )

    def _check_ack(
        self,
        ack: Ack,
        destination: str,
        addressed: str,
        previous: Ack | None,
        message_id: str,
    ) -> tuple[DeliveryError | None, tuple[str, ...]]:
        """I2: the identity that stored the part must be the destination's current one, the
        one the SMSC addressed, and only that one. Returns (error or None, other message ids
        involved)."""
        try:
            current = self.network.register.identity(destination)
        except RegisterError:
            current = None
        if ack.msisdn != destination or ack.imsi != current or ack.imsi != addressed:
            return DeliveryError.IDENTITY_MISMATCH, ()
        if getattr(ack, "also", ()):  # the node stored it at a second handset too
            return DeliveryError.IDENTITY_MISMATCH, ()
        if previous is not None and previous != ack:
            return DeliveryError.PARTS_IDENTITY_MISMATCH, ()
        known = self._acked_by.get(ack.imsi)
        if known is not None and known[0] != ack.msisdn:
            # One IMSI answered for two numbers: this message is quarantined; the earlier one
            # (already final) is named so the alarm and the incident report show both.
            return DeliveryError.IMSI_CONFLICT, (known[1],)
        self._remember_ack(ack.imsi, ack.msisdn, message_id)
        return None, ()

    def _remember_ack(self, imsi: str, msisdn: str, message_id: str) -> None:
        acked_by = self._acked_by
        acked_by[imsi] = (msisdn, message_id)
        acked_by.move_to_end(imsi)
        while len(acked_by) > self.acks_remembered_max:
            acked_by.popitem(last=False)

    def answered_for(self, imsi: str) -> tuple[str, str] | None:
        """(number, message id) the IMSI last acknowledged for, as the guard remembers it."""
        return self._acked_by.get(imsi)

    def remember_deliveries(self, deliveries: Iterable[tuple[str, str, str]]) -> int:
        """Take (message id, IMSI, MSISDN) of earlier deliveries, oldest first (the store's
        ``recent_deliveries``), into the memory of which IMSI answered for which number, so
        that one IMSI answering for two numbers is seen across a restart too. Returns how
        many were taken."""
        n = 0
        for message_id, imsi, msisdn in deliveries:
            self._remember_ack(imsi, msisdn, message_id)
            n += 1
        return n

    def _report_waiting(self, destination: str, reason: AbsentReason) -> None:
        """ReportSM-DeliveryStatus: ask the register to alert us when the subscriber is back."""
        try:
            self.network.register.set_message_waiting(destination, reason)
        except RegisterError:
            pass
