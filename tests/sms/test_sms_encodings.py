"""GSM 03.38, UCS-2, Latin-1, IA5 and data_coding: round trips, golden values, strictness."""

from __future__ import annotations

import gsm0338  # noqa: F401  (registers the "gsm03.38" codec)
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adressat.sms.encodings import (
    GSM7_BASIC,
    GSM7_ESCAPE,
    GSM7_EXTENSION,
    Alphabet,
    EncodingError,
    UnsupportedDataCoding,
    ascii_decode,
    ascii_encode,
    choose_alphabet,
    codec_for_data_coding,
    data_coding_for,
    decode_text,
    encode_text,
    fill_bits_for_udh,
    gsm7_decode,
    gsm7_encode,
    gsm7_is_encodable,
    gsm7_septet_length,
    latin1_decode,
    latin1_encode,
    pack_septets,
    packed_gsm7_decode,
    packed_gsm7_encode,
    ucs2_decode,
    ucs2_encode,
    unpack_septets,
)

GSM_CHARS = [c for i, c in enumerate(GSM7_BASIC) if i != GSM7_ESCAPE] + list(
    GSM7_EXTENSION.values()
)
gsm_text = st.text(alphabet=st.sampled_from(GSM_CHARS), max_size=400)
any_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200)
astral_text = st.lists(
    st.one_of(
        st.characters(blacklist_categories=("Cs",)),
        st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF, blacklist_categories=("Cs",)),
    ),
    max_size=100,
).map("".join)
SECRET = "hunter2-secret-pin-4711"


# --- cross-check against the gsm0338 package -------------------------------------------


def test_basic_table_agrees_with_gsm0338_both_ways() -> None:
    assert len(GSM7_BASIC) == 128
    for septet in range(128):
        if septet == GSM7_ESCAPE:
            continue
        ch = GSM7_BASIC[septet]
        assert ch.encode("gsm03.38") == bytes((septet,)) == gsm7_encode(ch)
        assert bytes((septet,)).decode("gsm03.38") == ch == gsm7_decode(bytes((septet,)))


def test_extension_table_agrees_with_gsm0338_both_ways() -> None:
    assert set(GSM7_EXTENSION.values()) == set("\f^{}\\[~]|€")
    for septet, ch in GSM7_EXTENSION.items():
        wire = bytes((GSM7_ESCAPE, septet))
        assert ch.encode("gsm03.38") == wire == gsm7_encode(ch)
        assert wire.decode("gsm03.38") == ch == gsm7_decode(wire)


def test_whole_alphabet_in_one_string_agrees_with_gsm0338() -> None:
    text = "".join(GSM_CHARS)
    assert gsm7_encode(text) == text.encode("gsm03.38")
    assert gsm7_decode(text.encode("gsm03.38")) == text


@settings(max_examples=200)
@given(gsm_text)
def test_gsm7_agrees_with_gsm0338_on_random_text(text: str) -> None:
    assert gsm7_encode(text) == text.encode("gsm03.38")


def test_notable_characters() -> None:
    assert gsm7_encode("@") == b"\x00"
    assert gsm7_encode("€") == b"\x1b\x65"
    assert gsm7_encode("Ç") == b"\x09"  # 23.038: capital C with cedilla at 0x09
    assert gsm7_septet_length("a{b}") == 6
    assert not gsm7_is_encodable("\x1b")  # the escape is not a character
    assert not gsm7_is_encodable("ç")


# --- round trips -------------------------------------------------------------------------


@settings(max_examples=300)
@given(gsm_text)
def test_gsm7_unpacked_round_trip(text: str) -> None:
    data = gsm7_encode(text)
    assert all(b <= 0x7F for b in data)
    assert gsm7_decode(data) == text


@settings(max_examples=300)
@given(gsm_text, st.integers(0, 6))
def test_gsm7_packed_round_trip(text: str, fill_bits: int) -> None:
    packed, count = packed_gsm7_encode(text, fill_bits)
    assert count == gsm7_septet_length(text)
    assert len(packed) == (0 if count == 0 else (fill_bits + 7 * count + 7) // 8)
    assert packed_gsm7_decode(packed, count, fill_bits) == text


@settings(max_examples=500)
@given(st.lists(st.integers(0, 0x7F), max_size=300).map(bytes), st.integers(0, 6))
def test_pack_unpack_any_septets_any_fill(septets: bytes, fill_bits: int) -> None:
    packed = pack_septets(septets, fill_bits)
    assert unpack_septets(packed, len(septets), fill_bits) == septets
    if septets:
        assert packed[0] & ((1 << fill_bits) - 1) == 0  # the fill bits are zero


@settings(max_examples=300)
@given(astral_text)
def test_ucs2_round_trip_with_astral(text: str) -> None:
    data = ucs2_encode(text)
    assert len(data) == 2 * sum(2 if ord(c) > 0xFFFF else 1 for c in text)
    assert ucs2_decode(data) == text


@settings(max_examples=200)
@given(st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=200))
def test_latin1_round_trip(text: str) -> None:
    assert latin1_decode(latin1_encode(text)) == text


