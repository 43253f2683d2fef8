"""Conformance with Wireshark's SMPP dissector: our encodings of every PDU type, dissected by
tshark, show no malformed/expert errors and the dissected values equal ours."""

from __future__ import annotations

import random
import shutil
import string
import subprocess
from pathlib import Path
from typing import Any

import pytest
from smpp_golden import GOLDEN
from smpp_pcap import write_pcap

from adressat.smpp.codec import encode
from adressat.smpp.constants import RESPONSE_BIT, CommandId
from adressat.smpp.pdus import Pdu
from adressat.smpp.schema import BODIES, TLV_COMMANDS, TLVS, WIRE_ONLY_KINDS, Field, Kind, TlvKind

TIMES = ["", "260101120000000+", "000001000000000R", "251231235959104-"]
STRING_FIELDS = [
    "service_type", "source_addr", "destination_addr", "system_id", "password", "system_type",
    "address_range", "message_id", "dl_name", "esme_addr",
]  # fmt: skip
INT_FIELDS = [
    "source_addr_ton", "source_addr_npi", "dest_addr_ton", "dest_addr_npi", "data_coding",
    "protocol_id", "priority_flag", "error_status_code", "addr_ton", "addr_npi",
    "esme_addr_ton", "esme_addr_npi", "error_code",
]  # fmt: skip
INT_TLVS = [
    "user_message_reference", "sar_msg_ref_num", "sar_total_segments", "sar_segment_seqnum",
    "source_port", "destination_port", "ms_availability_status", "delivery_failure_reason",
    "more_messages_to_send", "payload_type", "qos_time_to_live", "dest_addr_subunit",
    "source_addr_subunit", "privacy_indicator", "language_indicator", "dpf_result", "set_dpf",
]  # fmt: skip
# message_state is both a query_sm_resp body field and a TLV: one tshark field for both.
EXTRA = ["message", "message_payload", "receipted_message_id", "message_state", "sm_length"]
ESM = ["esm.submit.msg_mode", "esm.submit.msg_type", "esm.submit.features"]
HEAD = ["command_id", "command_status", "sequence_number", "opt_param_tag", "opt_param_len"]
ALL = HEAD + STRING_FIELDS + INT_FIELDS + INT_TLVS + EXTRA + ESM
# TLVs whose tshark rendering we compare or that tshark dissects without surprises
SAFE_TLVS = [
    t for t, s in TLVS.items()
    if s.name in INT_TLVS or s.name in ("message_payload", "receipted_message_id", "message_state")
]  # fmt: skip


def _text(rng: random.Random, size: int) -> str:
    return "".join(
        rng.choice(string.ascii_letters + string.digits) for _ in range(rng.randint(1, size - 1))
    )


def _value(rng: random.Random, f: Field) -> Any:
    if f.kind is Kind.INT8:
        return rng.randrange(0x40) if f.name == "esm_class" else rng.randrange(0x100)
    if f.kind is Kind.INT16:
        return rng.randrange(0x10000)
    if f.kind is Kind.INT32:
        return rng.randrange(0x100000000)
    if f.kind is Kind.CSTRING:
        return _text(rng, f.size)
    if f.kind is Kind.TIME:
        return rng.choice(TIMES)
    if f.kind is Kind.OCTETS:
        return rng.randbytes(rng.randrange(f.size + 1))
    if f.kind is Kind.LIST:
        items = []
        for _ in range(rng.randint(1, 3)):
            head = {g.name: _value(rng, g) for g in f.layout}
            if f.variants is not None:
                tag = rng.choice(sorted(f.variants))
                head[f.layout[0].name] = tag
                head.update({g.name: _value(rng, g) for g in f.variants[tag]})
            items.append(head)
        return tuple(items)
    raise AssertionError(f.kind)


def _tlv(rng: random.Random) -> tuple[int, Any]:
    if rng.random() < 0.2:
        vendor = rng.randrange(0x1400, 0x4000)
        if vendor not in TLVS:  # adressat's own (adressat_hops) has a type
            return vendor, rng.randbytes(rng.randrange(8))  # vendor range
    tag = rng.choice(SAFE_TLVS)
    spec = TLVS[tag]
    if spec.kind is TlvKind.CSTRING:
        return tag, _text(rng, spec.length_max)
    if spec.kind is TlvKind.OCTETS:
        return tag, rng.randbytes(rng.randint(spec.length_min, min(spec.length_max, 200)))
    width = {TlvKind.INT8: 1, TlvKind.INT16: 2, TlvKind.INT32: 4}[spec.kind]
    return tag, rng.randrange(1 << (8 * width))


def random_pdus(seed: int, per_type: int) -> list[Pdu]:
    rng = random.Random(seed)
    out = []
    for cid, body in BODIES.items():
        for _ in range(per_type):
            fields = {f.name: _value(rng, f) for f in body if f.kind not in WIRE_ONLY_KINDS}
            n_tlvs = rng.randrange(4) if cid in TLV_COMMANDS else 0
            tlvs = [_tlv(rng) for _ in range(n_tlvs)]
            out.append(Pdu.make(cid, rng.randrange(1 << 31), 0, tlvs=tlvs, **fields))
    return out


