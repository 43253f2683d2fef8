"""Concatenated SMS: splitting text into parts (UDH or SAR), UDH parsing, reassembly.

Limits (3GPP TS 23.040 9.2.3.24.1/8, SMPP 3.4 5.3.2.22-24), in units of the payload:

==============  ======  =========================  ==========================
alphabet        single  8-bit reference (6 oct.)   16-bit reference (7 oct.)
==============  ======  =========================  ==========================
GSM 7-bit        160     153 septets                152 septets
8-bit / Latin-1  140     134 octets                 133 octets
UCS-2            70      67 code units              66 code units
==============  ======  =========================  ==========================

An extension character (escape + septet) and a UTF-16 surrogate pair are never split across
parts. The reference number is chosen by the caller (no randomness here). Pure: time is passed
in as ``now`` (seconds, any monotonic origin).
"""

from __future__ import annotations

import enum
from collections.abc import Hashable
from dataclasses import dataclass

from adressat.sms.encodings import (
    GSM7_ESCAPE,
    Alphabet,
    ascii_decode,
    encode_text,
    gsm7_decode,
    ucs2_decode,
)

__all__ = [
    "IEI_CONCAT_8BIT",
    "IEI_CONCAT_16BIT",
    "PARTS_MAX",
    "Concat",
    "ConcatInfo",
    "Reassembler",
    "ReassemblyConflict",
    "ReassemblyError",
    "ReassemblyFull",
    "Segment",
    "SegmentationError",
    "UdhError",
    "build_udh",
    "concat_info_from_udh",
    "concat_udh",
    "parse_udh",
    "part_limit",
    "segment_payload",
    "segment_text",
]

IEI_CONCAT_8BIT = 0x00
IEI_CONCAT_16BIT = 0x08
PARTS_MAX = 255
"""The total-parts field is one octet."""


class SegmentationError(ValueError):
    """A message cannot be split within the limits (too many parts, bad reference)."""


class UdhError(ValueError):
    """Malformed user data header. Never contains the payload."""


class ReassemblyError(ValueError):
    """A part cannot be taken into reassembly."""


class ReassemblyConflict(ReassemblyError):
    """A part arrived twice with the same sequence number and different payloads."""


class ReassemblyFull(ReassemblyError):
    """The named limit of pending groups is reached; drop expired groups or refuse the part."""


class Concat(enum.Enum):
    """How the parts of a long message are tied together."""

    UDH8 = "udh8"
    """UDH with IEI 0x00 (8-bit reference), ``esm_class`` UDHI 0x40."""
    UDH16 = "udh16"
    """UDH with IEI 0x08 (16-bit reference), ``esm_class`` UDHI 0x40."""
    SAR = "sar"
    """SMPP TLVs ``sar_msg_ref_num``, ``sar_total_segments``, ``sar_segment_seqnum``. Parts are
    sized for the UDH the SMSC will put on the air: 8-bit if the reference is < 256, else
    16-bit."""


@dataclass(frozen=True, slots=True)
class ConcatInfo:
    """Concatenation parameters; SAR: ``sar_msg_ref_num``, ``sar_total_segments``,
    ``sar_segment_seqnum``."""

    reference: int
    total: int
    seqnum: int

    def __post_init__(self) -> None:
        if not 0 <= self.reference <= 0xFFFF:
            raise ValueError("concatenation reference must be 0..65535")
        if not 1 <= self.total <= PARTS_MAX:
            raise ValueError("total parts must be 1..255")
        if not 1 <= self.seqnum <= self.total:
            raise ValueError("sequence number must be 1..total")


@dataclass(frozen=True, slots=True)
class Segment:
    """One part. ``udh`` is the complete header (with UDHL) or empty; ``concat`` is set for every
    part of a multi-part message (both UDH and SAR); ``payload`` is the encoded text of this
    part (GSM7: unpacked septets)."""

    payload: bytes
    udh: bytes = b""
    concat: ConcatInfo | None = None

    @property
    def udhi(self) -> bool:
        """Whether ``esm_class`` must carry UDHI (0x40)."""
        return bool(self.udh)

    @property
    def short_message(self) -> bytes:
        """What goes into SMPP ``short_message``: UDH (if any) followed by the payload."""
        return self.udh + self.payload


_OCTET_LIMITS = (140, 134, 133)  # single, 8-bit ref, 16-bit ref
_LIMITS: dict[Alphabet, tuple[int, int, int]] = {
    Alphabet.GSM7: (160, 153, 152),  # septets = octets in the unpacked form
    Alphabet.UCS2: (140, 134, 132),  # octets: 70, 67, 66 code units
    Alphabet.LATIN1: _OCTET_LIMITS,
    Alphabet.ASCII: _OCTET_LIMITS,
    Alphabet.BINARY: _OCTET_LIMITS,
}


