"""build_parts (TP-UD for the air), the legacy TP-MR of messages attempted before schema v9
and the error code table."""

from __future__ import annotations

import pytest

from adressat.core.model import Message
from adressat.delivery import DeliveryError, build_parts, legacy_reference
from adressat.delivery.netsim_adapter import ContentError
from adressat.sms import Alphabet, encode_text, pack_septets

MID = "0123456789abcdef0123456789abcdef"


def test_short_gsm7_is_packed() -> None:
    body = encode_text("hello", Alphabet.GSM7)
    assert build_parts(MID, body, 0, 0) == [pack_septets(body)]


def test_160_septets_is_one_part_161_is_two() -> None:
    assert len(build_parts(MID, b"a" * 160, 0, 0)) == 1
    assert len(build_parts(MID, b"a" * 160, 0, 0)[0]) == 140
    parts = build_parts(MID, b"a" * 161, 0, 0)
    assert len(parts) == 2 and all(len(p) <= 140 for p in parts)
    assert parts[0][:3] == bytes((5, 0, 3))  # concatenation UDH, 8-bit reference


def test_eight_bit_and_ucs2_segmented_with_udh() -> None:
    assert build_parts(MID, b"\x01" * 140, 4, 0) == [b"\x01" * 140]
    parts = build_parts(MID, b"\x01" * 300, 4, 0)
    assert [len(p) for p in parts] == [140, 140, 38]
    ucs2 = encode_text("ж" * 100, Alphabet.UCS2)
    parts = build_parts(MID, ucs2, 8, 0)
    assert len(parts) == 2 and sum(len(p) - 6 for p in parts) == 200


def test_udhi_content_keeps_its_header_and_packs_after_fill_bits() -> None:
    udh = bytes((5, 0, 3, 0x42, 2, 1))
    body = encode_text("part one", Alphabet.GSM7)
    [ud] = build_parts(MID, udh + body, 0, 0x40)
    assert ud[:6] == udh
    assert ud[6:] == pack_septets(body, 1)
    with pytest.raises(ContentError):
        build_parts(MID, bytes((9, 0, 3)) + body, 0, 0x40)  # UDHL past the data
    with pytest.raises(ContentError):
        build_parts(MID, udh + b"a" * 200, 0, 0x40)  # a part that does not fit


def test_invalid_content_refused() -> None:
    with pytest.raises(ContentError):
        build_parts(MID, b"\x80abc", 0, 0)  # not septets
    with pytest.raises(ContentError):
        build_parts(MID, b"x" * 141, 0x05, 0)  # unsupported coding, too long to pass through
    assert build_parts(MID, b"x" * 20, 0x05, 0) == [b"x" * 20]


def test_a_stamped_message_has_no_legacy_reference() -> None:
    msg = Message(MID, "acme", "123", "46701000001", b"x", 0.0, 60.0, reference=254, scts=7)
    assert [legacy_reference(msg, i) for i in range(3)] == [None] * 3


def test_legacy_reference_from_the_stored_reference_distinct_per_part() -> None:
    # first attempted under schema v4..v8: its resends keep the TP-MR it was known by
    msg = Message(MID, "acme", "123", "46701000001", b"x", 0.0, 60.0, reference=254)
    assert [legacy_reference(msg, i) for i in range(4)] == [254, 255, 0, 1]


def test_legacy_reference_without_a_stored_one_is_derived_from_the_id() -> None:
    # a message first attempted before schema v4: its resends keep the old derived TP-MR
    msg = Message(MID, "acme", "123", "46701000001", b"x", 0.0, 60.0)
    refs = [legacy_reference(msg, i) for i in range(5)]
    assert refs == [legacy_reference(msg, i) for i in range(5)]
    assert len(set(refs)) == 5 and all(r is not None and 0 <= r <= 255 for r in refs)


def test_error_table() -> None:
    values = [int(e) for e in DeliveryError]
    assert len(values) == len(set(values))
    assert all(0 <= v <= 999 for v in values)  # the receipt's err: field has three digits
    assert all(e.description for e in DeliveryError)
    assert DeliveryError.OK == 0
    assert DeliveryError.ABSENT_SUBSCRIBER == 1
    assert DeliveryError.TAG_MISMATCH == 30
    assert DeliveryError.IDENTITY_MISMATCH == 31
    assert DeliveryError.IMSI_CONFLICT == 32
