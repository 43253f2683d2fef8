"""Property round trips for every PDU type, with values drawn within the schema's limits."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from smpp_strategies import pdu_strategy

from adressat.smpp.codec import PduReader, decode, encode
from adressat.smpp.constants import CommandId
from adressat.smpp.schema import BODIES


@pytest.mark.parametrize("cid", list(BODIES), ids=lambda c: c.spec_name)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_roundtrip(cid: CommandId, data: st.DataObject) -> None:
    pdu = data.draw(pdu_strategy(cid))
    wire = encode(pdu)
    back = decode(wire)
    assert back == pdu
    assert encode(back) == wire


@settings(max_examples=40, deadline=None)
@given(
    pdus=st.lists(st.sampled_from(list(BODIES)).flatmap(pdu_strategy), min_size=1, max_size=6),
    cuts=st.lists(st.integers(1, 64), max_size=20),
)
def test_reader_reassembles_any_chunking(pdus: list, cuts: list[int]) -> None:  # type: ignore[type-arg]
    stream = b"".join(encode(p) for p in pdus)
    reader = PduReader()
    got = []
    pos = 0
    for cut in cuts:
        reader.feed(stream[pos : pos + cut])
        pos += cut
        got.extend(reader)
    reader.feed(stream[pos:])
    got.extend(reader)
    assert got == pdus
