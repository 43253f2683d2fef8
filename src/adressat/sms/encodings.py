"""Text encodings of SMS user data: GSM 03.38, IA5, Latin-1, UCS-2 (UTF-16BE), binary.

Two GSM 7-bit forms exist:

* *unpacked*: one septet per octet, what SMPP ``short_message`` carries with ``data_coding`` 0;
* *packed*: septets packed LSB first into octets, the TPDU form (3GPP TS 23.038 6.1.2.1.1),
  optionally starting after ``fill_bits`` padding bits when a UDH precedes the text.

Every decoder is strict: invalid input raises :class:`EncodingError`, never a replacement
character. Error messages carry positions and sizes only, never the text (DESIGN.md I6).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = [
    "GSM7_BASIC",
    "GSM7_ESCAPE",
    "GSM7_EXTENSION",
    "Alphabet",
    "Codec",
    "EncodingError",
    "UnsupportedDataCoding",
    "ascii_decode",
    "ascii_encode",
    "choose_alphabet",
    "codec_for_data_coding",
    "data_coding_for",
    "decode_text",
    "encode_text",
    "fill_bits_for_udh",
    "gsm7_decode",
    "gsm7_encode",
    "gsm7_is_encodable",
    "gsm7_septet_length",
    "latin1_decode",
    "latin1_encode",
    "pack_septets",
    "packed_gsm7_decode",
    "packed_gsm7_encode",
    "ucs2_decode",
    "ucs2_encode",
    "unpack_septets",
]


class EncodingError(ValueError):
    """Text cannot be encoded or octets cannot be decoded. Never contains the text itself."""

    def __init__(self, message: str, *, position: int | None = None) -> None:
        super().__init__(message if position is None else f"{message} (at position {position})")
        self.position = position


class UnsupportedDataCoding(EncodingError):
    """A ``data_coding`` value we do not (or cannot) interpret."""

    def __init__(self, data_coding: int, reason: str) -> None:
        super().__init__(f"data_coding 0x{data_coding:02X}: {reason}")
        self.data_coding = data_coding


# --- GSM 03.38 default alphabet (3GPP TS 23.038 6.2.1) -------------------------------------

GSM7_ESCAPE = 0x1B
"""Escape to the extension table; not a character of its own here."""

GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
"""Index = septet value. Position 0x1B is the escape, never produced or accepted as a char."""

GSM7_EXTENSION: dict[int, str] = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}
"""Extension table (3GPP TS 23.038 6.2.1.1): septet after the escape -> character."""

if len(GSM7_BASIC) != 128:  # an internal invariant, checked at import
    raise AssertionError("GSM 03.38 basic table must have 128 entries")

_GSM7_ENCODE: dict[str, bytes] = {
    ch: bytes((i,)) for i, ch in enumerate(GSM7_BASIC) if i != GSM7_ESCAPE
}
_GSM7_ENCODE.update({ch: bytes((GSM7_ESCAPE, s)) for s, ch in GSM7_EXTENSION.items()})


def gsm7_is_encodable(text: str) -> bool:
    """True if every character is in the GSM default alphabet or its extension table."""
    return all(ch in _GSM7_ENCODE for ch in text)


def gsm7_septet_length(text: str) -> int:
    """Number of septets ``text`` takes in GSM 7-bit (extension characters count two)."""
    return len(gsm7_encode(text))


def gsm7_encode(text: str) -> bytes:
    """Encode to unpacked septets, one per octet (SMPP ``data_coding`` 0)."""
    table = _GSM7_ENCODE
    try:
        return b"".join([table[ch] for ch in text])
    except KeyError:
        pos = next(i for i, ch in enumerate(text) if ch not in table)
        raise EncodingError("character not in the GSM 03.38 alphabet", position=pos) from None


def gsm7_decode(data: bytes) -> str:
    """Decode unpacked septets (one per octet). Strict: octets > 0x7F, a trailing escape or an
    escape before a septet that has no extension character raise :class:`EncodingError`."""
    out: list[str] = []
    i = 0
    n = len(data)
    while i < n:
        b = data[i]
        if b > 0x7F:
            raise EncodingError("octet is not a GSM 7-bit septet (> 0x7F)", position=i)
        if b == GSM7_ESCAPE:
            if i + 1 >= n:
                raise EncodingError("escape septet at end of data", position=i)
            ext = GSM7_EXTENSION.get(data[i + 1])
            if ext is None:
                raise EncodingError("escape to an undefined extension character", position=i)
            out.append(ext)
            i += 2
        else:
            out.append(GSM7_BASIC[b])
            i += 1
    return "".join(out)


def fill_bits_for_udh(udh_octets: int) -> int:
    """Fill bits between a UDH of ``udh_octets`` (including the UDHL octet) and the first
    septet, so that the text starts on a septet boundary (3GPP TS 23.040 9.2.3.24)."""
    if udh_octets < 0:
        raise ValueError("udh_octets must not be negative")
    return (7 - (udh_octets * 8) % 7) % 7


def pack_septets(septets: bytes, fill_bits: int = 0) -> bytes:
    """Pack septets (each 0..0x7F) LSB first; the first septet starts after ``fill_bits`` zero
    bits (0..6). Unused high bits of the last octet are zero. No septets give no octets."""
    if not 0 <= fill_bits <= 6:
        raise ValueError("fill_bits must be 0..6")
    if not septets:
        return b""
    out = bytearray()
    acc = 0
    nbits = fill_bits
    for i, s in enumerate(septets):
        if s > 0x7F:
            raise EncodingError("value is not a septet (> 0x7F)", position=i)
        acc |= s << nbits
        nbits += 7
        while nbits >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            nbits -= 8
    if nbits:
        out.append(acc & 0xFF)
    return bytes(out)


def unpack_septets(data: bytes, count: int | None = None, fill_bits: int = 0) -> bytes:
    """Unpack ``count`` septets packed after ``fill_bits`` bits. ``count`` is the septet count
    from the TP-UDL (minus the UDH); without it, as many whole septets as the octets hold, which
    is ambiguous when the last octet has 7 spare bits (a trailing ``@`` appears). Strict: the
    octet length must be exactly what ``count`` septets need."""
    if not 0 <= fill_bits <= 6:
        raise ValueError("fill_bits must be 0..6")
    total_bits = len(data) * 8
    if count is None:
        count = max(0, (total_bits - fill_bits) // 7)
    if count < 0:
        raise ValueError("count must not be negative")
    needed = 0 if count == 0 else (fill_bits + 7 * count + 7) // 8
    if len(data) != needed:
        raise EncodingError(f"{count} packed septets need {needed} octets, got {len(data)}")
    value = int.from_bytes(data, "little") >> fill_bits
    return bytes((value >> (7 * i)) & 0x7F for i in range(count))


def packed_gsm7_encode(text: str, fill_bits: int = 0) -> tuple[bytes, int]:
    """Encode to packed GSM 7-bit; returns (octets, septet count) — the count is the UDL part."""
    septets = gsm7_encode(text)
    return pack_septets(septets, fill_bits), len(septets)


def packed_gsm7_decode(data: bytes, count: int | None = None, fill_bits: int = 0) -> str:
    """Decode packed GSM 7-bit (see :func:`unpack_septets` for ``count``)."""
    return gsm7_decode(unpack_septets(data, count, fill_bits))


# --- the other alphabets ----------------------------------------------------------------


def _codec_encode(text: str, codec: str, what: str) -> bytes:
    try:
        return text.encode(codec)
    except UnicodeEncodeError as exc:
        raise EncodingError(f"character not representable in {what}", position=exc.start) from None


def ucs2_encode(text: str) -> bytes:
    """UTF-16BE (SMPP ``data_coding`` 8); astral characters become surrogate pairs."""
    return _codec_encode(text, "utf-16-be", "UCS-2/UTF-16BE")


def ucs2_decode(data: bytes) -> str:
    """Strict UTF-16BE: odd length and unpaired surrogates raise :class:`EncodingError`."""
    if len(data) % 2:
        raise EncodingError(f"UCS-2 data has odd length {len(data)}")
    try:
        return data.decode("utf-16-be")
    except UnicodeDecodeError as exc:
        raise EncodingError("unpaired UTF-16 surrogate", position=exc.start) from None


def latin1_encode(text: str) -> bytes:
    """ISO-8859-1 (SMPP ``data_coding`` 3)."""
    return _codec_encode(text, "latin-1", "Latin-1")


def latin1_decode(data: bytes) -> str:
    """ISO-8859-1: every octet is a character."""
    return data.decode("latin-1")


def ascii_encode(text: str) -> bytes:
    """IA5 / ASCII (SMPP ``data_coding`` 1)."""
    return _codec_encode(text, "ascii", "IA5/ASCII")


def ascii_decode(data: bytes) -> str:
    """IA5 / ASCII, strict: octets > 0x7F raise."""
    try:
        return data.decode("ascii")
    except UnicodeDecodeError as exc:
        raise EncodingError("octet is not IA5/ASCII (> 0x7F)", position=exc.start) from None


# --- alphabets, codecs and data_coding ----------------------------------------------------


class Alphabet(enum.Enum):
    """The character sets adressat handles. ``GSM7`` means unpacked septets in SMPP."""

    GSM7 = "gsm7"
    ASCII = "ascii"
    LATIN1 = "latin1"
    UCS2 = "ucs2"
    BINARY = "binary"


_DATA_CODING = {
    Alphabet.GSM7: 0x00,
    Alphabet.ASCII: 0x01,
    Alphabet.LATIN1: 0x03,
    Alphabet.BINARY: 0x04,
    Alphabet.UCS2: 0x08,
}


def data_coding_for(alphabet: Alphabet) -> int:
    """The SMPP ``data_coding`` value we send for ``alphabet``."""
    return _DATA_CODING[alphabet]


def encode_text(text: str, alphabet: Alphabet) -> bytes:
    """Encode ``text`` in ``alphabet`` (GSM7: unpacked septets). BINARY carries no text."""
    if alphabet is Alphabet.GSM7:
        return gsm7_encode(text)
    if alphabet is Alphabet.UCS2:
        return ucs2_encode(text)
    if alphabet is Alphabet.LATIN1:
        return latin1_encode(text)
    if alphabet is Alphabet.ASCII:
        return ascii_encode(text)
    raise EncodingError("binary data coding has no text form")


def decode_text(data: bytes, alphabet: Alphabet) -> str:
    """Decode ``data`` in ``alphabet`` (GSM7: unpacked septets), strictly."""
    if alphabet is Alphabet.GSM7:
        return gsm7_decode(data)
    if alphabet is Alphabet.UCS2:
        return ucs2_decode(data)
    if alphabet is Alphabet.LATIN1:
        return latin1_decode(data)
    if alphabet is Alphabet.ASCII:
        return ascii_decode(data)
    raise EncodingError("binary data coding has no text form")


def choose_alphabet(text: str, *, allow_latin1: bool = False) -> Alphabet:
    """The cheapest alphabet for ``text``: GSM7 if every character is in the default alphabet or
    its extension table; else Latin-1 if ``allow_latin1`` and it fits; else UCS-2."""
    if gsm7_is_encodable(text):
        return Alphabet.GSM7
    if allow_latin1:
        try:
            text.encode("latin-1")
        except UnicodeEncodeError:
            pass
        else:
            return Alphabet.LATIN1
    return Alphabet.UCS2


@dataclass(frozen=True, slots=True)
class Codec:
    """What a ``data_coding`` value means: the alphabet and, if signalled, the message class."""

    alphabet: Alphabet
    data_coding: int
    message_class: int | None = None

    @property
    def is_text(self) -> bool:
        return self.alphabet is not Alphabet.BINARY

    def encode(self, text: str) -> bytes:
        return encode_text(text, self.alphabet)

    def decode(self, data: bytes) -> str:
        return decode_text(data, self.alphabet)


_SMPP_DATA_CODING = {
    0x00: Alphabet.GSM7,  # SMSC default alphabet: GSM 7-bit here
    0x01: Alphabet.ASCII,  # IA5 (CCITT T.50) / ASCII
    0x02: Alphabet.BINARY,  # octet unspecified (8-bit binary)
    0x03: Alphabet.LATIN1,  # ISO-8859-1
    0x04: Alphabet.BINARY,  # octet unspecified (8-bit binary)
    0x08: Alphabet.UCS2,  # UCS-2 (ISO/IEC-10646), UTF-16BE in practice
}

_DCS_ALPHABET = (Alphabet.GSM7, Alphabet.BINARY, Alphabet.UCS2)  # bits 3..2 = 00, 01, 10


def codec_for_data_coding(data_coding: int) -> Codec:
    """Interpret an SMPP ``data_coding`` octet.

    0x00..0x0F use the SMPP 3.4 meanings (5.2.19): 0 SMSC default (GSM 7-bit), 1 IA5, 2/4
    binary, 3 Latin-1, 8 UCS-2; the others (JIS, Cyrillic, Hebrew, pictogram, Kanji, KS C 5601)
    are unsupported. Above 0x0F the GSM 03.38 data coding scheme (3GPP TS 23.038 4) applies:
    general data coding groups 00xx/01xx (compressed text is unsupported), message waiting
    groups 1100/1101 (GSM 7-bit) and 1110 (UCS-2), and the data coding/message class group
    1111. Reserved values raise :class:`UnsupportedDataCoding`.
    """
    if not 0 <= data_coding <= 0xFF:
        raise ValueError("data_coding must be one octet")
    dc = data_coding
    if dc <= 0x0F:
        alphabet = _SMPP_DATA_CODING.get(dc)
        if alphabet is None:
            raise UnsupportedDataCoding(dc, "alphabet not supported")
        return Codec(alphabet, dc)
    group = dc >> 4
    if group <= 0x7:  # 00xx general data coding, 01xx same with automatic deletion
        if dc & 0x20:
            raise UnsupportedDataCoding(dc, "compressed text is not supported")
        index = (dc >> 2) & 0x03
        if index == 3:
            raise UnsupportedDataCoding(dc, "reserved alphabet")
        message_class = dc & 0x03 if dc & 0x10 else None
        return Codec(_DCS_ALPHABET[index], dc, message_class)
    if group in (0xC, 0xD):  # message waiting indication, discard / store, GSM 7-bit
        return Codec(Alphabet.GSM7, dc)
    if group == 0xE:  # message waiting indication, store, UCS-2
        return Codec(Alphabet.UCS2, dc)
    if group == 0xF:  # data coding / message class
        if dc & 0x08:
            raise UnsupportedDataCoding(dc, "reserved bit set")
        alphabet = Alphabet.BINARY if dc & 0x04 else Alphabet.GSM7
        return Codec(alphabet, dc, dc & 0x03)
    raise UnsupportedDataCoding(dc, "reserved coding group")
