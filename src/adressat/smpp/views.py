"""Typed, frozen views of the PDUs an SMPP client builds and reads (STYLE.md 3).

A view is a frozen dataclass whose field names are the schema's names: body fields of
``schema.BODIES`` (in schema order), optional parameters of ``schema.TLVS`` by their spec names
(``None``: absent), header fields where a view needs them (``command_status`` of a response,
``command_id`` of a bind response), and ``other_tlvs`` for every TLV the view has no field
for, kept in wire order. Nothing is written per field by hand: ``from_pdu`` / ``to_pdu`` are
derived from the dataclass fields and the schema, and the class definition is checked against
the schema when the module is imported (a field the schema does not know is an error).

    pdu = SubmitSm(destination_addr="46701234567", short_message=b"hi",
                   registered_delivery=1, adressat_hops=1).to_pdu()
    view = DeliverSm.from_pdu(decoded)     # view.is_receipt, view.receipted_message_id

``to_pdu()`` gives sequence_number 0 unless told: the session assigns the next free one.
Message text (``short_message``, ``message_payload``) and passwords are never in a repr.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple, Self, TypeVar, cast

from .constants import CommandId, CommandStatus, EsmClass, TlvTag
from .pdus import FieldValue, Pdu, TlvValue
from .schema import BODIES, TLV_TAG_BY_NAME, TLVS, Kind, TlvKind, body_field_names

__all__ = [
    "HEADER_FIELDS",
    "OTHER_TLVS",
    "VIEWS",
    "BindResp",
    "DeliverSm",
    "DeliverSmResp",
    "SubmitSm",
    "SubmitSmResp",
    "ViewError",
]

C = CommandId
#: view fields taken from the PDU header rather than its body
HEADER_FIELDS = frozenset({"command_status", "command_id"})
#: the field holding the TLVs a view has no field of its own for
OTHER_TLVS = "other_tlvs"

_COMMAND_ID, _STATUS = "command_id", "command_status"  # header fields, looked up by name

OtherTlvs = tuple[tuple[int, TlvValue], ...]


class ViewError(ValueError):
    """A PDU that is not of the view's command, or a field value of the wrong type (names the
    field, never its value)."""


_BODY_TYPES: Mapping[Kind, type] = {
    Kind.INT8: int, Kind.INT16: int, Kind.INT32: int, Kind.CSTRING: str, Kind.TIME: str,
    Kind.OCTETS: bytes,
}
_TLV_TYPES: Mapping[TlvKind, type] = {
    TlvKind.INT8: int, TlvKind.INT16: int, TlvKind.INT32: int, TlvKind.CSTRING: str,
    TlvKind.OCTETS: bytes,
}


class _Spec(NamedTuple):
    command_ids: frozenset[int]
    body: tuple[tuple[str, type], ...]  # (field, python type) in schema order
    tlvs: tuple[tuple[str, int, type], ...]  # (field, tag, python type)
    tlv_by_tag: Mapping[int, tuple[str, type]]
    header: frozenset[str]
    body_names: tuple[str, ...]
    get_body: Callable[[Any], tuple[Any, ...]]
    tlv_tags: tuple[int, ...]
    get_tlvs: Callable[[Any], tuple[Any, ...]]


def _getter(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    """A function giving these attributes as a tuple (also for one name, or none)."""
    if not names:
        return lambda obj: ()
    get = operator.attrgetter(*names)
    if len(names) == 1:
        return lambda obj: (get(obj),)
    return cast(Callable[[Any], tuple[Any, ...]], get)


_STATUS_ENUM: dict[int, int] = {int(s): s for s in CommandStatus}
_CID_ENUM: dict[int, CommandId] = {int(c): c for c in CommandId}


_SPECS: dict[type, _Spec] = {}


class _View:
    """What every view can do; the fields are the subclass's."""

    __slots__ = ()

    @classmethod
    def from_pdu(cls, pdu: Pdu) -> Self:
        """The view of ``pdu``; ViewError if it is another command or a value has the wrong
        type (a decoded PDU always has the schema's types)."""
        spec = _SPECS[cls]
        if pdu.command_id not in spec.command_ids:
            raise ViewError(f"{cls.__name__} does not view command_id 0x{pdu.command_id:08x}")
        kw: dict[str, object] = {}
        fields = pdu.fields
        for name, typ in spec.body:
            if name in fields:
                value = fields[name]
                if type(value) is not typ:
                    raise ViewError(f"{cls.__name__}.{name}: not {typ.__name__}")
                kw[name] = value
        other: list[tuple[int, TlvValue]] = []
        for tag, value in pdu.tlvs:
            known = spec.tlv_by_tag.get(tag)
            if known is None or known[0] in kw:  # not ours, or a repeated tag: kept as is
                other.append((tag, value))
                continue
            if type(value) is not known[1]:
                raise ViewError(f"{cls.__name__}.{known[0]}: not {known[1].__name__}")
            kw[known[0]] = value
        if other:
            kw[OTHER_TLVS] = tuple(other)
        if "command_status" in spec.header:
            kw["command_status"] = int(pdu.command_status)
        if "command_id" in spec.header:
            kw["command_id"] = CommandId(pdu.command_id)
        return cls(**kw)

    def to_pdu(self, sequence_number: int = 0) -> Pdu:
        """The Pdu to send (sequence_number 0: the session assigns one). A response with a
        non-zero status and every body field at its default has no body (SMPP 3.4 4.4.2)."""
        spec = _SPECS[type(self)]
        cid = getattr(self, _COMMAND_ID) if _COMMAND_ID in spec.header else (
            _CID_ENUM[next(iter(spec.command_ids))])
        status = int(getattr(self, _STATUS)) if _STATUS in spec.header else 0
        fields: dict[str, FieldValue] = dict(zip(spec.body_names, spec.get_body(self),
                                                 strict=True))
        tlvs: list[tuple[int, TlvValue]] = [
            (tag, value) for tag, value in zip(spec.tlv_tags, spec.get_tlvs(self), strict=True)
            if value is not None
        ]
        tlvs.extend(getattr(self, OTHER_TLVS))
        if status and not tlvs and all(not v for v in fields.values()):
            return Pdu.make(cid, sequence_number, status)
        # every body field is here, in schema order, with the schema's type (checked when
        # the class was registered): what Pdu.make would build, without its checks
        return Pdu(cid, sequence_number, _STATUS_ENUM.get(status, status), fields, tuple(tlvs))


