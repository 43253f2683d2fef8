"""Crafted bad frames: each gives SmppError with the status the spec asks for."""

from __future__ import annotations

import struct

import pytest

from adressat.smpp.codec import PduReader, decode, encode
from adressat.smpp.constants import CommandId as C
from adressat.smpp.constants import CommandStatus as S
from adressat.smpp.constants import TlvTag as T
from adressat.smpp.errors import SmppEncodeError, SmppError
from adressat.smpp.pdus import Pdu, error_response


def frame(cid: int, body: bytes, seq: int = 42, status: int = 0) -> bytes:
    return struct.pack(">IIII", 16 + len(body), cid, status, seq) + body


def sm_body(**raw: bytes) -> bytes:
    """A submit_sm body from raw wire segments; override a segment by name."""
    parts = {
        "service_type": b"\0",
        "src_ton_npi": b"\x01\x01",
        "source_addr": b"4670\0",
        "dst_ton_npi": b"\x01\x01",
        "destination_addr": b"4671\0",
        "esm_pid_prio": b"\0\0\0",
        "schedule_delivery_time": b"\0",
        "validity_period": b"\0",
        "flags": b"\0\0\0\0",
        "sm": b"\x02hi",
        "tlvs": b"",
    }
    parts.update(raw)
    return b"".join(parts.values())


BIND = {
    "system_id": b"sys\0",
    "password": b"pw\0",
    "system_type": b"\0",
    "ints": b"\x34\x00\x00",
    "address_range": b"\0",
}


def bind_body(**raw: bytes) -> bytes:
    return b"".join({**BIND, **raw}.values())


CASES = [
    (
        "source_addr_too_long",
        C.SUBMIT_SM,
        sm_body(source_addr=b"1" * 21 + b"\0"),
        S.ESME_RINVSRCADR,
    ),
    ("source_addr_unterminated", C.SUBMIT_SM, b"\0\x01\x01" + b"1" * 10, S.ESME_RINVSRCADR),
    (
        "dest_addr_too_long",
        C.SUBMIT_SM,
        sm_body(destination_addr=b"2" * 30 + b"\0"),
        S.ESME_RINVDSTADR,
    ),
    ("service_type_too_long", C.SUBMIT_SM, sm_body(service_type=b"ABCDEF\0"), S.ESME_RINVSERTYP),
    (
        "schedule_bad_length",
        C.SUBMIT_SM,
        sm_body(schedule_delivery_time=b"2601\0"),
        S.ESME_RINVSCHED,
    ),
    (
        "schedule_bad_format",
        C.SUBMIT_SM,
        sm_body(schedule_delivery_time=b"2601011200000000\0"),
        S.ESME_RINVSCHED,
    ),
    ("validity_bad", C.SUBMIT_SM, sm_body(validity_period=b"x" * 16 + b"\0"), S.ESME_RINVEXPIRY),
    ("sm_length_over_254", C.SUBMIT_SM, sm_body(sm=b"\xff" + b"a" * 255), S.ESME_RINVMSGLEN),
    ("sm_length_past_end", C.SUBMIT_SM, sm_body(sm=b"\x10hi"), S.ESME_RINVMSGLEN),
    ("body_truncated_in_ints", C.SUBMIT_SM, sm_body()[:-4], S.ESME_RINVCMDLEN),
    ("tlv_truncated_header", C.SUBMIT_SM, sm_body(tlvs=b"\x02\x04\x00"), S.ESME_RINVOPTPARSTREAM),
    (
        "tlv_past_end",
        C.SUBMIT_SM,
        sm_body(tlvs=b"\x02\x04\x00\x09\x00\x01"),
        S.ESME_RINVOPTPARSTREAM,
    ),
    ("tlv_int_wrong_length", C.SUBMIT_SM, sm_body(tlvs=b"\x02\x04\x00\x01\x05"), S.ESME_RINVPARLEN),
    ("tlv_octets_too_long", C.SUBMIT_SM, sm_body(tlvs=b"\x04\x23\x00\x04abcd"), S.ESME_RINVPARLEN),
    (
        "tlv_cstring_without_nul",
        C.DELIVER_SM,
        sm_body(tlvs=b"\x00\x1e\x00\x03abc"),
        S.ESME_RINVOPTPARAMVAL,
    ),
    (
        "tlv_cstring_inner_nul",
        C.DELIVER_SM,
        sm_body(tlvs=b"\x00\x1e\x00\x04a\0c\0"),
        S.ESME_RINVOPTPARAMVAL,
    ),
    (
        "system_id_too_long",
        C.BIND_TRANSMITTER,
        bind_body(system_id=b"s" * 16 + b"\0"),
        S.ESME_RINVSYSID,
    ),
    ("password_too_long", C.BIND_RECEIVER, bind_body(password=b"p" * 9 + b"\0"), S.ESME_RINVPASWD),
    (
        "system_type_too_long",
        C.BIND_TRANSCEIVER,
        bind_body(system_type=b"t" * 13 + b"\0"),
        S.ESME_RINVSYSTYP,
    ),
    ("message_id_too_long", C.SUBMIT_SM_RESP, b"m" * 65 + b"\0", S.ESME_RINVMSGID),
    ("ok_response_without_body", C.SUBMIT_SM_RESP, b"", S.ESME_RINVMSGID),
    (
        "submit_multi_bad_dest_flag",
        C.SUBMIT_MULTI,
        b"\0\x01\x01a\0" + b"\x01" + b"\x03\x01\x01b\0" + b"\0" * 9,
        S.ESME_RINVDESTFLAG,
    ),
    (
        "submit_multi_dl_name_too_long",
        C.SUBMIT_MULTI,
        b"\0\x01\x01a\0" + b"\x01" + b"\x02" + b"d" * 21 + b"\0" + b"\0" * 9,
        S.ESME_RINVDLNAME,
    ),
    ("garbage_after_empty_body", C.ENQUIRE_LINK, b"\x01", S.ESME_RINVOPTPARSTREAM),
]


