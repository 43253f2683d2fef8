"""Cross-check with python-smpplib, a codec we did not write."""

from __future__ import annotations

from typing import Any

from smpplib import command, smpp

from adressat.smpp.codec import decode, encode
from adressat.smpp.constants import CommandId as C
from adressat.smpp.constants import TlvTag as T
from adressat.smpp.pdus import Pdu


def smpplib_bytes(name: str, seq: int, **kwargs: Any) -> bytes:
    cmd = command.factory(name, sequence=seq, **kwargs)
    cmd.sequence = seq
    data: bytes = cmd.generate()
    return data


def smpplib_parse(data: bytes) -> Any:
    return smpp.parse_pdu(data, sequence=0)


UDH_TEXT = b"\x05\x00\x03\x01\x02\x01" + "hej då".encode("utf-16-be")


def test_submit_sm_from_smpplib() -> None:
    data = smpplib_bytes(
        "submit_sm",
        5,
        service_type="CMT",
        source_addr_ton=5,
        source_addr_npi=0,
        source_addr="Adressat",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="46701234567",
        esm_class=0x40,
        data_coding=8,
        registered_delivery=1,
        short_message=UDH_TEXT,
        user_message_reference=42,
    )
    pdu = decode(data)
    assert pdu == Pdu.make(
        C.SUBMIT_SM,
        5,
        service_type="CMT",
        source_addr_ton=5,
        source_addr="Adressat",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="46701234567",
        esm_class=0x40,
        data_coding=8,
        registered_delivery=1,
        short_message=UDH_TEXT,
        tlvs=[(T.USER_MESSAGE_REFERENCE, 42)],
    )
    assert encode(pdu) == data


def test_bind_transceiver_from_smpplib() -> None:
    data = smpplib_bytes(
        "bind_transceiver",
        1,
        system_id="esme1",
        password="pw",
        system_type="OTP",
        interface_version=0x34,
        addr_ton=1,
        addr_npi=1,
        address_range="^4670",
    )
    pdu = decode(data)
    assert pdu.command_id == C.BIND_TRANSCEIVER and pdu.sequence_number == 1
    assert pdu.fields == {
        "system_id": "esme1",
        "password": "pw",
        "system_type": "OTP",
        "interface_version": 0x34,
        "addr_ton": 1,
        "addr_npi": 1,
        "address_range": "^4670",
    }
    assert encode(pdu) == data


def test_deliver_sm_receipt_from_smpplib() -> None:
    data = smpplib_bytes(
        "deliver_sm",
        9,
        source_addr="46701234567",
        destination_addr="4671",
        esm_class=4,
        short_message=b"id:abc sub:001 dlvrd:001 stat:DELIVRD err:000",
        receipted_message_id="abc",
        message_state=2,
    )
    pdu = decode(data)
    assert pdu.fields["esm_class"] == 4
    assert pdu.fields["short_message"] == b"id:abc sub:001 dlvrd:001 stat:DELIVRD err:000"
    assert pdu.tlv("receipted_message_id") == "abc"
    assert pdu.tlv(T.MESSAGE_STATE) == 2
    assert encode(pdu) == data


def test_smpplib_parses_our_submit_sm() -> None:
    ours = Pdu.make(
        C.SUBMIT_SM,
        77,
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr="4670",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="46701234567",
        data_coding=8,
        short_message=UDH_TEXT,
        tlvs=[(T.SAR_MSG_REF_NUM, 0x1234), (T.SAR_TOTAL_SEGMENTS, 3), (T.SAR_SEGMENT_SEQNUM, 2)],
    )
    parsed = smpplib_parse(encode(ours))
    assert parsed.command == "submit_sm"
    assert parsed.sequence == 77
    assert parsed.source_addr == b"4670"
    assert parsed.destination_addr == b"46701234567"
    assert parsed.data_coding == 8
    assert parsed.short_message == UDH_TEXT
    assert parsed.sar_msg_ref_num == 0x1234
    assert parsed.sar_total_segments == 3
    assert parsed.sar_segment_seqnum == 2


def test_smpplib_parses_our_bind_resp_and_submit_sm_resp() -> None:
    bind = smpplib_parse(
        encode(
            Pdu.make(
                C.BIND_TRANSCEIVER_RESP, 1, system_id="SMSC", tlvs={"sc_interface_version": 0x34}
            )
        )
    )
    assert bind.command == "bind_transceiver_resp" and bind.system_id == b"SMSC"
    resp = smpplib_parse(encode(Pdu.make(C.SUBMIT_SM_RESP, 2, message_id="0123abcd")))
    assert resp.command == "submit_sm_resp" and resp.message_id == b"0123abcd"
    err = smpplib_parse(encode(Pdu.make(C.SUBMIT_SM_RESP, 3, 0x58)))
    assert err.status == 0x58 and err.sequence == 3