@settings(max_examples=200)
@given(st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=200))
def test_ascii_round_trip(text: str) -> None:
    assert ascii_decode(ascii_encode(text)) == text


@settings(max_examples=200)
@given(any_text)
def test_choose_alphabet_always_encodes_and_round_trips(text: str) -> None:
    alphabet = choose_alphabet(text)
    assert alphabet in (Alphabet.GSM7, Alphabet.UCS2)
    assert (alphabet is Alphabet.GSM7) == gsm7_is_encodable(text)
    assert decode_text(encode_text(text, alphabet), alphabet) == text


# --- golden values -----------------------------------------------------------------------


def test_hellohello_packs_to_the_standard_example() -> None:
    packed, count = packed_gsm7_encode("hellohello")
    assert packed.hex().upper() == "E8329BFD4697D9EC37"
    assert count == 10
    assert packed_gsm7_decode(bytes.fromhex("E8329BFD4697D9EC37"), 10) == "hellohello"


def test_pack_with_fill_bits_golden() -> None:
    # After a 6-octet concatenation UDH, 1 fill bit: "A" (0x41) shifted left by one.
    assert fill_bits_for_udh(6) == 1
    assert fill_bits_for_udh(7) == 0
    assert fill_bits_for_udh(0) == 0
    assert pack_septets(b"\x41", 1) == b"\x82"
    assert pack_septets(gsm7_encode("hi"), 1) == bytes.fromhex("D069")  # 0x68<<1, then 0x69
    assert unpack_septets(bytes.fromhex("D069"), 2, 1) == b"hi"
    # UDH + text start on a septet boundary: (6 * 8 + 1) is a multiple of 7
    assert (6 * 8 + fill_bits_for_udh(6)) % 7 == 0


def test_ucs2_golden() -> None:
    assert ucs2_encode("Aé😀") == bytes.fromhex("004100E9D83DDE00")
    assert ucs2_decode(bytes.fromhex("D83DDE00")) == "😀"


def test_choose_alphabet() -> None:
    assert choose_alphabet("Hej {världen} €5") is Alphabet.GSM7
    assert choose_alphabet("Привет") is Alphabet.UCS2
    assert choose_alphabet("ça va") is Alphabet.UCS2
    assert choose_alphabet("ça va", allow_latin1=True) is Alphabet.LATIN1
    assert choose_alphabet("😀", allow_latin1=True) is Alphabet.UCS2
    assert choose_alphabet("") is Alphabet.GSM7


@pytest.mark.parametrize(
    ("dc", "alphabet", "message_class"),
    [
        (0x00, Alphabet.GSM7, None),
        (0x01, Alphabet.ASCII, None),
        (0x02, Alphabet.BINARY, None),
        (0x03, Alphabet.LATIN1, None),
        (0x04, Alphabet.BINARY, None),
        (0x08, Alphabet.UCS2, None),
        (0x10, Alphabet.GSM7, 0),
        (0x11, Alphabet.GSM7, 1),
        (0x14, Alphabet.BINARY, 0),
        (0x18, Alphabet.UCS2, 0),
        (0x19, Alphabet.UCS2, 1),
        (0x48, Alphabet.UCS2, None),
        (0x44, Alphabet.BINARY, None),
        (0xC0, Alphabet.GSM7, None),
        (0xD1, Alphabet.GSM7, None),
        (0xE2, Alphabet.UCS2, None),
        (0xF0, Alphabet.GSM7, 0),
        (0xF1, Alphabet.GSM7, 1),
        (0xF2, Alphabet.GSM7, 2),
        (0xF4, Alphabet.BINARY, 0),
        (0xF5, Alphabet.BINARY, 1),
        (0xF6, Alphabet.BINARY, 2),
        (0xF7, Alphabet.BINARY, 3),
    ],
)
def test_codec_for_data_coding(dc: int, alphabet: Alphabet, message_class: int | None) -> None:
    codec = codec_for_data_coding(dc)
    assert codec.alphabet is alphabet
    assert codec.message_class == message_class
    assert codec.data_coding == dc
    assert codec.is_text == (alphabet is not Alphabet.BINARY)