@pytest.mark.parametrize(("name", "cid", "body", "status"), CASES, ids=[c[0] for c in CASES])
def test_bad_field_status(name: str, cid: int, body: bytes, status: S) -> None:
    with pytest.raises(SmppError) as info:
        decode(frame(cid, body))
    err = info.value
    assert err.command_status == status
    assert err.sequence_number == 42
    assert err.command_id == cid
    # the error message never carries field content (privacy)
    assert "4670" not in str(err) and "111" not in str(err)


def test_the_valid_variants_decode() -> None:
    """The crafted-frame builders produce valid frames when nothing is overridden."""
    decode(frame(C.SUBMIT_SM, sm_body()))
    decode(frame(C.BIND_TRANSMITTER, bind_body()))


def test_unknown_command_id_answered_with_generic_nack() -> None:
    with pytest.raises(SmppError) as info:
        decode(frame(0x00000077, b"", seq=9))
    err = info.value
    assert err.command_status == S.ESME_RINVCMDID
    assert (err.command_id, err.sequence_number) == (0x77, 9)
    nack = error_response(err)
    assert encode(nack) == frame(C.GENERIC_NACK, b"", seq=9, status=S.ESME_RINVCMDID)


def test_error_response_to_known_request_has_no_body() -> None:
    with pytest.raises(SmppError) as info:
        decode(frame(C.SUBMIT_SM, sm_body(source_addr=b"1" * 30 + b"\0"), seq=5))
    resp = error_response(info.value)
    assert encode(resp) == frame(C.SUBMIT_SM_RESP, b"", seq=5, status=S.ESME_RINVSRCADR)


@pytest.mark.parametrize("bad", [b"\x00" * 15, frame(C.ENQUIRE_LINK, b"")[:-1] + b"\x00\x00"])
def test_decode_length_mismatch(bad: bytes) -> None:
    with pytest.raises(SmppError) as info:
        decode(bad)
    assert info.value.command_status == S.ESME_RINVCMDLEN


@pytest.mark.parametrize("length", [0, 15, 65537, 0xFFFFFFFF])
def test_reader_refuses_bad_command_length_from_header_alone(length: int) -> None:
    reader = PduReader(pdu_length_max=65536)
    with pytest.raises(SmppError) as info:
        reader.feed(struct.pack(">I", length))
    assert info.value.command_status == S.ESME_RINVCMDLEN
    assert reader.buffered_octets == 0
    # the stream stays broken; nothing more is buffered
    with pytest.raises(SmppError):
        reader.feed(b"\0" * 1000)
    assert reader.buffered_octets == 0
    with pytest.raises(SmppError):
        reader.next_pdu()


