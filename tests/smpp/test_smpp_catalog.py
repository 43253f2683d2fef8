"""The status catalog, the enums and the schema tables are checked against SMPP 3.4."""

from __future__ import annotations

import pytest

from adressat.smpp import codec
from adressat.smpp.constants import RESPONSE_BIT, CommandId, CommandStatus, TlvTag
from adressat.smpp.pdus import Pdu
from adressat.smpp.schema import (
    BODIES,
    RESPONSE_OF,
    TLV_COMMANDS,
    TLV_TAG_BY_NAME,
    TLVS,
    WIRE_ONLY_KINDS,
    Kind,
    body_field_names,
)

WELL_KNOWN_STATUS = {
    "ESME_ROK": 0x00, "ESME_RINVMSGLEN": 0x01, "ESME_RINVCMDLEN": 0x02, "ESME_RINVCMDID": 0x03,
    "ESME_RINVBNDSTS": 0x04, "ESME_RALYBND": 0x05, "ESME_RINVPRTFLG": 0x06,
    "ESME_RINVREGDLVFLG": 0x07, "ESME_RSYSERR": 0x08, "ESME_RINVSRCADR": 0x0A,
    "ESME_RINVDSTADR": 0x0B, "ESME_RINVMSGID": 0x0C, "ESME_RBINDFAIL": 0x0D,
    "ESME_RINVPASWD": 0x0E, "ESME_RINVSYSID": 0x0F, "ESME_RCANCELFAIL": 0x11,
    "ESME_RREPLACEFAIL": 0x13, "ESME_RMSGQFUL": 0x14, "ESME_RINVSERTYP": 0x15,
    "ESME_RINVNUMDESTS": 0x33, "ESME_RINVDLNAME": 0x34, "ESME_RINVDESTFLAG": 0x40,
    "ESME_RINVSUBREP": 0x42, "ESME_RINVESMCLASS": 0x43, "ESME_RCNTSUBDL": 0x44,
    "ESME_RSUBMITFAIL": 0x45, "ESME_RINVSRCTON": 0x48, "ESME_RINVSRCNPI": 0x49,
    "ESME_RINVDSTTON": 0x50, "ESME_RINVDSTNPI": 0x51, "ESME_RINVSYSTYP": 0x53,
    "ESME_RINVREPFLAG": 0x54, "ESME_RINVNUMMSGS": 0x55, "ESME_RTHROTTLED": 0x58,
    "ESME_RINVSCHED": 0x61, "ESME_RINVEXPIRY": 0x62, "ESME_RINVDFTMSGID": 0x63,
    "ESME_RX_T_APPN": 0x64, "ESME_RX_P_APPN": 0x65, "ESME_RX_R_APPN": 0x66,
    "ESME_RQUERYFAIL": 0x67, "ESME_RINVOPTPARSTREAM": 0xC0, "ESME_ROPTPARNOTALLWD": 0xC1,
    "ESME_RINVPARLEN": 0xC2, "ESME_RMISSINGOPTPARAM": 0xC3, "ESME_RINVOPTPARAMVAL": 0xC4,
    "ESME_RDELIVERYFAILURE": 0xFE, "ESME_RUNKNOWNERR": 0xFF,
}  # fmt: skip

# SMPP 3.4 section 5.3.2: tag -> value size in octets (None: variable).
SPEC_TLVS = {
    0x0005: 1, 0x0006: 1, 0x0007: 1, 0x0008: 2, 0x000D: 1, 0x000E: 1, 0x000F: 1, 0x0010: 1,
    0x0017: 4, 0x0019: 1, 0x001D: None, 0x001E: None, 0x0030: 1, 0x0201: 1, 0x0202: None,
    0x0203: None, 0x0204: 2, 0x0205: 1, 0x020A: 2, 0x020B: 2, 0x020C: 2, 0x020D: 1,
    0x020E: 1, 0x020F: 1, 0x0210: 1, 0x0302: 1, 0x0303: None, 0x0304: 1, 0x0381: None,
    0x0420: 1, 0x0421: 1, 0x0422: 1, 0x0423: 3, 0x0424: None, 0x0425: 1, 0x0426: 1,
    0x0427: 1, 0x0501: 1, 0x1201: 1, 0x1203: 2, 0x1204: 1, 0x130C: 0, 0x1380: 1, 0x1383: 2,
}  # fmt: skip
# adressat's own tags, in the vendor-specific range 0x1400-0x3FFF: adressat_hops.
VENDOR_TLVS = {0x14AD: 1}