@pytest.mark.parametrize(
    "dc", [0x05, 0x06, 0x07, 0x09, 0x0A, 0x0D, 0x0E, 0x0F, 0x20, 0x2C, 0x1C, 0x80, 0xBF, 0xF8]
)
def test_unsupported_data_coding(dc: int) -> None:
    with pytest.raises(UnsupportedDataCoding) as info:
        codec_for_data_coding(dc)
    assert info.value.data_coding == dc
    assert isinstance(info.value, EncodingError)


def test_data_coding_for_round_trips_through_codec_for_data_coding() -> None:
    for alphabet in Alphabet:
        assert codec_for_data_coding(data_coding_for(alphabet)).alphabet is alphabet


def test_codec_encode_decode() -> None:
    codec = codec_for_data_coding(0)
    assert codec.decode(codec.encode("Hi €")) == "Hi €"
    with pytest.raises(EncodingError):
        codec_for_data_coding(4).decode(b"\x00")
    with pytest.raises(EncodingError):
        codec_for_data_coding(4).encode("x")


# --- strictness and privacy --------------------------------------------------------------


def _assert_private(err: BaseException, *secrets: str) -> None:
    message = str(err)
    for secret in secrets:
        assert secret not in message
    assert err.__cause__ is None
    assert err.__context__ is None or err.__suppress_context__


@pytest.mark.parametrize(
    "data",
    [
        b"ok\x80",  # > 0x7F in unpacked septets
        b"\xff",
        b"abc\x1b",  # dangling escape
        b"\x1b\x41",  # escape to an undefined extension character
        b"\x1b\x1b\x41",
    ],
)
def test_gsm7_decode_rejects_invalid_octets(data: bytes) -> None:
    with pytest.raises(EncodingError) as info:
        gsm7_decode(SECRET.encode() + data)
    _assert_private(info.value, SECRET)
    assert info.value.position is not None and info.value.position >= len(SECRET)


@pytest.mark.parametrize("bad", ["ç", "😀", "\x1b", "Ж"])
def test_gsm7_encode_rejects_characters_outside_the_alphabet(bad: str) -> None:
    with pytest.raises(EncodingError) as info:
        gsm7_encode(SECRET + bad + "tail")
    _assert_private(info.value, SECRET, bad)
    assert info.value.position == len(SECRET)


def test_ucs2_odd_length_is_an_error() -> None:
    data = ucs2_encode(SECRET) + b"\x00"
    with pytest.raises(EncodingError) as info:
        ucs2_decode(data)
    _assert_private(info.value, SECRET)


@pytest.mark.parametrize(
    "tail", [b"\xd8\x3d", b"\xde\x00", b"\xd8\x3d\x00\x41", b"\xdc\x00\xd8\x00"]
)
def test_ucs2_lone_surrogate_is_an_error(tail: bytes) -> None:
    with pytest.raises(EncodingError) as info:
        ucs2_decode(ucs2_encode(SECRET) + tail)
    _assert_private(info.value, SECRET)


def test_ucs2_encode_rejects_lone_surrogate_in_text() -> None:
    with pytest.raises(EncodingError) as info:
        ucs2_encode(SECRET + "\ud83d")
    _assert_private(info.value, SECRET)
    assert info.value.position == len(SECRET)


def test_latin1_and_ascii_are_strict() -> None:
    with pytest.raises(EncodingError) as info:
        latin1_encode(SECRET + "€")
    _assert_private(info.value, SECRET)
    with pytest.raises(EncodingError) as info:
        ascii_encode(SECRET + "é")
    _assert_private(info.value, SECRET)
    with pytest.raises(EncodingError) as info:
        ascii_decode(SECRET.encode() + b"\xe9")
    _assert_private(info.value, SECRET)


def test_unpack_is_strict_about_length_and_arguments() -> None:
    with pytest.raises(EncodingError):
        unpack_septets(b"\x00\x00", 1)  # one septet fits one octet, two given
    with pytest.raises(EncodingError):
        unpack_septets(b"\x00", 2)
    with pytest.raises(ValueError):
        unpack_septets(b"\x00", 1, fill_bits=7)
    with pytest.raises(ValueError):
        pack_septets(b"\x00", fill_bits=-1)
    with pytest.raises(EncodingError):
        pack_septets(b"\x80")
    # without a count, whole septets of the octets (7 spare bits read as a trailing '@')
    assert unpack_septets(pack_septets(b"\x01" * 7)) == b"\x01" * 7 + b"\x00"
    assert pack_septets(b"", 3) == b""
    assert unpack_septets(b"", 0, 3) == b""
