"""One golden table drives encode and decode; each decode also goes through PduReader."""

from __future__ import annotations

import pytest
from smpp_golden import GOLDEN

from adressat.smpp.codec import PduReader, decode, encode
from adressat.smpp.pdus import Pdu

IDS = [name for name, _, _ in GOLDEN]


@pytest.mark.parametrize(("name", "pdu", "wire"), GOLDEN, ids=IDS)
def test_encode(name: str, pdu: Pdu, wire: bytes) -> None:
    assert encode(pdu) == wire


@pytest.mark.parametrize(("name", "pdu", "wire"), GOLDEN, ids=IDS)
def test_decode(name: str, pdu: Pdu, wire: bytes) -> None:
    assert decode(wire) == pdu


@pytest.mark.parametrize(("name", "pdu", "wire"), GOLDEN, ids=IDS)
def test_reader_one_byte_at_a_time(name: str, pdu: Pdu, wire: bytes) -> None:
    reader = PduReader()
    got = []
    for i in range(len(wire)):
        reader.feed(wire[i : i + 1])
        got.extend(reader)
        if i < len(wire) - 1:
            assert got == []
    assert got == [pdu]
    assert reader.buffered_octets == 0


@pytest.mark.parametrize(("name", "pdu", "wire"), GOLDEN, ids=IDS)
def test_reader_with_trailing_bytes_of_next_pdu(name: str, pdu: Pdu, wire: bytes) -> None:
    following = GOLDEN[0][2]
    reader = PduReader()
    reader.feed(wire + following[:5])
    assert reader.next_pdu() == pdu
    assert reader.next_pdu() is None
    assert reader.buffered_octets == 5
    reader.feed(following[5:])
    assert reader.next_pdu() == GOLDEN[0][1]


def test_reader_whole_stream_in_one_chunk() -> None:
    reader = PduReader()
    reader.feed(b"".join(w for _, _, w in GOLDEN))
    assert list(reader) == [p for _, p, _ in GOLDEN]


def test_golden_covers_every_command() -> None:
    from adressat.smpp.schema import BODIES

    covered = {int(p.command_id) for _, p, _ in GOLDEN}
    # the remaining ones are covered by the schema-derived round trips
    assert len(covered) >= 17
    assert covered <= {int(c) for c in BODIES}