def part_limit(alphabet: Alphabet, concat: Concat | None, reference: int = 0) -> int:
    """Payload octets allowed in one part (GSM7: septets). ``concat`` None: a single part."""
    single, ref8, ref16 = _LIMITS[alphabet]
    if concat is None:
        return single
    if concat is Concat.UDH8 or (concat is Concat.SAR and reference <= 0xFF):
        return ref8
    return ref16


def build_udh(elements: list[tuple[int, bytes]]) -> bytes:
    """A UDH from (IEI, value) elements, with the UDHL octet first."""
    body = b"".join(bytes((iei, len(value))) + value for iei, value in elements)
    if len(body) > 0xFF or any(not 0 <= iei <= 0xFF or len(v) > 0xFF for iei, v in elements):
        raise ValueError("user data header elements too long")
    return bytes((len(body),)) + body


def concat_udh(info: ConcatInfo, *, ref16: bool = False) -> bytes:
    """Concatenation UDH: 6 octets (IEI 0x00) or, with ``ref16``, 7 octets (IEI 0x08)."""
    if ref16:
        value = info.reference.to_bytes(2, "big") + bytes((info.total, info.seqnum))
        return build_udh([(IEI_CONCAT_16BIT, value)])
    if info.reference > 0xFF:
        raise SegmentationError("8-bit concatenation reference must be 0..255")
    return build_udh([(IEI_CONCAT_8BIT, bytes((info.reference, info.total, info.seqnum)))])


