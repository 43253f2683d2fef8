"""The SMPP 3.4 PDU schema as data: body fields per command_id and the TLV registry.

Everything else (codec, defaults, test strategies, typed views) is derived from these tables.
Field sizes: integers give their width in octets; C-octet strings their maximum length
*including* the terminating NUL (SMPP 3.4 section 4); times are 0 or 17 octets incl. NUL.
Length and count fields (sm_length, number_of_dests, no_unsuccess) are on the wire only: they are
derived from the field they describe and never appear in a Pdu's ``fields``.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from typing import NamedTuple

from .constants import CommandId, CommandStatus, TlvTag

S = CommandStatus


class Kind(Enum):
    INT8 = "int8"
    INT16 = "int16"
    INT32 = "int32"
    CSTRING = "cstring"  # C-octet string, size = max length incl. NUL
    TIME = "time"  # fixed C-octet string: empty or 16 chars + NUL (size 17)
    LENGTH8 = "length8"  # 1-octet length of the next OCTETS field (wire only)
    OCTETS = "octets"  # octet string, length from the preceding LENGTH8, size = max
    COUNT8 = "count8"  # 1-octet item count of the next LIST field (wire only)
    LIST = "list"  # repeated composite; items are dicts


INT_KINDS = frozenset({Kind.INT8, Kind.INT16, Kind.INT32, Kind.LENGTH8, Kind.COUNT8})
WIRE_ONLY_KINDS = frozenset({Kind.LENGTH8, Kind.COUNT8})
INT_WIDTH = {Kind.INT8: 1, Kind.INT16: 2, Kind.INT32: 4, Kind.LENGTH8: 1, Kind.COUNT8: 1}


class Field(NamedTuple):
    name: str
    kind: Kind
    size: int
    status: CommandStatus = S.ESME_RINVPARLEN  # answered when this field is invalid
    # LIST only: the fields every item starts with; if ``variants`` is set, the first of them
    # is a tag selecting which further fields follow (submit_multi dest_flag).
    layout: tuple[Field, ...] = ()
    variants: Mapping[int, tuple[Field, ...]] | None = None
    variant_status: CommandStatus = S.ESME_RINVPARLEN  # unknown tag value


def _i8(name: str, status: CommandStatus = S.ESME_RINVPARLEN) -> Field:
    return Field(name, Kind.INT8, 1, status)


def _c(name: str, size: int, status: CommandStatus = S.ESME_RINVPARLEN) -> Field:
    return Field(name, Kind.CSTRING, size, status)


def _t(name: str, status: CommandStatus = S.ESME_RINVPARLEN) -> Field:
    return Field(name, Kind.TIME, 17, status)


SM_LENGTH = Field("sm_length", Kind.LENGTH8, 1, S.ESME_RINVMSGLEN)
SHORT_MESSAGE = Field("short_message", Kind.OCTETS, 254, S.ESME_RINVMSGLEN)

_BIND = (
    _c("system_id", 16, S.ESME_RINVSYSID),
    _c("password", 9, S.ESME_RINVPASWD),
    _c("system_type", 13, S.ESME_RINVSYSTYP),
    _i8("interface_version"),
    _i8("addr_ton"),
    _i8("addr_npi"),
    _c("address_range", 41),
)
_BIND_RESP = (_c("system_id", 16, S.ESME_RINVSYSID),)
_MESSAGE_ID_RESP = (_c("message_id", 65, S.ESME_RINVMSGID),)

_SM = (
    _c("service_type", 6, S.ESME_RINVSERTYP),
    _i8("source_addr_ton", S.ESME_RINVSRCTON),
    _i8("source_addr_npi", S.ESME_RINVSRCNPI),
    _c("source_addr", 21, S.ESME_RINVSRCADR),
    _i8("dest_addr_ton", S.ESME_RINVDSTTON),
    _i8("dest_addr_npi", S.ESME_RINVDSTNPI),
    _c("destination_addr", 21, S.ESME_RINVDSTADR),
    _i8("esm_class", S.ESME_RINVESMCLASS),
    _i8("protocol_id"),
    _i8("priority_flag", S.ESME_RINVPRTFLG),
    _t("schedule_delivery_time", S.ESME_RINVSCHED),
    _t("validity_period", S.ESME_RINVEXPIRY),
    _i8("registered_delivery", S.ESME_RINVREGDLVFLG),
    _i8("replace_if_present_flag", S.ESME_RINVREPFLAG),
    _i8("data_coding"),
    _i8("sm_default_msg_id", S.ESME_RINVDFTMSGID),
    SM_LENGTH,
    SHORT_MESSAGE,
)

DEST_ADDRESS_VARIANTS: Mapping[int, tuple[Field, ...]] = {
    1: (
        _i8("dest_addr_ton", S.ESME_RINVDSTTON),
        _i8("dest_addr_npi", S.ESME_RINVDSTNPI),
        _c("destination_addr", 21, S.ESME_RINVDSTADR),
    ),
    2: (_c("dl_name", 21, S.ESME_RINVDLNAME),),
}

_SUBMIT_MULTI = (
    _SM[0],
    _SM[1],
    _SM[2],
    _SM[3],
    Field("number_of_dests", Kind.COUNT8, 1, S.ESME_RINVNUMDESTS),
    Field(
        "dest_addresses",
        Kind.LIST,
        255,
        S.ESME_RINVNUMDESTS,
        layout=(_i8("dest_flag", S.ESME_RINVDESTFLAG),),
        variants=DEST_ADDRESS_VARIANTS,
        variant_status=S.ESME_RINVDESTFLAG,
    ),
    *_SM[7:],
)

_SUBMIT_MULTI_RESP = (
    _c("message_id", 65, S.ESME_RINVMSGID),
    Field("no_unsuccess", Kind.COUNT8, 1),
    Field(
        "unsuccess_smes",
        Kind.LIST,
        255,
        layout=(
            _i8("dest_addr_ton", S.ESME_RINVDSTTON),
            _i8("dest_addr_npi", S.ESME_RINVDSTNPI),
            _c("destination_addr", 21, S.ESME_RINVDSTADR),
            Field("error_status_code", Kind.INT32, 4),
        ),
    ),
)

_DATA_SM = (
    _c("service_type", 6, S.ESME_RINVSERTYP),
    _i8("source_addr_ton", S.ESME_RINVSRCTON),
    _i8("source_addr_npi", S.ESME_RINVSRCNPI),
    _c("source_addr", 65, S.ESME_RINVSRCADR),
    _i8("dest_addr_ton", S.ESME_RINVDSTTON),
    _i8("dest_addr_npi", S.ESME_RINVDSTNPI),
    _c("destination_addr", 65, S.ESME_RINVDSTADR),
    _i8("esm_class", S.ESME_RINVESMCLASS),
    _i8("registered_delivery", S.ESME_RINVREGDLVFLG),
    _i8("data_coding"),
)

_QUERY_SM = (
    _c("message_id", 65, S.ESME_RINVMSGID),
    _i8("source_addr_ton", S.ESME_RINVSRCTON),
    _i8("source_addr_npi", S.ESME_RINVSRCNPI),
    _c("source_addr", 21, S.ESME_RINVSRCADR),
)
_QUERY_SM_RESP = (
    _c("message_id", 65, S.ESME_RINVMSGID),
    _t("final_date"),
    _i8("message_state"),
    _i8("error_code"),
)
_CANCEL_SM = (
    _c("service_type", 6, S.ESME_RINVSERTYP),
    _c("message_id", 65, S.ESME_RINVMSGID),
    _i8("source_addr_ton", S.ESME_RINVSRCTON),
    _i8("source_addr_npi", S.ESME_RINVSRCNPI),
    _c("source_addr", 21, S.ESME_RINVSRCADR),
    _i8("dest_addr_ton", S.ESME_RINVDSTTON),
    _i8("dest_addr_npi", S.ESME_RINVDSTNPI),
    _c("destination_addr", 21, S.ESME_RINVDSTADR),
)
_REPLACE_SM = (
    _c("message_id", 65, S.ESME_RINVMSGID),
    _i8("source_addr_ton", S.ESME_RINVSRCTON),
    _i8("source_addr_npi", S.ESME_RINVSRCNPI),
    _c("source_addr", 21, S.ESME_RINVSRCADR),
    _t("schedule_delivery_time", S.ESME_RINVSCHED),
    _t("validity_period", S.ESME_RINVEXPIRY),
    _i8("registered_delivery", S.ESME_RINVREGDLVFLG),
    _i8("sm_default_msg_id", S.ESME_RINVDFTMSGID),
    SM_LENGTH,
    SHORT_MESSAGE,
)
_ALERT_NOTIFICATION = (
    _i8("source_addr_ton", S.ESME_RINVSRCTON),
    _i8("source_addr_npi", S.ESME_RINVSRCNPI),
    _c("source_addr", 65, S.ESME_RINVSRCADR),
    _i8("esme_addr_ton"),
    _i8("esme_addr_npi"),
    _c("esme_addr", 65),
)

C = CommandId
BODIES: Mapping[CommandId, tuple[Field, ...]] = {
    C.GENERIC_NACK: (),
    C.BIND_RECEIVER: _BIND,
    C.BIND_RECEIVER_RESP: _BIND_RESP,
    C.BIND_TRANSMITTER: _BIND,
    C.BIND_TRANSMITTER_RESP: _BIND_RESP,
    C.BIND_TRANSCEIVER: _BIND,
    C.BIND_TRANSCEIVER_RESP: _BIND_RESP,
    C.OUTBIND: (_BIND[0], _BIND[1]),
    C.UNBIND: (),
    C.UNBIND_RESP: (),
    C.SUBMIT_SM: _SM,
    C.SUBMIT_SM_RESP: _MESSAGE_ID_RESP,
    C.SUBMIT_MULTI: _SUBMIT_MULTI,
    C.SUBMIT_MULTI_RESP: _SUBMIT_MULTI_RESP,
    C.DELIVER_SM: _SM,
    C.DELIVER_SM_RESP: _MESSAGE_ID_RESP,
    C.DATA_SM: _DATA_SM,
    C.DATA_SM_RESP: _MESSAGE_ID_RESP,
    C.QUERY_SM: _QUERY_SM,
    C.QUERY_SM_RESP: _QUERY_SM_RESP,
    C.CANCEL_SM: _CANCEL_SM,
    C.CANCEL_SM_RESP: (),
    C.REPLACE_SM: _REPLACE_SM,
    C.REPLACE_SM_RESP: (),
    C.ENQUIRE_LINK: (),
    C.ENQUIRE_LINK_RESP: (),
    C.ALERT_NOTIFICATION: _ALERT_NOTIFICATION,
}

# Requests that are never answered (outbind, alert_notification) have no entry here.
RESPONSE_OF: Mapping[CommandId, CommandId] = {
    cid: CommandId(cid | 0x80000000)
    for cid in BODIES
    if not cid & 0x80000000 and (cid | 0x80000000) in BODIES.keys()
}


# PDUs that carry optional parameters in SMPP 3.4 (sections 4.1-4.12). Decoding is lenient
# and keeps TLVs found on other PDUs too (byte-exact round trip), but we never send those.
TLV_COMMANDS: frozenset[CommandId] = frozenset(
    {
        C.BIND_RECEIVER_RESP,
        C.BIND_TRANSMITTER_RESP,
        C.BIND_TRANSCEIVER_RESP,
        C.SUBMIT_SM,
        C.SUBMIT_MULTI,
        C.DELIVER_SM,
        C.DATA_SM,
        C.DATA_SM_RESP,
        C.ALERT_NOTIFICATION,
    }
)


class TlvKind(Enum):
    INT8 = "int8"
    INT16 = "int16"
    INT32 = "int32"
    CSTRING = "cstring"  # value is str; length includes the NUL
    OCTETS = "octets"  # value is bytes


class TlvSpec(NamedTuple):
    name: str
    kind: TlvKind
    length_min: int  # octets on the wire (for CSTRING including the NUL)
    length_max: int


def _ti(name: str, width: int) -> TlvSpec:
    kind = {1: TlvKind.INT8, 2: TlvKind.INT16, 4: TlvKind.INT32}[width]
    return TlvSpec(name, kind, width, width)


T = TlvTag
TLVS: Mapping[TlvTag, TlvSpec] = {
    T.DEST_ADDR_SUBUNIT: _ti("dest_addr_subunit", 1),
    T.DEST_NETWORK_TYPE: _ti("dest_network_type", 1),
    T.DEST_BEARER_TYPE: _ti("dest_bearer_type", 1),
    T.DEST_TELEMATICS_ID: _ti("dest_telematics_id", 2),
    T.SOURCE_ADDR_SUBUNIT: _ti("source_addr_subunit", 1),
    T.SOURCE_NETWORK_TYPE: _ti("source_network_type", 1),
    T.SOURCE_BEARER_TYPE: _ti("source_bearer_type", 1),
    T.SOURCE_TELEMATICS_ID: _ti("source_telematics_id", 1),
    T.QOS_TIME_TO_LIVE: _ti("qos_time_to_live", 4),
    T.PAYLOAD_TYPE: _ti("payload_type", 1),
    T.ADDITIONAL_STATUS_INFO_TEXT: TlvSpec("additional_status_info_text", TlvKind.CSTRING, 1, 256),
    T.RECEIPTED_MESSAGE_ID: TlvSpec("receipted_message_id", TlvKind.CSTRING, 1, 65),
    T.MS_MSG_WAIT_FACILITIES: _ti("ms_msg_wait_facilities", 1),
    T.PRIVACY_INDICATOR: _ti("privacy_indicator", 1),
    T.SOURCE_SUBADDRESS: TlvSpec("source_subaddress", TlvKind.OCTETS, 2, 23),
    T.DEST_SUBADDRESS: TlvSpec("dest_subaddress", TlvKind.OCTETS, 2, 23),
    T.USER_MESSAGE_REFERENCE: _ti("user_message_reference", 2),
    T.USER_RESPONSE_CODE: _ti("user_response_code", 1),
    T.SOURCE_PORT: _ti("source_port", 2),
    T.DESTINATION_PORT: _ti("destination_port", 2),
    T.SAR_MSG_REF_NUM: _ti("sar_msg_ref_num", 2),
    T.LANGUAGE_INDICATOR: _ti("language_indicator", 1),
    T.SAR_TOTAL_SEGMENTS: _ti("sar_total_segments", 1),
    T.SAR_SEGMENT_SEQNUM: _ti("sar_segment_seqnum", 1),
    T.SC_INTERFACE_VERSION: _ti("sc_interface_version", 1),
    T.CALLBACK_NUM_PRES_IND: _ti("callback_num_pres_ind", 1),
    T.CALLBACK_NUM_ATAG: TlvSpec("callback_num_atag", TlvKind.OCTETS, 0, 65),
    T.NUMBER_OF_MESSAGES: _ti("number_of_messages", 1),
    T.CALLBACK_NUM: TlvSpec("callback_num", TlvKind.OCTETS, 4, 19),
    T.DPF_RESULT: _ti("dpf_result", 1),
    T.SET_DPF: _ti("set_dpf", 1),
    T.MS_AVAILABILITY_STATUS: _ti("ms_availability_status", 1),
    T.NETWORK_ERROR_CODE: TlvSpec("network_error_code", TlvKind.OCTETS, 3, 3),
    T.MESSAGE_PAYLOAD: TlvSpec("message_payload", TlvKind.OCTETS, 0, 65535),
    T.DELIVERY_FAILURE_REASON: _ti("delivery_failure_reason", 1),
    T.MORE_MESSAGES_TO_SEND: _ti("more_messages_to_send", 1),
    T.MESSAGE_STATE: _ti("message_state", 1),
    T.USSD_SERVICE_OP: _ti("ussd_service_op", 1),
    T.DISPLAY_TIME: _ti("display_time", 1),
    T.SMS_SIGNAL: _ti("sms_signal", 2),
    T.MS_VALIDITY: _ti("ms_validity", 1),
    T.ALERT_ON_MESSAGE_DELIVERY: TlvSpec("alert_on_message_delivery", TlvKind.OCTETS, 0, 0),
    T.ITS_REPLY_TYPE: _ti("its_reply_type", 1),
    T.ITS_SESSION_INFO: TlvSpec("its_session_info", TlvKind.OCTETS, 2, 2),
    T.ADRESSAT_HOPS: _ti("adressat_hops", 1),  # vendor-specific (see TlvTag.ADRESSAT_HOPS)
}

TLV_TAG_BY_NAME: Mapping[str, TlvTag] = {spec.name: tag for tag, spec in TLVS.items()}


def body_field_names(command_id: CommandId) -> tuple[str, ...]:
    """The names a Pdu's ``fields`` holds for this command (wire-only counts excluded)."""
    return tuple(f.name for f in BODIES[command_id] if f.kind not in WIRE_ONLY_KINDS)


def default_value(field: Field) -> object:
    if field.kind in (Kind.CSTRING, Kind.TIME):
        return ""
    if field.kind is Kind.OCTETS:
        return b""
    if field.kind is Kind.LIST:
        return ()
    return 0