V = TypeVar("V", bound=_View)


def _view(*command_ids: CommandId) -> Callable[[type[V]], type[V]]:
    """Check a view class against the schema and derive its conversion spec."""

    def register(cls: type[V]) -> type[V]:
        schema_body = body_field_names(command_ids[0])
        for cid in command_ids[1:]:
            if body_field_names(cid) != schema_body:  # pragma: no cover - schema error
                raise TypeError(f"{cls.__name__}: commands with different bodies")
        kinds = {f.name: f.kind for f in BODIES[command_ids[0]]}
        body: list[tuple[str, type]] = []
        tlvs: list[tuple[str, int, type]] = []
        header: set[str] = set()
        for f in dataclasses.fields(cast(Any, cls)):
            if f.name in schema_body:
                body.append((f.name, _BODY_TYPES[kinds[f.name]]))
            elif f.name in HEADER_FIELDS:
                header.add(f.name)
            elif f.name == OTHER_TLVS:
                continue
            elif f.name in TLV_TAG_BY_NAME:
                tag = TLV_TAG_BY_NAME[f.name]
                tlvs.append((f.name, int(tag), _TLV_TYPES[TLVS[tag].kind]))
            else:
                raise TypeError(f"{cls.__name__}.{f.name} is neither a body field nor a TLV")
        if tuple(n for n, _ in body) != schema_body:
            raise TypeError(f"{cls.__name__}: body fields differ from the schema")
        body_names = tuple(n for n, _ in body)
        _SPECS[cls] = _Spec(
            frozenset(int(c) for c in command_ids), tuple(body), tuple(tlvs),
            {tag: (name, typ) for name, tag, typ in tlvs}, frozenset(header),
            body_names, _getter(body_names), tuple(TlvTag(t) for _, t, _ in tlvs),
            _getter(tuple(n for n, _, _ in tlvs)),
        )
        return cls

    return register


def _content(short_message: bytes, message_payload: bytes | None) -> bytes:
    return message_payload if not short_message and message_payload is not None else (
        short_message)