def parse_udh(data: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """Split ``data`` (user data starting with UDHL) into its information elements and the rest.

    Raises :class:`UdhError` if the UDHL or any element length runs past the data."""
    if not data:
        raise UdhError("user data header missing: no octets")
    udhl = data[0]
    if 1 + udhl > len(data):
        raise UdhError(f"UDHL {udhl} exceeds the {len(data) - 1} octets that follow")
    header = data[1 : 1 + udhl]
    elements: list[tuple[int, bytes]] = []
    i = 0
    while i < len(header):
        if i + 2 > len(header):
            raise UdhError(f"information element header truncated at offset {i}")
        iei, iedl = header[i], header[i + 1]
        if i + 2 + iedl > len(header):
            raise UdhError(f"information element 0x{iei:02X} length {iedl} exceeds the UDH")
        elements.append((iei, bytes(header[i + 2 : i + 2 + iedl])))
        i += 2 + iedl
    return elements, bytes(data[1 + udhl :])


def concat_info_from_udh(elements: list[tuple[int, bytes]]) -> ConcatInfo | None:
    """The concatenation element (IEI 0x00 or 0x08) of a parsed UDH, or None if absent.
    A malformed one (wrong length, total 0, seqnum 0 or > total) raises :class:`UdhError`."""
    for iei, value in elements:
        if iei == IEI_CONCAT_8BIT:
            if len(value) != 3:
                raise UdhError("concatenation element (8-bit reference) must have 3 octets")
            reference, total, seqnum = value[0], value[1], value[2]
        elif iei == IEI_CONCAT_16BIT:
            if len(value) != 4:
                raise UdhError("concatenation element (16-bit reference) must have 4 octets")
            reference, total, seqnum = int.from_bytes(value[:2], "big"), value[2], value[3]
        else:
            continue
        if total == 0 or not 1 <= seqnum <= total:
            raise UdhError(f"concatenation part {seqnum} of {total} is invalid")
        return ConcatInfo(reference, total, seqnum)
    return None


def _atom_ends(payload: bytes, alphabet: Alphabet) -> list[int]:
    """Offsets at which a part may end: after each character (GSM7 escape pairs and UTF-16
    surrogate pairs are one character). Validates the payload for text alphabets."""
    n = len(payload)
    if alphabet is Alphabet.GSM7:
        gsm7_decode(payload)  # validates: septets, no dangling or undefined escape
        ends = []
        i = 0
        while i < n:
            i += 2 if payload[i] == GSM7_ESCAPE else 1
            ends.append(i)
        return ends
    if alphabet is Alphabet.UCS2:
        ucs2_decode(payload)  # validates: even length, paired surrogates
        ends = []
        i = 0
        while i < n:
            i += 4 if 0xD8 <= payload[i] <= 0xDB else 2
            ends.append(i)
        return ends
    if alphabet is Alphabet.ASCII:
        ascii_decode(payload)
    return list(range(1, n + 1))


def segment_payload(
    payload: bytes,
    alphabet: Alphabet,
    *,
    concat: Concat,
    reference: int,
    parts_max: int = PARTS_MAX,
) -> list[Segment]:
    """Split an encoded payload (GSM7: unpacked septets) into parts.

    A payload within the single-part limit gives one :class:`Segment` without UDH or concat
    info. Otherwise parts are filled greedily up to :func:`part_limit`, never splitting a
    character. More than ``parts_max`` (at most 255) parts raise :class:`SegmentationError`.
    """
    if not 1 <= parts_max <= PARTS_MAX:
        raise ValueError("parts_max must be 1..255")
    limit_ref = 0xFF if concat is Concat.UDH8 else 0xFFFF
    if not 0 <= reference <= limit_ref:
        raise SegmentationError(f"concatenation reference must be 0..{limit_ref}")
    ends = _atom_ends(payload, alphabet)
    if len(payload) <= part_limit(alphabet, None):
        return [Segment(bytes(payload))]
    limit = part_limit(alphabet, concat, reference)
    cuts: list[int] = []
    start = 0
    previous = 0
    for end in ends:
        if end - start > limit:
            cuts.append(previous)
            start = previous
            if len(cuts) >= parts_max:
                raise SegmentationError(f"message needs more than {parts_max} parts")
        previous = end
    cuts.append(len(payload))
    total = len(cuts)
    if total > parts_max:
        raise SegmentationError(f"message needs more than {parts_max} parts")
    segments: list[Segment] = []
    start = 0
    for seqnum, end in enumerate(cuts, start=1):
        info = ConcatInfo(reference, total, seqnum)
        if concat is Concat.SAR:
            udh = b""
        else:
            udh = concat_udh(info, ref16=concat is Concat.UDH16)
        segments.append(Segment(bytes(payload[start:end]), udh, info))
        start = end
    return segments


def segment_text(
    text: str,
    alphabet: Alphabet,
    *,
    concat: Concat,
    reference: int,
    parts_max: int = PARTS_MAX,
) -> list[Segment]:
    """Encode ``text`` in ``alphabet`` and split it (see :func:`segment_payload`)."""
    return segment_payload(
        encode_text(text, alphabet),
        alphabet,
        concat=concat,
        reference=reference,
        parts_max=parts_max,
    )


@dataclass(slots=True)
class _Group:
    total: int
    first_seen: float
    parts: dict[int, bytes]


class Reassembler:
    """Collects the parts of concatenated messages until each is complete.

    Groups are keyed by ``(key, reference, total)``; ``key`` identifies the sender side (for
    example originator and destination address, or a session and account) and must be chosen by
    the caller so that two senders cannot share a group. Parts may come in any order; an exact
    duplicate is ignored, a different payload under the same sequence number raises
    :class:`ReassemblyConflict` (the first one is kept). Bounded by ``groups_max`` pending
    groups and ``part_octets_max`` per part; a group older than ``group_age_s_max`` (measured
    from its first part) is dropped by :meth:`expire`, or replaced when a part of it arrives.
    """

    def __init__(
        self,
        *,
        groups_max: int = 10_000,
        group_age_s_max: float = 600.0,
        part_octets_max: int = 1024,
    ) -> None:
        if groups_max < 1 or group_age_s_max <= 0 or part_octets_max < 1:
            raise ValueError("reassembly limits must be positive")
        self.groups_max = groups_max
        self.group_age_s_max = group_age_s_max
        self.part_octets_max = part_octets_max
        self.duplicates_ignored = 0
        self._groups: dict[tuple[Hashable, int, int], _Group] = {}

    def __len__(self) -> int:
        """Number of pending (incomplete) groups."""
        return len(self._groups)

    def add(self, key: Hashable, info: ConcatInfo, payload: bytes, now: float) -> bytes | None:
        """Take one part; return the whole payload (parts in order) when the group is complete,
        else None (also for an ignored exact duplicate)."""
        if len(payload) > self.part_octets_max:
            raise ReassemblyError(
                f"part of {len(payload)} octets exceeds part_octets_max {self.part_octets_max}"
            )
        gkey = (key, info.reference, info.total)
        group = self._groups.get(gkey)
        if group is not None and now - group.first_seen >= self.group_age_s_max:
            del self._groups[gkey]
            group = None
        if group is None:
            if info.total == 1:
                return bytes(payload)
            if len(self._groups) >= self.groups_max:
                raise ReassemblyFull(f"{len(self._groups)} groups pending (groups_max)")
            group = _Group(info.total, now, {})
            self._groups[gkey] = group
        existing = group.parts.get(info.seqnum)
        if existing is not None:
            if existing == payload:
                self.duplicates_ignored += 1
                return None
            raise ReassemblyConflict(
                f"part {info.seqnum} of {info.total} arrived again with a different payload"
            )
        group.parts[info.seqnum] = bytes(payload)
        if len(group.parts) < group.total:
            return None
        del self._groups[gkey]
        return b"".join(group.parts[i] for i in range(1, group.total + 1))

    def expire(self, now: float) -> list[tuple[Hashable, int, int]]:
        """Drop groups whose first part is at least ``group_age_s_max`` old; return their keys
        ``(key, reference, total)`` so the caller can report them."""
        dropped = [
            gkey
            for gkey, group in self._groups.items()
            if now - group.first_seen >= self.group_age_s_max
        ]
        for gkey in dropped:
            del self._groups[gkey]
        return dropped

    def next_expiry(self) -> float | None:
        """The earliest ``now`` at which :meth:`expire` would drop something, or None."""
        if not self._groups:
            return None
        return min(g.first_seen for g in self._groups.values()) + self.group_age_s_max