def _tlv_wire(pdu: Pdu) -> list[tuple[int, bytes]]:
    body = encode(pdu._replace(fields={}, command_status=1, command_id=CommandId.UNBIND_RESP))
    out, off = [], 16
    while off < len(body):
        tag, length = (
            int.from_bytes(body[off : off + 2], "big"),
            int.from_bytes(body[off + 2 : off + 4], "big"),
        )
        out.append((tag, body[off + 4 : off + 4 + length]))
        off += 4 + length
    return out


def _values(fields: dict[str, Any], name: str) -> list[Any]:
    out: list[Any] = []
    for k, v in fields.items():
        if k == name:
            out.append(v)
        elif isinstance(v, tuple):
            for item in v:
                out.extend(item[name] for _ in [0] if name in item)
    return out


def _split(cell: str) -> list[str]:
    return [c for c in cell.split("|") if c != ""] if cell else []


def expected(pdu: Pdu) -> dict[str, list[str]]:
    """What tshark should show for ``pdu``, in the normalised form ``_normalise`` produces."""
    exp: dict[str, list[str]] = {
        "command_id": [str(int(pdu.command_id))],
        "sequence_number": [str(pdu.sequence_number)],
    }
    if pdu.command_id & RESPONSE_BIT:
        exp["command_status"] = [str(int(pdu.command_status))]
    if pdu.command_id & RESPONSE_BIT and pdu.command_status:
        return exp  # Wireshark does not dissect the body of error responses
    f = pdu.fields
    for name in STRING_FIELDS:
        if name != "service_type" or f.get(name):
            exp[name] = [v for v in _values(f, name) if v]
    for name in INT_FIELDS:
        exp[name] = [str(v) for v in _values(f, name)]
    if "short_message" in f:
        exp["sm_length"] = [str(len(f["short_message"]))]  # type: ignore[arg-type]
        exp["message"] = [f["short_message"].hex()] if f["short_message"] else []  # type: ignore[union-attr]
    if "esm_class" in f:
        e = int(f["esm_class"])  # type: ignore[arg-type]
        exp["esm"] = [str(e & 0x03), str((e >> 2) & 0x0F), str(e >> 6)]
    tlvs = _tlv_wire(pdu)
    exp["opt_param_tag"] = [str(t) for t, _ in tlvs]
    exp["opt_param_len"] = [str(len(v)) for _, v in tlvs]
    for tag, raw in tlvs:
        spec = TLVS.get(tag)  # type: ignore[call-overload]
        if spec is None:
            continue
        if spec.name in INT_TLVS:
            exp.setdefault(spec.name, []).append(str(int.from_bytes(raw, "big")))
        elif spec.name == "message_payload" and raw:
            exp.setdefault("message_payload", []).append(raw.hex())
        elif spec.name == "receipted_message_id":
            exp.setdefault("receipted_message_id", []).append(raw[:-1].decode())
    states = [str(v) for v in _values(f, "message_state")]
    states += [str(v) for t, v in pdu.tlvs if t == 0x0427]
    exp["message_state"] = states
    return exp


def _normalise(row: dict[str, str], exp: dict[str, list[str]]) -> dict[str, list[str]]:
    got: dict[str, list[str]] = {}
    for name in exp:
        if name == "esm":
            got[name] = [str(int(row[n], 0)) for n in ESM if row[n]]
            continue
        cells = _split(row[name])
        if name in STRING_FIELDS or name == "receipted_message_id":
            got[name] = cells
        elif name in ("message", "message_payload"):
            got[name] = [c.replace(":", "") for c in cells]
        else:
            got[name] = [str(int(c, 0)) for c in cells]
    return got


@pytest.fixture(scope="module")
def tshark() -> str:
    path = shutil.which("tshark")
    assert path, "tshark is required for this conformance test (apt-get install tshark)"
    return path


def _run(tshark: str, pcap: Path, *args: str) -> str:
    proc = subprocess.run(
        [tshark, "-n", "-r", str(pcap), "-d", "tcp.port==2775,smpp", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return proc.stdout


def test_tshark_dissects_all_pdu_types_like_we_do(tshark: str, tmp_path: Path) -> None:
    pdus = [p for _, p, _ in GOLDEN] + random_pdus(seed=2775, per_type=6)
    assert {p.command_id for p in pdus} == set(BODIES)
    pcap = tmp_path / "smpp.pcap"
    write_pcap(pcap, [encode(p) for p in pdus])

    verbose = _run(tshark, pcap, "-V")
    assert verbose.count("Short Message Peer to Peer") == len(pdus)
    for bad in ("Malformed", "Expert Info (Error", "Expert Info (Warning", "[Dissector bug"):
        assert bad not in verbose, bad

    cols = ["frame.number"] + ["smpp." + n for n in ALL]
    out = _run(tshark, pcap, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|",
               *[a for c in cols for a in ("-e", c)])  # fmt: skip
    rows = [dict(zip(ALL, line.split("\t")[1:], strict=True)) for line in out.splitlines()]
    assert len(rows) == len(pdus)
    mismatches = []
    for i, (pdu, row) in enumerate(zip(pdus, rows, strict=True)):
        exp = expected(pdu)
        got = _normalise(row, exp)
        if got != exp:
            diff = {k: (exp[k], got[k]) for k in exp if exp[k] != got[k]}
            mismatches.append((i + 1, pdu.command_id, diff))
    assert not mismatches, mismatches[:3]
