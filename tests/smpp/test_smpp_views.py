"""Typed PDU views: their fields match the schema table; one golden table of (view, bytes)
drives encode and decode (whole and one byte at a time)."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import typing
from pathlib import Path

import pytest
from smpp_pcap import write_pcap

from adressat.smpp.codec import PduReader, decode, encode
from adressat.smpp.constants import CommandId as C
from adressat.smpp.constants import CommandStatus as S
from adressat.smpp.pdus import Pdu
from adressat.smpp.schema import BODIES, TLV_TAG_BY_NAME, TLVS, Kind, TlvKind, body_field_names
from adressat.smpp.views import (
    HEADER_FIELDS,
    OTHER_TLVS,
    VIEWS,
    BindResp,
    DeliverSm,
    DeliverSmResp,
    SubmitSm,
    SubmitSmResp,
    ViewError,
)


def h(text: str) -> bytes:
    return bytes.fromhex(text)


RECEIPT_TEXT = (b"id:0a1b sub:001 dlvrd:001 submit date:2612031650 done date:2612031651 "
                b"stat:DELIVRD err:000 text:")

# Written by hand from SMPP 3.4 4.4.1, 4.6.1, 5.3.2 (none of these bytes comes from our encoder).
GOLDEN: list[tuple[str, object, int, bytes]] = [
    (
        "submit_sm_payload_sar_hops",
        SubmitSm(source_addr_ton=1, source_addr_npi=1, source_addr="4670100",
                 destination_addr="46731234567", registered_delivery=1,
                 sar_msg_ref_num=0x42, sar_total_segments=2, sar_segment_seqnum=1,
                 message_payload=b"abc", adressat_hops=1),
        5,
        h("0000004F 00000004 00000000 00000005")
        + b"\0" + h("0101") + b"4670100\0" + h("0101") + b"46731234567\0"
        + h("000000") + b"\0" + b"\0" + h("01000000") + h("00")
        + h("020C 0002 0042") + h("020E 0001 02") + h("020F 0001 01")
        + h("0424 0003") + b"abc" + h("14AD 0001 01"),
    ),
    (
        "submit_sm_short_message_and_unknown_tlv",
        SubmitSm(destination_addr="4673", short_message=b"hi", other_tlvs=((0x1500, b"x"),)),
        3,
        h("0000002C 00000004 00000000 00000003")
        + b"\0" + h("0000") + b"\0" + h("0101") + b"4673\0" + h("000000") + b"\0\0"
        + h("00000000") + h("02") + b"hi" + h("1500 0001") + b"x",
    ),
    (
        "submit_sm_resp_ok",
        SubmitSmResp(message_id="0a1b"),
        5,
        h("00000015 80000004 00000000 00000005") + b"0a1b\0",
    ),
    (
        "submit_sm_resp_throttled_without_body",
        SubmitSmResp(command_status=S.ESME_RTHROTTLED),
        6,
        h("00000010 80000004 00000058 00000006"),
    ),
    (
        "deliver_sm_receipt",
        DeliverSm(source_addr_ton=1, source_addr_npi=1, source_addr="46731234567",
                  dest_addr_ton=1, dest_addr_npi=1, destination_addr="4670100", esm_class=4,
                  short_message=RECEIPT_TEXT, receipted_message_id="0a1b", message_state=2,
                  network_error_code=h("030001")),
        7,
        h("000000A8 00000005 00000000 00000007")
        + b"\0" + h("0101") + b"46731234567\0" + h("0101") + b"4670100\0"
        + h("040000") + b"\0\0" + h("00000000") + bytes([len(RECEIPT_TEXT)]) + RECEIPT_TEXT
        + h("001E 0005") + b"0a1b\0" + h("0427 0001 02") + h("0423 0003 030001"),
    ),
    (
        "deliver_sm_resp",
        DeliverSmResp(),
        7,
        h("00000011 80000005 00000000 00000007") + b"\0",
    ),
    (
        "bind_transceiver_resp",
        BindResp(system_id="SMSC", sc_interface_version=0x34),
        1,
        h("0000001A 80000009 00000000 00000001") + b"SMSC\0" + h("0210 0001 34"),
    ),
    (
        "bind_transmitter_resp_refused",
        BindResp(command_id=C.BIND_TRANSMITTER_RESP, command_status=S.ESME_RINVPASWD),
        1,
        h("00000010 80000002 0000000E 00000001"),
    ),
]
IDS = [g[0] for g in GOLDEN]


@pytest.mark.parametrize(("name", "view", "seq", "wire"), GOLDEN, ids=IDS)
def test_encode(name: str, view: typing.Any, seq: int, wire: bytes) -> None:
    assert encode(view.to_pdu(seq)) == wire


@pytest.mark.parametrize(("name", "view", "seq", "wire"), GOLDEN, ids=IDS)
def test_decode(name: str, view: typing.Any, seq: int, wire: bytes) -> None:
    pdu = decode(wire)
    assert pdu.sequence_number == seq
    assert type(view).from_pdu(pdu) == view


@pytest.mark.parametrize(("name", "view", "seq", "wire"), GOLDEN, ids=IDS)
def test_decode_one_byte_at_a_time(name: str, view: typing.Any, seq: int, wire: bytes) -> None:
    reader = PduReader()
    got: list[Pdu] = []
    for i in range(len(wire)):
        reader.feed(wire[i : i + 1])
        got.extend(reader)
        if i < len(wire) - 1:
            assert got == []
    assert [type(view).from_pdu(p) for p in got] == [view]


def test_golden_covers_every_view() -> None:
    assert {type(v) for _, v, _, _ in GOLDEN} == set(VIEWS)


_BODY_HINT = {Kind.INT8: int, Kind.INT16: int, Kind.INT32: int, Kind.CSTRING: str,
              Kind.TIME: str, Kind.OCTETS: bytes}
_TLV_HINT = {TlvKind.INT8: int, TlvKind.INT16: int, TlvKind.INT32: int, TlvKind.CSTRING: str,
             TlvKind.OCTETS: bytes}


@pytest.mark.parametrize("view", VIEWS, ids=lambda v: v.__name__)
def test_view_fields_match_the_schema_table(view: type) -> None:
    hints = typing.get_type_hints(view)
    names = [f.name for f in dataclasses.fields(view)]
    cid = C.BIND_TRANSCEIVER_RESP if view is BindResp else view.COMMAND_ID  # type: ignore[attr-defined]
    body = [n for n in names if n not in HEADER_FIELDS and n != OTHER_TLVS
            and n not in TLV_TAG_BY_NAME or n in body_field_names(cid)]
    # every body field of the schema, in schema order, with the schema's type
    assert tuple(body) == body_field_names(cid)
    kinds = {f.name: f.kind for f in BODIES[cid]}
    for n in body:
        assert hints[n] is _BODY_HINT[kinds[n]], n
    # everything else is a header field, a registered TLV (optional) or other_tlvs
    for n in names:
        if n in body or n in HEADER_FIELDS or n == OTHER_TLVS:
            continue
        tag = TLV_TAG_BY_NAME[n]
        assert hints[n] == _TLV_HINT[TLVS[tag].kind] | None, n
    assert OTHER_TLVS in names
    if cid & 0x80000000:
        assert "command_status" in names


def test_bind_resp_views_all_three_binds() -> None:
    for cid in (C.BIND_RECEIVER_RESP, C.BIND_TRANSMITTER_RESP, C.BIND_TRANSCEIVER_RESP):
        view = BindResp.from_pdu(Pdu.make(cid, 1, system_id="x"))
        assert view.command_id == cid and view.ok and view.system_id == "x"
        assert view.to_pdu(1) == Pdu.make(cid, 1, system_id="x")


def test_wrong_command_is_a_clear_error() -> None:
    with pytest.raises(ViewError, match="does not view"):
        SubmitSm.from_pdu(Pdu.make(C.DELIVER_SM, 1))
    with pytest.raises(ViewError, match="message_state"):
        DeliverSm.from_pdu(Pdu.make(C.DELIVER_SM, 1, tlvs={"message_state": b"\x02"}))


def test_repeated_tlv_keeps_the_first_and_the_rest_in_other_tlvs() -> None:
    pdu = Pdu.make(C.DELIVER_SM, 1, tlvs=[("message_state", 2), ("message_state", 5)])
    view = DeliverSm.from_pdu(pdu)
    assert view.message_state == 2
    assert view.other_tlvs == ((0x0427, 5),)


def test_receipt_and_content() -> None:
    receipt = DeliverSm(esm_class=0x04, short_message=RECEIPT_TEXT)
    assert receipt.is_receipt and receipt.content == RECEIPT_TEXT
    mo = DeliverSm(esm_class=0x40, message_payload=b"long")
    assert not mo.is_receipt and mo.content == b"long"
    assert SubmitSm(message_payload=b"p").content == b"p"
    assert SubmitSm(short_message=b"s", message_payload=b"p").content == b"s"


def test_views_are_frozen_and_repr_has_no_text() -> None:
    view = SubmitSm(short_message=b"secret words", message_payload=b"more secret")
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.destination_addr = "x"  # type: ignore[misc]
    assert "secret" not in repr(view)
    assert "secret" not in repr(DeliverSm(short_message=b"secret"))


def test_hops_tlv_is_in_the_vendor_range_and_registered() -> None:
    tag = TLV_TAG_BY_NAME["adressat_hops"]
    assert 0x1400 <= tag <= 0x3FFF
    pdu = decode(encode(SubmitSm(destination_addr="1", adressat_hops=3).to_pdu(1)))
    assert pdu.tlv("adressat_hops") == 3


def test_tshark_dissects_the_view_frames_without_complaint(tmp_path: Path) -> None:
    """Wireshark's SMPP dissector reads every golden view frame (adressat_hops among them:
    a vendor-specific tag) with no malformed packet or expert warning."""
    tshark = shutil.which("tshark")
    assert tshark, "tshark is required for this conformance test (apt-get install tshark)"
    pcap = tmp_path / "views.pcap"
    write_pcap(pcap, [wire for _, _, _, wire in GOLDEN])
    out = subprocess.run([tshark, "-n", "-r", str(pcap), "-d", "tcp.port==2775,smpp", "-V"],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.count("Short Message Peer to Peer") == len(GOLDEN)
    for bad in ("Malformed", "Expert Info (Error", "Expert Info (Warning", "[Dissector bug"):
        assert bad not in out, bad
    assert "0x14ad" in out.lower()