def test_status_catalog_complete_and_described() -> None:
    assert {s.name: int(s) for s in CommandStatus} == WELL_KNOWN_STATUS
    for s in CommandStatus:
        assert s.description and "\n" not in s.description


def test_command_ids_and_responses() -> None:
    assert set(BODIES) == set(CommandId)
    for cid in CommandId:
        if cid & RESPONSE_BIT or cid in (CommandId.OUTBIND, CommandId.ALERT_NOTIFICATION):
            assert cid not in RESPONSE_OF
        else:
            assert RESPONSE_OF[cid] == cid | RESPONSE_BIT
    assert CommandId.SUBMIT_SM == 4 and CommandId.DATA_SM == 0x103
    assert CommandId.SUBMIT_MULTI_RESP == 0x80000021 and CommandId.GENERIC_NACK == 0x80000000


def test_tlv_registry_matches_spec_table() -> None:
    known = SPEC_TLVS | VENDOR_TLVS
    assert {int(t) for t in TLVS} == set(known) == {int(t) for t in TlvTag}
    assert all(0x1400 <= t <= 0x3FFF for t in VENDOR_TLVS)
    for tag, spec in TLVS.items():
        size = known[tag]
        if size is not None:
            assert spec.length_min == spec.length_max == size, spec.name
        else:
            assert spec.length_min < spec.length_max, spec.name
        assert spec.name == tag.name.lower()
        assert TLV_TAG_BY_NAME[spec.name] == tag


@pytest.mark.parametrize("cid", list(BODIES), ids=lambda c: c.spec_name)
def test_schema_well_formed(cid: CommandId) -> None:
    fields = BODIES[cid]
    names = [f.name for f in fields]
    assert len(names) == len(set(names))
    for i, f in enumerate(fields):
        if f.kind is Kind.CSTRING:
            assert f.size >= 2
        if f.kind is Kind.LENGTH8:
            assert fields[i + 1].kind is Kind.OCTETS
        if f.kind is Kind.COUNT8:
            assert fields[i + 1].kind is Kind.LIST
        if f.kind in (Kind.OCTETS, Kind.LIST):
            assert fields[i - 1].kind in WIRE_ONLY_KINDS
    # the generated codec handles exactly the schema's fields
    assert set(Pdu.make(cid, 1).fields) == set(body_field_names(cid))
    assert cid in codec.DECODERS and cid in codec.ENCODERS


def test_key_layouts_follow_the_spec() -> None:
    assert body_field_names(CommandId.SUBMIT_SM) == (
        "service_type", "source_addr_ton", "source_addr_npi", "source_addr", "dest_addr_ton",
        "dest_addr_npi", "destination_addr", "esm_class", "protocol_id", "priority_flag",
        "schedule_delivery_time", "validity_period", "registered_delivery",
        "replace_if_present_flag", "data_coding", "sm_default_msg_id", "short_message",
    )  # fmt: skip
    sizes = {f.name: f.size for f in BODIES[CommandId.SUBMIT_SM]}
    assert sizes["source_addr"] == 21 and sizes["short_message"] == 254
    assert {f.name: f.size for f in BODIES[CommandId.DATA_SM]}["destination_addr"] == 65
    assert [f.size for f in BODIES[CommandId.BIND_TRANSMITTER] if f.kind is Kind.CSTRING] == [
        16, 9, 13, 41,
    ]  # fmt: skip
    assert TLV_COMMANDS >= {CommandId.SUBMIT_SM, CommandId.DELIVER_SM, CommandId.DATA_SM}


def test_codec_is_generated_from_the_table() -> None:
    """Changing the table changes the generated code: nothing is written per PDU."""
    src = codec.DECODERS[CommandId.SUBMIT_SM].__source__  # type: ignore[attr-defined]
    for name in body_field_names(CommandId.SUBMIT_SM):
        assert repr(name) in src