def test_reader_delivers_valid_frames_before_refusing_a_bad_length() -> None:
    reader = PduReader(pdu_length_max=100)
    ok = frame(C.ENQUIRE_LINK, b"", seq=1)
    reader.feed(ok + struct.pack(">IIII", 101, C.SUBMIT_SM, 0, 3))
    first = reader.next_pdu()
    assert first is not None and first.sequence_number == 1
    with pytest.raises(SmppError) as info:
        reader.next_pdu()
    err = info.value
    assert err.command_status == S.ESME_RINVCMDLEN
    assert (err.command_id, err.sequence_number) == (C.SUBMIT_SM, 3)
    assert reader.buffered_octets == 0
    with pytest.raises(SmppError):
        reader.feed(b"\0" * 200)


def test_reader_keeps_going_after_a_bad_body() -> None:
    reader = PduReader()
    reader.feed(frame(C.SUBMIT_SM, sm_body(sm=b"\xff"), seq=1) + frame(C.ENQUIRE_LINK, b"", seq=2))
    with pytest.raises(SmppError) as info:
        reader.next_pdu()
    assert info.value.sequence_number == 1
    pdu = reader.next_pdu()
    assert pdu is not None and pdu.sequence_number == 2


# -- our own invalid PDUs: a local error, never silently truncated -----------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"source_addr": "1" * 21},
        {"destination_addr": "4670\0"},
        {"service_type": "ü" * 6},
        {"source_addr": "\u20ac"},  # not latin-1
        {"short_message": b"x" * 255},
        {"short_message": "text"},
        {"schedule_delivery_time": "tomorrow"},
        {"esm_class": 256},
        {"data_coding": -1},
        {"source_addr_ton": "1"},
    ],
)
def test_encode_refuses_invalid_values(fields: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(SmppEncodeError):
        encode(Pdu.make(C.SUBMIT_SM, 1, **fields))


@pytest.mark.parametrize(
    "tlvs",
    [
        [(T.USER_MESSAGE_REFERENCE, 0x10000)],
        [(T.USER_MESSAGE_REFERENCE, b"\x00\x01")],
        [(T.RECEIPTED_MESSAGE_ID, "a" * 65)],
        [(T.RECEIPTED_MESSAGE_ID, b"abc")],
        [(T.NETWORK_ERROR_CODE, b"\x01")],
        [(0x1400, "not bytes")],
        [(0x1400, b"x" * 0x10000)],
    ],
)
def test_encode_refuses_invalid_tlvs(tlvs: list) -> None:  # type: ignore[type-arg]
    with pytest.raises(SmppEncodeError):
        encode(Pdu.make(C.SUBMIT_SM, 1, tlvs=tlvs))


def test_make_refuses_unknown_fields_and_names() -> None:
    with pytest.raises(SmppEncodeError):
        Pdu.make(C.SUBMIT_SM, 1, short_mesage=b"typo")
    with pytest.raises(SmppEncodeError):
        Pdu.make(C.SUBMIT_SM, 1, tlvs={"no_such_tlv": 1})
    with pytest.raises(SmppEncodeError):
        Pdu.make(0x77, 1)


def test_encode_refuses_raw_pdu_with_extra_or_missing_fields() -> None:
    good = Pdu.make(C.SUBMIT_SM_RESP, 1, message_id="a")
    with pytest.raises(SmppEncodeError):
        encode(good._replace(fields={"message_id": "a", "extra": 1}))
    with pytest.raises(SmppEncodeError):
        encode(good._replace(fields={}))  # status 0: the body is mandatory


def test_response_helper() -> None:
    req = Pdu.make(C.SUBMIT_SM, 77, short_message=b"x")
    ok = req.response(message_id="id1")
    assert (ok.command_id, ok.sequence_number, ok.command_status) == (C.SUBMIT_SM_RESP, 77, 0)
    assert ok.fields == {"message_id": "id1"}
    err = req.response(S.ESME_RTHROTTLED)
    assert err.fields == {} and encode(err) == frame(C.SUBMIT_SM_RESP, b"", 77, 0x58)
    with pytest.raises(SmppEncodeError):
        Pdu.make(C.OUTBIND, 1).response()
    bind_resp = Pdu.make(C.BIND_TRANSCEIVER, 3).response(
        system_id="SMSC", tlvs={"sc_interface_version": 0x34}
    )
    assert bind_resp.tlv(T.SC_INTERFACE_VERSION) == 0x34
    assert bind_resp.tlv("sc_interface_version") == 0x34


def test_repr_hides_message_text() -> None:
    pdu = Pdu.make(
        C.SUBMIT_SM, 1, short_message=b"secret code 1234", tlvs={"message_payload": b"more text"}
    )
    text = repr(pdu)
    assert "secret" not in text and "more text" not in text
    assert "16 octets" in text
