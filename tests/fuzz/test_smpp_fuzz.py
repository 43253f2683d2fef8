"""Bounded fuzzing of the SMPP codec: decoded or SmppError, nothing else, bounded memory.

Whenever a mutated frame decodes, re-encoding it must give the same bytes (byte-exactness),
and whenever it does not, the error carries a CommandStatus and the answer the session would
send for it (``error_response``) encodes. Two kinds of campaign: a seeded random mutator
(fast, many cases) and hypothesis-driven edits of schema-drawn PDUs (shrinks to a minimal
frame when it finds something). The long, coverage-guided run: scripts/fuzz_long.py.
"""

from __future__ import annotations

import random
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from smpp_strategies import ANY_PDU

from adressat.smpp.codec import PduReader, decode, encode
from adressat.smpp.constants import CommandId, CommandStatus
from adressat.smpp.errors import SmppError
from adressat.smpp.pdus import Pdu, error_response
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
        assert e.command_status != CommandStatus.ESME_ROK
        answer = decode(encode(error_response(e)))  # the answer always goes out
        assert answer.is_response and answer.command_status == e.command_status
        return
    wire = encode(pdu)
    assert wire == frame
    assert decode(wire) == pdu  # stable: encode(decode(x)) decodes to the same PDU


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


# -- hypothesis-driven edits of schema-drawn PDUs ---------------------------------------------

_EDIT = st.tuples(
    st.sampled_from(["set", "insert", "delete", "length", "header"]),
    st.integers(0, 1 << 16),  # position, taken modulo the frame's length
    st.integers(0, 0xFF),
    st.sampled_from([0, 1, 15, 16, 17, 0xFF, 0xFFFF, 1 << 31, 0xFFFFFFFF]),
)


def _edit(frame: bytes, edits: list[tuple[str, int, int, int]], keep_length: bool) -> bytes:
    b = bytearray(frame)
    for op, pos, byte, word in edits:
        i = pos % (len(b) + 1)
        if op == "set" and b:
            b[i % len(b)] = byte
        elif op == "insert":
            b[i:i] = bytes([byte])
        elif op == "delete" and b:
            del b[i % len(b)]
        elif op == "length" and len(b) >= 4:
            b[0:4] = struct.pack(">I", word)
        elif op == "header" and len(b) >= 16:
            slot = 4 + 4 * (pos % 3)  # command_id, command_status or sequence_number
            b[slot : slot + 4] = struct.pack(">I", word if pos % 2 else byte)
    if keep_length and len(b) >= 4:
        b[0:4] = struct.pack(">I", len(b))
    return bytes(b)


@settings(max_examples=1500, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(pdu=ANY_PDU, edits=st.lists(_EDIT, min_size=1, max_size=6), keep_length=st.booleans())
def test_edited_schema_pdus_decode_or_refuse_with_a_status(
        pdu: Pdu, edits: list[tuple[str, int, int, int]], keep_length: bool) -> None:
    _check_decode(_edit(encode(pdu), edits, keep_length))


@settings(max_examples=200, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(pdus=st.lists(ANY_PDU, min_size=1, max_size=5),
       edits=st.lists(_EDIT, max_size=4), cuts=st.lists(st.integers(1, 97), max_size=12))
def test_edited_streams_keep_the_reader_bounded(
        pdus: list[Pdu], edits: list[tuple[str, int, int, int]], cuts: list[int]) -> None:
    stream = _edit(b"".join(encode(p) for p in pdus), edits, keep_length=False)
    _check_stream(random.Random(len(stream)), stream)
    # the same stream in the cuts hypothesis chose: every frame that decodes is byte-exact
    reader = PduReader(pdu_length_max=PDU_LENGTH_MAX)
    pos = 0
    for cut in [*cuts, len(stream)]:
        chunk, pos = stream[pos : pos + cut], pos + cut
        try:
            reader.feed(chunk)
        except SmppError as e:
            assert e.command_status == CommandStatus.ESME_RINVCMDLEN
            return
        for _ in range(len(stream) + 1):
            try:
                frame = reader.next_frame()
            except SmppError as e:
                assert e.command_status == CommandStatus.ESME_RINVCMDLEN
                return
            if frame is None:
                break
            _check_decode(frame)
