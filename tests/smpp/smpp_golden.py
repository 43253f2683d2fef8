"""Golden (Pdu, bytes) table for the SMPP codec.

The SMPP 3.4 specification gives field listings, not hex dumps (its section 3.2 example lists
the bind_transmitter fields "SMPP3TEST" / "secret08" / "SUBMIT1" with command_length 0x2F,
reproduced below). Every other frame here was written BY HAND from the spec's field layout
(sections 4.1-4.12, 5.3): header as literal hex, strings as literal octets. None of these bytes
comes from our encoder.
"""

from __future__ import annotations

from adressat.smpp.constants import CommandId as C
from adressat.smpp.constants import CommandStatus as S
from adressat.smpp.constants import TlvTag as T
from adressat.smpp.pdus import Pdu


def h(text: str) -> bytes:
    return bytes.fromhex(text)


GOLDEN: list[tuple[str, Pdu, bytes]] = [
    (
        "enquire_link",
        Pdu.make(C.ENQUIRE_LINK, 1),
        h("00000010 00000015 00000000 00000001"),
    ),
    (
        "enquire_link_resp",
        Pdu.make(C.ENQUIRE_LINK_RESP, 1),
        h("00000010 80000015 00000000 00000001"),
    ),
    (
        "unbind",
        Pdu.make(C.UNBIND, 9),
        h("00000010 00000006 00000000 00000009"),
    ),
    (
        "generic_nack_invcmdid",
        Pdu.make(C.GENERIC_NACK, 7, S.ESME_RINVCMDID),
        h("00000010 80000000 00000003 00000007"),
    ),
    (
        "submit_sm_resp_error_without_body",
        Pdu.make(C.SUBMIT_SM_RESP, 2, S.ESME_RTHROTTLED),
        h("00000010 80000004 00000058 00000002"),
    ),
    (
        "submit_sm_resp_ok",
        Pdu.make(C.SUBMIT_SM_RESP, 2, message_id="abc123"),
        h("00000017 80000004 00000000 00000002") + b"abc123\0",
    ),
    (
        "bind_transmitter_spec_example",
        Pdu.make(
            C.BIND_TRANSMITTER,
            1,
            system_id="SMPP3TEST",
            password="secret08",
            system_type="SUBMIT1",
            interface_version=0x34,
            addr_ton=1,
            addr_npi=1,
            address_range="",
        ),
        h("0000002F 00000002 00000000 00000001")
        + b"SMPP3TEST\0secret08\0SUBMIT1\0"
        + h("34 01 01 00"),
    ),
    (
        "bind_transceiver_resp_with_sc_interface_version",
        Pdu.make(
            C.BIND_TRANSCEIVER_RESP, 1, system_id="SMSC", tlvs=[(T.SC_INTERFACE_VERSION, 0x34)]
        ),
        h("0000001A 80000009 00000000 00000001") + b"SMSC\0" + h("0210 0001 34"),
    ),
    (
        "outbind",
        Pdu.make(C.OUTBIND, 3, system_id="SMSC", password="pw"),
        h("00000018 0000000B 00000000 00000003") + b"SMSC\0pw\0",
    ),
    (
        "submit_sm_with_user_message_reference",
        Pdu.make(
            C.SUBMIT_SM,
            0x0102,
            source_addr_ton=5,
            source_addr="Adressat",
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr="46701234567",
            registered_delivery=1,
            short_message=b"hello",
            tlvs=[(T.USER_MESSAGE_REFERENCE, 42)],
        ),
        h("0000003F 00000004 00000000 00000102")
        + h("00")  # service_type ""
        + h("05 00")
        + b"Adressat\0"
        + h("01 01")
        + b"46701234567\0"
        + h("00 00 00")  # esm_class, protocol_id, priority_flag
        + h("00 00")  # schedule_delivery_time "", validity_period ""
        + h("01 00 00 00")  # registered_delivery, replace_if_present, data_coding, default id
        + h("05")
        + b"hello"
        + h("0204 0002 002A"),
    ),
    (
        "deliver_sm_receipt",
        Pdu.make(
            C.DELIVER_SM,
            77,
            source_addr_ton=1,
            source_addr_npi=1,
            source_addr="46701234567",
            destination_addr="12345",
            esm_class=0x04,
            tlvs=[(T.RECEIPTED_MESSAGE_ID, "ab1"), (T.MESSAGE_STATE, 2)],
        ),
        h("0000003E 00000005 00000000 0000004D")
        + h("00 01 01")
        + b"46701234567\0"
        + h("00 00")
        + b"12345\0"
        + h("04 00 00 00 00 00 00 00 00 00")
        + h("001E 0004")
        + b"ab1\0"
        + h("0427 0001 02"),
    ),
    (
        "submit_multi_sme_and_dl",
        Pdu.make(
            C.SUBMIT_MULTI,
            5,
            source_addr_ton=1,
            source_addr_npi=1,
            source_addr="4670",
            dest_addresses=(
                {
                    "dest_flag": 1,
                    "dest_addr_ton": 1,
                    "dest_addr_npi": 1,
                    "destination_addr": "4671",
                },
                {"dest_flag": 2, "dl_name": "friends"},
            ),
            short_message=b"hi",
        ),
        h("00000036 00000021 00000000 00000005")
        + h("00 01 01")
        + b"4670\0"
        + h("02")
        + h("01 01 01")
        + b"4671\0"
        + h("02")
        + b"friends\0"
        + h("00 00 00 00 00 00 00 00 00 02")
        + b"hi",
    ),
    (
        "submit_multi_resp_one_unsuccess",
        Pdu.make(
            C.SUBMIT_MULTI_RESP,
            5,
            message_id="m1",
            unsuccess_smes=(
                {
                    "dest_addr_ton": 1,
                    "dest_addr_npi": 1,
                    "destination_addr": "4671",
                    "error_status_code": 0x0B,
                },
            ),
        ),
        h("0000001F 80000021 00000000 00000005")
        + b"m1\0"
        + h("01 01 01")
        + b"4671\0"
        + h("0000000B"),
    ),
    (
        "query_sm_resp",
        Pdu.make(
            C.QUERY_SM_RESP, 6, message_id="m1", final_date="260101120000000+", message_state=2
        ),
        h("00000026 80000003 00000000 00000006") + b"m1\x00" + b"260101120000000+\x00" + h("02 00"),
    ),
    (
        "data_sm_with_payload",
        Pdu.make(
            C.DATA_SM,
            8,
            source_addr_ton=1,
            source_addr_npi=1,
            source_addr="4670",
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr="4671",
            registered_delivery=1,
            data_coding=4,
            tlvs=[(T.MESSAGE_PAYLOAD, b"\x01\x02\x03")],
        ),
        h("00000029 00000103 00000000 00000008")
        + h("00 01 01")
        + b"4670\0"
        + h("01 01")
        + b"4671\0"
        + h("00 01 04")
        + h("0424 0003 010203"),
    ),
    (
        "alert_notification",
        Pdu.make(
            C.ALERT_NOTIFICATION,
            10,
            source_addr_ton=1,
            source_addr_npi=1,
            source_addr="4670",
            esme_addr="esme",
            tlvs=[(T.MS_AVAILABILITY_STATUS, 0)],
        ),
        h("00000023 00000102 00000000 0000000A")
        + h("01 01")
        + b"4670\0"
        + h("00 00")
        + b"esme\0"
        + h("0422 0001 00"),
    ),
    (
        "cancel_sm",
        Pdu.make(
            C.CANCEL_SM,
            11,
            message_id="m1",
            source_addr_ton=1,
            source_addr_npi=1,
            source_addr="4670",
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr="4671",
        ),
        h("00000022 00000008 00000000 0000000B")
        + h("00")
        + b"m1\0"
        + h("01 01")
        + b"4670\0"
        + h("01 01")
        + b"4671\0",
    ),
    (
        "replace_sm",
        Pdu.make(
            C.REPLACE_SM,
            12,
            message_id="m1",
            source_addr_ton=1,
            source_addr_npi=1,
            source_addr="4670",
            short_message=b"hi",
        ),
        h("00000021 00000007 00000000 0000000C")
        + b"m1\0"
        + h("01 01")
        + b"4670\0"
        + h("00 00 00 00 02")
        + b"hi",
    ),
    (
        "submit_sm_resp_unknown_tlv_kept",
        Pdu.make(C.SUBMIT_SM_RESP, 13, message_id="x", tlvs=[(0x1400, b"\xab\xcd")]),
        h("00000018 80000004 00000000 0000000D") + b"x\0" + h("1400 0002 abcd"),
    ),
    (
        "data_sm_resp_error_with_tlvs",
        Pdu.make(
            C.DATA_SM_RESP,
            14,
            S.ESME_RDELIVERYFAILURE,
            message_id="",
            tlvs=[(T.DELIVERY_FAILURE_REASON, 1), (T.NETWORK_ERROR_CODE, b"\x03\x00\x1b")],
        ),
        h("0000001D 80000103 000000FE 0000000E") + h("00") + h("0425 0001 01 0423 0003 03001b"),
    ),
]