@_view(C.SUBMIT_SM)
@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitSm(_View):
    """submit_sm (SMPP 3.4 4.4.1). Long content goes in ``message_payload`` (then
    ``short_message`` stays empty) or as UDH parts with ``sar_*`` or a UDH in the text."""

    COMMAND_ID: ClassVar[CommandId] = C.SUBMIT_SM

    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 1
    dest_addr_npi: int = 1
    destination_addr: str = ""
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = field(default=b"", repr=False)
    # optional parameters
    user_message_reference: int | None = None
    sar_msg_ref_num: int | None = None
    sar_total_segments: int | None = None
    sar_segment_seqnum: int | None = None
    message_payload: bytes | None = field(default=None, repr=False)
    adressat_hops: int | None = None
    other_tlvs: OtherTlvs = ()

    @property
    def content(self) -> bytes:
        """The user data: ``message_payload`` when ``short_message`` is empty."""
        return _content(self.short_message, self.message_payload)


@_view(C.SUBMIT_SM_RESP)
@dataclass(frozen=True, slots=True, kw_only=True)
class SubmitSmResp(_View):
    COMMAND_ID: ClassVar[CommandId] = C.SUBMIT_SM_RESP

    command_status: int = 0
    message_id: str = ""
    other_tlvs: OtherTlvs = ()

    @property
    def ok(self) -> bool:
        return self.command_status == CommandStatus.ESME_ROK


@_view(C.DELIVER_SM)
@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverSm(_View):
    """deliver_sm (SMPP 3.4 4.6.1): a mobile-originated message, or a delivery receipt
    (``is_receipt``) naming the receipted message in ``receipted_message_id`` and/or its text."""

    COMMAND_ID: ClassVar[CommandId] = C.DELIVER_SM

    service_type: str = ""
    source_addr_ton: int = 0
    source_addr_npi: int = 0
    source_addr: str = ""
    dest_addr_ton: int = 0
    dest_addr_npi: int = 0
    destination_addr: str = ""
    esm_class: int = 0
    protocol_id: int = 0
    priority_flag: int = 0
    schedule_delivery_time: str = ""
    validity_period: str = ""
    registered_delivery: int = 0
    replace_if_present_flag: int = 0
    data_coding: int = 0
    sm_default_msg_id: int = 0
    short_message: bytes = field(default=b"", repr=False)
    # optional parameters
    user_message_reference: int | None = None
    receipted_message_id: str | None = None
    message_state: int | None = None
    network_error_code: bytes | None = None
    sar_msg_ref_num: int | None = None
    sar_total_segments: int | None = None
    sar_segment_seqnum: int | None = None
    message_payload: bytes | None = field(default=None, repr=False)
    other_tlvs: OtherTlvs = ()

    @property
    def is_receipt(self) -> bool:
        """esm_class says "SMSC delivery receipt" (message type bits 0x04)."""
        return self.esm_class & EsmClass.TYPE_MASK == EsmClass.TYPE_DELIVERY_RECEIPT

    @property
    def content(self) -> bytes:
        """The user data (a receipt's text): ``message_payload`` when ``short_message`` is
        empty."""
        return _content(self.short_message, self.message_payload)


@_view(C.DELIVER_SM_RESP)
@dataclass(frozen=True, slots=True, kw_only=True)
class DeliverSmResp(_View):
    COMMAND_ID: ClassVar[CommandId] = C.DELIVER_SM_RESP

    command_status: int = 0
    message_id: str = ""
    other_tlvs: OtherTlvs = ()


@_view(C.BIND_TRANSCEIVER_RESP, C.BIND_TRANSMITTER_RESP, C.BIND_RECEIVER_RESP)
@dataclass(frozen=True, slots=True, kw_only=True)
class BindResp(_View):
    """bind_transceiver_resp, bind_transmitter_resp or bind_receiver_resp (``command_id``)."""

    command_id: CommandId = C.BIND_TRANSCEIVER_RESP
    command_status: int = 0
    system_id: str = ""
    sc_interface_version: int | None = None
    other_tlvs: OtherTlvs = ()

    @property
    def ok(self) -> bool:
        return self.command_status == CommandStatus.ESME_ROK


#: every view, for the test that checks them against the schema
VIEWS: tuple[type[_View], ...] = (SubmitSm, SubmitSmResp, DeliverSm, DeliverSmResp, BindResp)

# the tag is used by name elsewhere (hop counting); make sure the registry has it
assert TLV_TAG_BY_NAME["adressat_hops"] == TlvTag.ADRESSAT_HOPS
