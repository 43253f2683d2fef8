"""Bounded fuzzing of the SMPP codec: decoded or SmppError, nothing else, bounded memory.

Whenever a mutated frame decodes, re-encoding it must give the same bytes (byte-exactness).
"""

from __future__ import annotations

import random
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from adressat.smpp.codec import PduReader, decode, encode
from adressat.smpp.constants import CommandId, CommandStatus
from adressat.smpp.errors import SmppError
from adressat.smpp.pdus import Pdu
from adressat.smpp.schema import BODIES, TLV_COMMANDS, TLVS, WIRE_ONLY_KINDS, Kind, TlvKind

PDU_LENGTH_MAX = 4096


def _seed_pdu(rng: random.Random, cid: CommandId) -> Pdu:
    fields: dict[str, object] = {}
    for f in BODIES[cid]:
        if f.kind in WIRE_ONLY_KINDS:
            continue
        if f.kind is Kind.CSTRING:
            fields[f.name] = "x" * rng.randrange(f.size)
        elif f.kind is Kind.TIME:
            fields[f.name] = rng.choice(["", "260101120000000+", "000001000000000R"])
        elif f.kind is Kind.OCTETS:
            fields[f.name] = rng.randbytes(rng.randrange(40))
        elif f.kind is Kind.LIST:
            if f.variants is None:
                item = {"dest_addr_ton": 1, "dest_addr_npi": 1, "destination_addr": "4670",
                        "error_status_code": 11}  # fmt: skip
                fields[f.name] = (item,) * rng.randrange(3)
            else:
                fields[f.name] = (
                    {
                        "dest_flag": 1,
                        "dest_addr_ton": 1,
                        "dest_addr_npi": 1,
                        "destination_addr": "1",
                    },
                    {"dest_flag": 2, "dl_name": "dl"},
                )
        else:
            fields[f.name] = rng.randrange(256)
    tlvs: list[tuple[int, object]] = []
    if cid in TLV_COMMANDS:
        for tag in rng.sample(sorted(TLVS), 3):
            spec = TLVS[tag]
            if spec.kind is TlvKind.CSTRING:
                tlvs.append((tag, "id"))
            elif spec.kind is TlvKind.OCTETS:
                tlvs.append((tag, b"\x01" * spec.length_min))
            else:
                tlvs.append((tag, 1))
        tlvs.append((0x1500, b"vendor"))
    return Pdu.make(cid, rng.randrange(1 << 32), 0, tlvs=tlvs, **fields)  # type: ignore[arg-type]


def _seeds(rng: random.Random) -> list[bytes]:
    return [encode(_seed_pdu(rng, cid)) for cid in BODIES for _ in range(2)]


def _mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    op = rng.randrange(6)
    if op == 0:  # bit flips
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
    elif op == 1:  # truncation, header kept consistent
        b = b[: rng.randrange(16, len(b) + 1)]
        b[0:4] = struct.pack(">I", len(b))
    elif op == 2:  # trailing junk, header kept consistent
        b += rng.randbytes(rng.randrange(1, 12))
        b[0:4] = struct.pack(">I", len(b))
    elif op == 3:  # command_length changed
        b[0:4] = struct.pack(">I", rng.choice([0, 15, 16, len(b) - 1, len(b) + 1, 1 << 31]))
    elif op == 4:  # a body byte that may be a length (sm_length, TLV length, count)
        i = rng.randrange(16, len(b)) if len(b) > 16 else 0
        b[i] = rng.choice([0, 1, 0xFE, 0xFF, rng.randrange(256)])
    else:  # command_id or status changed
        b[4:8] = struct.pack(">I", rng.choice([int(c) for c in CommandId] + [7, 0x80000077]))
        b[8:12] = struct.pack(">I", rng.choice([0, 0, 0x58, 0xFFFFFFFF]))
    return bytes(b)


def _check_decode(frame: bytes) -> None:
    try:
        pdu = decode(frame)
    except SmppError as e:
        assert isinstance(e.command_status, CommandStatus)
        return
    assert encode(pdu) == frame


def _check_stream(rng: random.Random, stream: bytes) -> None:
    reader = PduReader(pdu_length_max=PDU_LENGTH_MAX)
    pos = 0
    steps = 0
    while pos < len(stream):
        steps += 1
        assert steps <= len(stream) + 1  # bounded: every step consumes input
        chunk = stream[pos : pos + rng.randint(1, 300)]
        pos += len(chunk)
        try:
            reader.feed(chunk)
        except SmppError as e:
            assert e.command_status == CommandStatus.ESME_RINVCMDLEN
            assert reader.buffered_octets == 0
            return
        assert reader.buffered_octets <= PDU_LENGTH_MAX + len(chunk)
        for _ in range(len(stream)):  # bounded drain
            try:
                pdu = reader.next_pdu()
            except SmppError as e:
                if (
                    e.command_status == CommandStatus.ESME_RINVCMDLEN
                    and reader.buffered_octets == 0
                ):
                    return
                continue
            if pdu is None:
                break
        assert reader.buffered_octets <= PDU_LENGTH_MAX


def test_mutated_valid_encodings() -> None:
    rng = random.Random(0x5EED)
    seeds = _seeds(rng)
    for _ in range(15000):
        _check_decode(_mutate(rng, rng.choice(seeds)))


def test_mutated_streams_through_reader() -> None:
    rng = random.Random(0xF00D)
    seeds = _seeds(rng)
    for _ in range(400):
        frames = [rng.choice(seeds) for _ in range(rng.randint(1, 6))]
        frames = [_mutate(rng, f) if rng.random() < 0.4 else f for f in frames]
        _check_stream(rng, b"".join(frames))


def test_random_bytes_streams() -> None:
    rng = random.Random(0xBAD)
    for _ in range(300):
        _check_stream(rng, rng.randbytes(rng.randrange(1, 400)))


@settings(max_examples=400, deadline=None)
@given(st.binary(min_size=0, max_size=200))
def test_random_frames_with_consistent_length(body: bytes) -> None:
    for cid in (CommandId.SUBMIT_SM, CommandId.SUBMIT_MULTI, CommandId.BIND_TRANSCEIVER_RESP):
        _check_decode(struct.pack(">IIII", 16 + len(body), cid, 0, 1) + body)


def test_oversized_command_length_refused_before_body() -> None:
    reader = PduReader(pdu_length_max=PDU_LENGTH_MAX)
    header = struct.pack(">IIII", 1_000_000_000, CommandId.SUBMIT_SM, 0, 1)
    try:
        reader.feed(header)
    except SmppError as e:
        assert e.command_status == CommandStatus.ESME_RINVCMDLEN
        assert (e.command_id, e.sequence_number) == (CommandId.SUBMIT_SM, 1)
    else:
        raise AssertionError("oversized command_length accepted")
    assert reader.buffered_octets == 0
