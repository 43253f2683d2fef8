"""Segmentation, UDH parsing and reassembly."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adressat.sms.encodings import (
    GSM7_BASIC,
    GSM7_ESCAPE,
    GSM7_EXTENSION,
    Alphabet,
    EncodingError,
    choose_alphabet,
    decode_text,
    encode_text,
    fill_bits_for_udh,
    pack_septets,
)
from adressat.sms.segment import (
    Concat,
    ConcatInfo,
    Reassembler,
    ReassemblyConflict,
    ReassemblyError,
    ReassemblyFull,
    Segment,
    SegmentationError,
    UdhError,
    build_udh,
    concat_info_from_udh,
    concat_udh,
    parse_udh,
    part_limit,
    segment_payload,
    segment_text,
)

GSM_CHARS = [c for i, c in enumerate(GSM7_BASIC) if i != GSM7_ESCAPE] + list(
    GSM7_EXTENSION.values()
)
EXT = list(GSM7_EXTENSION.values())
SECRET = "hunter2-secret-pin-4711"


# Texts long enough to need many parts; extension characters and astral characters are
# weighted up so that part boundaries often fall on them.
def _short_or_long(
    chars: st.SearchStrategy[str], boundary: int, long_max: int
) -> st.SearchStrategy[str]:
    """Half short texts, half texts around and well past the single-part limit."""
    return st.one_of(
        st.text(alphabet=chars, max_size=boundary),
        st.text(alphabet=chars, min_size=boundary - 10, max_size=long_max),
    )


gsm_text = _short_or_long(st.one_of(st.sampled_from(GSM_CHARS), st.sampled_from(EXT)), 160, 1500)
ucs2_text = _short_or_long(
    st.one_of(
        st.characters(blacklist_categories=("Cs",)),
        st.characters(min_codepoint=0x1F600, max_codepoint=0x1F64F),
    ),
    70,
    400,
)
latin1_text = _short_or_long(st.characters(max_codepoint=0xFF), 140, 700)
concats = st.sampled_from(list(Concat))


def _reference(concat: Concat, data: st.DataObject) -> int:
    return data.draw(st.integers(0, 0xFF if concat is Concat.UDH8 else 0xFFFF))


def _check_parts(segments: list[Segment], alphabet: Alphabet, concat: Concat) -> None:
    if len(segments) == 1 and segments[0].concat is None:
        assert segments[0].udh == b""
        assert len(segments[0].payload) <= part_limit(alphabet, None)
        return
    total = len(segments)
    for seqnum, seg in enumerate(segments, start=1):
        assert seg.concat is not None
        assert (seg.concat.total, seg.concat.seqnum) == (total, seqnum)
        assert len(seg.payload) <= part_limit(alphabet, concat, seg.concat.reference)
        # each part decodes on its own: no escape or surrogate pair is split
        if alphabet is not Alphabet.BINARY:
            decode_text(seg.payload, alphabet)
        if concat is Concat.SAR:
            assert seg.udh == b"" and not seg.udhi
            air_udh = concat_udh(seg.concat, ref16=seg.concat.reference > 0xFF)
        else:
            assert seg.udhi
            air_udh = seg.udh
            elements, rest = parse_udh(seg.short_message)
            assert rest == seg.payload
            assert concat_info_from_udh(elements) == seg.concat
        # what goes on the air fits the 140-octet user data
        if alphabet is Alphabet.GSM7:
            packed = pack_septets(seg.payload, fill_bits_for_udh(len(air_udh)))
            assert len(air_udh) + len(packed) <= 140
        else:
            assert len(air_udh) + len(seg.payload) <= 140


def _reassemble(segments: list[Segment], order: list[int], now: float = 0.0) -> bytes:
    reassembler = Reassembler()
    result: bytes | None = None
    for i in order:
        seg = segments[i]
        if seg.udh:
            elements, payload = parse_udh(seg.short_message)
            info = concat_info_from_udh(elements)
        else:
            info, payload = seg.concat, seg.payload
        assert info is not None
        out = reassembler.add(("+46700000001", "+46700000002"), info, payload, now)
        if out is not None:
            assert result is None, "completed twice"
            result = out
    assert result is not None
    assert len(reassembler) == 0
    return result


def _round_trip(text: str, alphabet: Alphabet, concat: Concat, data: st.DataObject) -> None:
    segments = segment_text(text, alphabet, concat=concat, reference=_reference(concat, data))
    _check_parts(segments, alphabet, concat)
    if len(segments) == 1 and segments[0].concat is None:
        assert decode_text(segments[0].payload, alphabet) == text
        return
    order = data.draw(st.permutations(range(len(segments))))
    # exact duplicates of parts already seen, anywhere before the last new part
    dups = data.draw(st.lists(st.sampled_from(order[:-1]), max_size=5))
    head = data.draw(st.permutations(list(order[:-1]) + dups))
    order = [*head, order[-1]]
    assert decode_text(_reassemble(segments, order), alphabet) == text


@settings(max_examples=150, deadline=None)
@given(gsm_text, concats, st.data())
def test_gsm7_segment_reassemble_round_trip(text: str, concat: Concat, data: st.DataObject) -> None:
    _round_trip(text, Alphabet.GSM7, concat, data)


@settings(max_examples=150, deadline=None)
@given(ucs2_text, concats, st.data())
def test_ucs2_segment_reassemble_round_trip(text: str, concat: Concat, data: st.DataObject) -> None:
    _round_trip(text, Alphabet.UCS2, concat, data)


@settings(max_examples=100, deadline=None)
@given(latin1_text, concats, st.data())
def test_latin1_segment_reassemble_round_trip(
    text: str, concat: Concat, data: st.DataObject
) -> None:
    _round_trip(text, Alphabet.LATIN1, concat, data)


@settings(max_examples=100, deadline=None)
@given(_short_or_long(st.characters(), 70, 500), concats, st.data())
def test_any_text_with_chosen_alphabet_round_trips(
    text: str, concat: Concat, data: st.DataObject
) -> None:
    text = "".join(c for c in text if not 0xD800 <= ord(c) <= 0xDFFF)
    _round_trip(text, choose_alphabet(text), concat, data)


@settings(max_examples=100, deadline=None)
@given(
    st.one_of(st.binary(max_size=140), st.binary(min_size=130, max_size=800)), concats, st.data()
)
def test_binary_segment_reassemble_round_trip(
    payload: bytes, concat: Concat, data: st.DataObject
) -> None:
    segments = segment_payload(
        payload, Alphabet.BINARY, concat=concat, reference=_reference(concat, data)
    )
    _check_parts(segments, Alphabet.BINARY, concat)
    order = data.draw(st.permutations(range(len(segments))))
    if len(segments) == 1 and segments[0].concat is None:
        assert segments[0].payload == payload
    else:
        assert _reassemble(segments, order) == payload


# --- exact limits ------------------------------------------------------------------------


def _sizes(segments: list[Segment]) -> list[int]:
    return [len(s.payload) for s in segments]


def test_gsm7_160_is_one_part_161_is_two() -> None:
    one = segment_text("a" * 160, Alphabet.GSM7, concat=Concat.UDH8, reference=1)
    assert _sizes(one) == [160] and one[0].udh == b"" and one[0].concat is None
    two = segment_text("a" * 161, Alphabet.GSM7, concat=Concat.UDH8, reference=1)
    assert _sizes(two) == [153, 8]
    assert [s.udh.hex() for s in two] == ["050003010201", "050003010202"]


def test_gsm7_extension_chars_count_two_septets() -> None:
    assert _sizes(segment_text("€" * 80, Alphabet.GSM7, concat=Concat.UDH8, reference=1)) == [160]
    assert _sizes(segment_text("a" + "€" * 80, Alphabet.GSM7, concat=Concat.UDH8, reference=1)) == [
        153,
        8,
    ]


def test_gsm7_16bit_reference_limits() -> None:
    segs = segment_text("a" * 161, Alphabet.GSM7, concat=Concat.UDH16, reference=0x1234)
    assert _sizes(segs) == [152, 9]
    assert segs[0].udh.hex() == "06080412340201"


def test_escape_at_the_153_boundary_moves_to_the_next_part() -> None:
    text = "a" * 152 + "€" + "b" * 10
    segs = segment_text(text, Alphabet.GSM7, concat=Concat.UDH8, reference=9)
    assert _sizes(segs) == [152, 12]
    assert segs[1].payload.startswith(b"\x1b\x65")
    text = "a" * 151 + "€" + "b" * 10  # ends exactly at 153: stays
    assert _sizes(segment_text(text, Alphabet.GSM7, concat=Concat.UDH8, reference=9)) == [153, 10]


def test_ucs2_70_is_one_part_71_is_two() -> None:
    one = segment_text("Ж" * 70, Alphabet.UCS2, concat=Concat.UDH8, reference=1)
    assert _sizes(one) == [140] and one[0].concat is None
    two = segment_text("Ж" * 71, Alphabet.UCS2, concat=Concat.UDH8, reference=1)
    assert _sizes(two) == [134, 8]  # 67 + 4 code units
    three = segment_text("Ж" * 71, Alphabet.UCS2, concat=Concat.UDH16, reference=1)
    assert _sizes(three) == [132, 10]  # 66 + 5


def test_emoji_at_the_67_boundary_is_not_split() -> None:
    text = "Ж" * 66 + "😀" + "Ж" * 10  # the pair would take units 67 and 68
    segs = segment_text(text, Alphabet.UCS2, concat=Concat.UDH8, reference=1)
    assert _sizes(segs) == [132, 24]
    assert segs[1].payload[:4] == "😀".encode("utf-16-be")
    text = "Ж" * 65 + "😀" + "Ж" * 10  # the pair ends exactly on unit 67: stays
    assert _sizes(segment_text(text, Alphabet.UCS2, concat=Concat.UDH8, reference=1)) == [134, 20]
    # 35 emoji = 70 code units: one part
    assert _sizes(segment_text("😀" * 35, Alphabet.UCS2, concat=Concat.SAR, reference=1)) == [140]


def test_eight_bit_limits() -> None:
    for alphabet in (Alphabet.LATIN1, Alphabet.BINARY):
        payload = b"x" * 141
        assert _sizes(segment_payload(b"x" * 140, alphabet, concat=Concat.SAR, reference=5)) == [
            140
        ]
        assert _sizes(segment_payload(payload, alphabet, concat=Concat.UDH8, reference=5)) == [
            134,
            7,
        ]
        assert _sizes(segment_payload(payload, alphabet, concat=Concat.UDH16, reference=5)) == [
            133,
            8,
        ]


def test_sar_sizes_for_the_reference_width_on_the_air() -> None:
    small = segment_text("a" * 161, Alphabet.GSM7, concat=Concat.SAR, reference=255)
    big = segment_text("a" * 161, Alphabet.GSM7, concat=Concat.SAR, reference=256)
    assert _sizes(small) == [153, 8] and _sizes(big) == [152, 9]
    assert all(s.udh == b"" for s in small + big)
    assert big[1].concat == ConcatInfo(reference=256, total=2, seqnum=2)


def test_255_parts_allowed_256_raise() -> None:
    assert (
        len(segment_payload(b"x" * 134 * 255, Alphabet.BINARY, concat=Concat.UDH8, reference=1))
        == 255
    )
    with pytest.raises(SegmentationError):
        segment_payload(b"x" * (134 * 255 + 1), Alphabet.BINARY, concat=Concat.UDH8, reference=1)
    with pytest.raises(SegmentationError):
        segment_text("a" * 161, Alphabet.GSM7, concat=Concat.UDH8, reference=1, parts_max=1)
    # a huge input is refused without building every part
    with pytest.raises(SegmentationError):
        segment_payload(b"x" * 10_000_000, Alphabet.BINARY, concat=Concat.SAR, reference=1)


def test_reference_range_is_checked() -> None:
    with pytest.raises(SegmentationError):
        segment_text("a" * 200, Alphabet.GSM7, concat=Concat.UDH8, reference=256)
    with pytest.raises(SegmentationError):
        segment_text("a" * 200, Alphabet.GSM7, concat=Concat.UDH16, reference=65536)
    with pytest.raises(SegmentationError):
        segment_text("a", Alphabet.GSM7, concat=Concat.SAR, reference=-1)


def test_empty_text_is_one_empty_part() -> None:
    assert segment_text("", Alphabet.UCS2, concat=Concat.UDH8, reference=0) == [Segment(b"")]


def test_segment_payload_validates_encoded_text() -> None:
    with pytest.raises(EncodingError):
        segment_payload(b"a" * 200 + b"\x1b", Alphabet.GSM7, concat=Concat.UDH8, reference=1)
    with pytest.raises(EncodingError):
        segment_payload(b"\xd8\x3d" * 100, Alphabet.UCS2, concat=Concat.UDH8, reference=1)
    with pytest.raises(EncodingError) as info:
        segment_text(SECRET + "😀", Alphabet.GSM7, concat=Concat.UDH8, reference=1)
    assert SECRET not in str(info.value)


# --- UDH ---------------------------------------------------------------------------------


def test_parse_udh_golden() -> None:
    data = bytes.fromhex("0500030A0302") + b"hello"
    elements, payload = parse_udh(data)
    assert elements == [(0x00, bytes.fromhex("0A0302"))]
    assert payload == b"hello"
    assert concat_info_from_udh(elements) == ConcatInfo(10, 3, 2)
    # port addressing (IEI 0x05) then a 16-bit concatenation element
    data = bytes.fromhex("0C0504158115810804BEEF0201") + b"x"
    elements, payload = parse_udh(data)
    assert [iei for iei, _ in elements] == [0x05, 0x08]
    assert concat_info_from_udh(elements) == ConcatInfo(0xBEEF, 2, 1)
    assert concat_info_from_udh(parse_udh(bytes.fromhex("0405021581"))[0]) is None
    assert parse_udh(b"\x00abc") == ([], b"abc")
    assert build_udh([(0x05, bytes.fromhex("15811581"))]) == bytes.fromhex("06050415811581")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        bytes.fromhex("05000301"),  # UDHL 5 but 3 octets follow
        bytes.fromhex("FF") + b"abc",
        bytes.fromhex("0300050102") + b"tail",  # IE length 5 past the 3-octet UDH
        bytes.fromhex("0100") + b"tail",  # IE header truncated
    ],
)
def test_parse_udh_rejects_lengths_beyond_the_data(data: bytes) -> None:
    with pytest.raises(UdhError) as info:
        parse_udh(data + SECRET.encode() if data[:1] == b"\xff" else data)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    "elements",
    [
        [(0x00, bytes.fromhex("0A0300"))],  # seqnum 0
        [(0x00, bytes.fromhex("0A0304"))],  # seqnum > total
        [(0x00, bytes.fromhex("0A0000"))],  # total 0
        [(0x00, bytes.fromhex("0A03"))],  # short element
        [(0x08, bytes.fromhex("0A0302"))],  # 16-bit element of 3 octets
    ],
)
def test_bad_concatenation_elements(elements: list[tuple[int, bytes]]) -> None:
    with pytest.raises(UdhError):
        concat_info_from_udh(elements)


# --- reassembler -------------------------------------------------------------------------


def test_reassembler_out_of_order_duplicates_and_keys() -> None:
    r = Reassembler()
    assert r.add("A", ConcatInfo(7, 3, 3), b"c", now=0) is None
    assert r.add("B", ConcatInfo(7, 3, 1), b"X", now=0) is None  # other sender, same ref
    assert r.add("A", ConcatInfo(7, 3, 1), b"a", now=1) is None
    assert r.add("A", ConcatInfo(7, 3, 1), b"a", now=2) is None  # exact duplicate
    assert r.duplicates_ignored == 1
    assert r.add("A", ConcatInfo(7, 2, 1), b"other", now=2) is None  # other total: other group
    assert len(r) == 3
    assert r.add("A", ConcatInfo(7, 3, 2), b"b", now=3) == b"abc"
    assert len(r) == 2
    assert r.add("A", ConcatInfo(9, 1, 1), b"single", now=3) == b"single"
    assert len(r) == 2


def test_reassembler_conflicting_duplicate_is_an_error() -> None:
    r = Reassembler()
    r.add("A", ConcatInfo(1, 2, 1), SECRET.encode(), now=0)
    with pytest.raises(ReassemblyConflict) as info:
        r.add("A", ConcatInfo(1, 2, 1), b"other-bytes", now=0)
    assert SECRET not in str(info.value) and "other-bytes" not in str(info.value)
    # the first payload is kept
    assert r.add("A", ConcatInfo(1, 2, 2), b"!", now=0) == SECRET.encode() + b"!"


def test_reassembler_is_bounded_and_expires_with_time_passed_in() -> None:
    r = Reassembler(groups_max=2, group_age_s_max=60.0, part_octets_max=10)
    r.add("A", ConcatInfo(1, 2, 1), b"a", now=100.0)
    r.add("B", ConcatInfo(1, 2, 1), b"b", now=130.0)
    with pytest.raises(ReassemblyFull):
        r.add("C", ConcatInfo(1, 2, 1), b"c", now=130.0)
    # a part of an existing group is still taken when full
    assert r.add("B", ConcatInfo(1, 2, 2), b"B", now=131.0) == b"bB"
    r.add("B", ConcatInfo(1, 2, 1), b"b", now=131.0)
    assert r.next_expiry() == 160.0
    assert r.expire(now=159.9) == []
    assert r.expire(now=160.0) == [("A", 1, 2)]
    assert len(r) == 1
    with pytest.raises(ReassemblyError):
        r.add("D", ConcatInfo(1, 2, 1), b"x" * 11, now=0)
    # a part arriving for an expired (not yet dropped) group starts a new group
    r2 = Reassembler(group_age_s_max=10.0)
    r2.add("A", ConcatInfo(1, 2, 1), b"old", now=0.0)
    assert r2.add("A", ConcatInfo(1, 2, 2), b"2", now=10.0) is None
    assert r2.add("A", ConcatInfo(1, 2, 1), b"1", now=11.0) == b"12"
    assert r2.next_expiry() is None


def test_concat_info_validates() -> None:
    for args in [(0, 0, 1), (0, 2, 0), (0, 2, 3), (-1, 2, 1), (65536, 2, 1), (0, 256, 1)]:
        with pytest.raises(ValueError):
            ConcatInfo(*args)


def test_encoded_parts_join_to_the_encoded_text() -> None:
    text = "Hej! {€} " * 50
    segs = segment_text(text, Alphabet.GSM7, concat=Concat.UDH16, reference=300)
    assert b"".join(s.payload for s in segs) == encode_text(text, Alphabet.GSM7)
