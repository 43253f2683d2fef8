"""Generic SMPP 3.4 encode/decode, derived from ``schema.BODIES`` and ``schema.TLVS``.

For speed, one decoder and one encoder function per command_id are generated from the schema
table at import time (source generation, as ``collections.namedtuple`` does). Nothing here is
written per PDU by hand: the generated source is a function of the table only.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .buffer import FrameBuffer
from .constants import RESPONSE_BIT, CommandId, CommandStatus, TlvTag
from .errors import SmppEncodeError, SmppError
from .pdus import FieldValue, Pdu, TlvValue
from .schema import BODIES, INT_KINDS, INT_WIDTH, TLVS, Field, Kind, TlvKind

S = CommandStatus
HEADER = struct.Struct(">IIII")
_TLV_HEAD = struct.Struct(">HH")
_INT_CODE = {1: "B", 2: "H", 4: "I"}

Decoder = Callable[[bytes], tuple[dict[str, FieldValue], int]]
Encoder = Callable[[dict[str, FieldValue]], bytes]


def time_ok(value: str) -> bool:
    """SMPP absolute/relative time "YYMMDDhhmmsstnnp" (section 7.1.1), or empty."""
    if not value:
        return True
    head = value[:15]
    return len(value) == 16 and head.isascii() and head.isdigit() and value[15] in "+-R"


class _Gen:
    """Emits Python source for one command's body decoder and encoder."""

    def __init__(self) -> None:
        self.ns: dict[str, Any] = {
            "_Err": SmppError,
            "_EncErr": SmppEncodeError,
            "_time_ok": time_ok,
        }
        self.counter = 0

    def var(self, prefix: str = "v") -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def const(self, value: object) -> str:
        name = self.var("_k")
        self.ns[name] = value
        return name

    def struct_for(self, fields: Sequence[Field]) -> str:
        fmt = ">" + "".join(_INT_CODE[INT_WIDTH[f.kind]] for f in fields)
        return self.const(struct.Struct(fmt))

    # -- decode ------------------------------------------------------------------------------

    def decode_fields(
        self, fields: Sequence[Field], ind: str, lines: list[str]
    ) -> list[tuple[str, str]]:
        """Lines decoding ``fields`` from ``buf`` at ``off``; returns (name, local var) pairs."""
        out: list[tuple[str, str]] = []
        wire_vars: dict[str, str] = {}  # LENGTH8 / COUNT8 value for the next field
        i = 0
        while i < len(fields):
            f = fields[i]
            if f.kind in INT_KINDS:
                run = [f]
                while i + len(run) < len(fields) and fields[i + len(run)].kind in INT_KINDS:
                    run.append(fields[i + len(run)])
                names = [self.var() for _ in run]
                st = self.struct_for(run)
                size = sum(INT_WIDTH[g.kind] for g in run)
                lines.append(f"{ind}{', '.join(names)}, = {st}.unpack_from(buf, off)")
                lines.append(f"{ind}off += {size}")
                for g, v in zip(run, names, strict=True):
                    if g.kind in (Kind.LENGTH8, Kind.COUNT8):
                        wire_vars["next"] = v
                    else:
                        out.append((g.name, v))
                i += len(run)
                continue
            v = self.var()
            st = self.const(f.status)
            reason = repr(f.name)
            if f.kind is Kind.CSTRING:
                lines += [
                    f"{ind}e = buf.find(0, off, off + {f.size})",
                    f"{ind}if e < 0: raise _Err({st}, {reason} + ' too long or not terminated')",
                    f"{ind}{v} = buf[off:e].decode('latin-1')",
                    f"{ind}off = e + 1",
                ]
            elif f.kind is Kind.TIME:
                lines += [
                    f"{ind}e = buf.find(0, off, off + 17)",
                    f"{ind}if e == off: {v} = ''",
                    f"{ind}else:",
                    f"{ind}    {v} = buf[off:e].decode('latin-1')",
                    f"{ind}    if e != off + 16 or {v}[15] not in '+-R' or not {v}.isascii() "
                    f"or not {v}[:15].isdigit(): raise _Err({st}, {reason} + ' invalid')",
                    f"{ind}off = e + 1",
                ]
            elif f.kind is Kind.OCTETS:
                n = wire_vars.pop("next")
                lines += [
                    f"{ind}e = off + {n}",
                    f"{ind}if {n} > {f.size} or e > len(buf): "
                    f"raise _Err({st}, {reason} + ' length invalid')",
                    f"{ind}{v} = buf[off:e]",
                    f"{ind}off = e",
                ]
            elif f.kind is Kind.LIST:
                n = wire_vars.pop("next")
                lst = self.var("lst")
                lines += [
                    f"{ind}if {n} > {f.size}: raise _Err({st}, {reason} + ' count invalid')",
                    f"{ind}{lst} = []",
                    f"{ind}for _ in range({n}):",
                ]
                inner = ind + "    "
                head = self.decode_fields(f.layout, inner, lines)
                if f.variants is None:
                    lines.append(f"{inner}{lst}.append({self.dict_src(head)})")
                else:
                    tag_var = head[0][1]
                    kw = "if"
                    for tag, layout in f.variants.items():
                        lines.append(f"{inner}{kw} {tag_var} == {tag}:")
                        body = self.decode_fields(layout, inner + "    ", lines)
                        lines.append(f"{inner}    {lst}.append({self.dict_src(head + body)})")
                        kw = "elif"
                    vst = self.const(f.variant_status)
                    lines.append(f"{inner}else: raise _Err({vst}, {f.layout[0].name!r})")
                lines.append(f"{ind}{v} = tuple({lst})")
            else:  # pragma: no cover - schema error
                raise AssertionError(f.kind)
            out.append((f.name, v))
            i += 1
        return out

    @staticmethod
    def dict_src(pairs: Sequence[tuple[str, str]]) -> str:
        return "{" + ", ".join(f"{n!r}: {v}" for n, v in pairs) + "}"

    def decoder(self, name: str, fields: Sequence[Field]) -> Decoder:
        lines = [f"def {name}(buf):", "    off = 16"]
        pairs = self.decode_fields(fields, "    ", lines)
        lines.append(f"    return {self.dict_src(pairs)}, off")
        exec("\n".join(lines), self.ns)  # noqa: S102 - source generated from the schema table
        fn: Decoder = self.ns[name]
        fn.__source__ = "\n".join(lines)  # type: ignore[attr-defined]
        return fn

    # -- encode ------------------------------------------------------------------------------

    def encode_fields(
        self, fields: Sequence[Field], src: str, ind: str, lines: list[str]
    ) -> list[str]:
        """Lines checking/encoding ``fields`` of dict ``src``; returns bytes expressions."""
        parts: list[str] = []
        names = [f.name for f in fields]
        i = 0
        while i < len(fields):
            f = fields[i]
            if f.kind in INT_KINDS:
                run = [f]
                while i + len(run) < len(fields) and fields[i + len(run)].kind in INT_KINDS:
                    run.append(fields[i + len(run)])
                args = []
                for j, g in enumerate(run):
                    if g.kind in (Kind.LENGTH8, Kind.COUNT8):
                        target = names[i + j + 1]
                        args.append(f"len({src}[{target!r}])")
                    else:
                        args.append(f"{src}[{g.name!r}]")
                parts.append(f"{self.struct_for(run)}.pack({', '.join(args)})")
                i += len(run)
                continue
            v = self.var()
            reason = repr(f.name)
            if f.kind is Kind.CSTRING:
                lines += [
                    f"{ind}{v} = {src}[{reason}].encode('latin-1')",
                    f"{ind}if len({v}) >= {f.size} or 0 in {v}: raise _EncErr({reason})",
                ]
                parts += [v, "b'\\0'"]
            elif f.kind is Kind.TIME:
                lines += [
                    f"{ind}{v} = {src}[{reason}]",
                    f"{ind}{v} = {v}.encode('latin-1')",
                    f"{ind}if {v} and (len({v}) != 16 or {v}[15] not in b'+-R' "
                    f"or not {v}[:15].isdigit()): raise _EncErr({reason})",
                ]
                parts += [v, "b'\\0'"]
            elif f.kind is Kind.OCTETS:
                lines += [
                    f"{ind}{v} = {src}[{reason}]",
                    f"{ind}if len({v}) > {f.size} or not isinstance({v}, bytes): "
                    f"raise _EncErr({reason})",
                ]
                parts.append(v)
            elif f.kind is Kind.LIST:
                lst = self.var("lst")
                it = self.var("it")
                lines += [
                    f"{ind}{lst} = []",
                    f"{ind}if len({src}[{reason}]) > {f.size}: raise _EncErr({reason})",
                    f"{ind}for {it} in {src}[{reason}]:",
                ]
                inner = ind + "    "
                head = self.encode_fields(f.layout, it, inner, lines)
                if f.variants is None:
                    lines.append(f"{inner}if len({it}) != {len(f.layout)}: raise _EncErr({reason})")
                    lines.append(f"{inner}{lst}.append(b''.join(({', '.join(head)},)))")
                else:
                    tag = f"{it}[{f.layout[0].name!r}]"
                    kw = "if"
                    for tagv, layout in f.variants.items():
                        lines.append(f"{inner}{kw} {tag} == {tagv}:")
                        in2 = inner + "    "
                        nf = len(f.layout) + len(layout)
                        lines.append(f"{in2}if len({it}) != {nf}: raise _EncErr({reason})")
                        body = self.encode_fields(layout, it, in2, lines)
                        lines.append(f"{in2}{lst}.append(b''.join(({', '.join(head + body)},)))")
                        kw = "elif"
                    lines.append(f"{inner}else: raise _EncErr({reason})")
                lines.append(f"{ind}{v} = b''.join({lst})")
                parts.append(v)
            else:  # pragma: no cover - schema error
                raise AssertionError(f.kind)
            i += 1
        return parts

    def encoder(self, name: str, fields: Sequence[Field]) -> Encoder:
        n = sum(1 for f in fields if f.kind not in (Kind.LENGTH8, Kind.COUNT8))
        lines = [f"def {name}(f):", f"    if len(f) != {n}: raise _EncErr('field names')"]
        parts = self.encode_fields(fields, "f", "    ", lines)
        lines.append(f"    return b''.join(({', '.join(parts)},))" if parts else "    return b''")
        exec("\n".join(lines), self.ns)  # noqa: S102 - source generated from the schema table
        fn: Encoder = self.ns[name]
        fn.__source__ = "\n".join(lines)  # type: ignore[attr-defined]
        return fn


def _build() -> tuple[dict[int, Decoder], dict[int, Encoder]]:
    gen = _Gen()
    decoders: dict[int, Decoder] = {}
    encoders: dict[int, Encoder] = {}
    for cid, fields in BODIES.items():
        decoders[int(cid)] = gen.decoder(f"decode_{cid.spec_name}", fields)
        encoders[int(cid)] = gen.encoder(f"encode_{cid.spec_name}", fields)
    return decoders, encoders


DECODERS, ENCODERS = _build()
_CID_ENUM: dict[int, CommandId] = {int(c): c for c in CommandId}
_STATUS_ENUM: dict[int, int] = {int(s): s for s in CommandStatus}
_TAG_ENUM: dict[int, TlvTag] = {int(t): t for t in TlvTag}
_TLV_INT = {TlvKind.INT8: 1, TlvKind.INT16: 2, TlvKind.INT32: 4}
_TLV_SPECS = {int(t): (spec.kind, spec.length_min, spec.length_max) for t, spec in TLVS.items()}


# -- TLVs ---------------------------------------------------------------------------------------


def decode_tlvs(buf: bytes, off: int) -> tuple[tuple[int, TlvValue], ...]:
    """The optional part from ``off`` to the end of ``buf``, in wire order."""
    end = len(buf)
    out: list[tuple[int, TlvValue]] = []
    while off < end:
        if off + 4 > end:
            raise SmppError(S.ESME_RINVOPTPARSTREAM, "truncated TLV header")
        tag, length = _TLV_HEAD.unpack_from(buf, off)
        off += 4
        stop = off + length
        if stop > end:
            raise SmppError(S.ESME_RINVOPTPARSTREAM, f"TLV 0x{tag:04x} runs past the PDU")
        spec = _TLV_SPECS.get(tag)
        value: TlvValue
        if spec is None:
            value = buf[off:stop]
        else:
            kind, lmin, lmax = spec
            if not lmin <= length <= lmax:
                raise SmppError(S.ESME_RINVPARLEN, f"TLV 0x{tag:04x} length invalid")
            if kind is TlvKind.OCTETS:
                value = buf[off:stop]
            elif kind is TlvKind.CSTRING:
                if buf.find(0, off, stop) != stop - 1:
                    raise SmppError(S.ESME_RINVOPTPARAMVAL, f"TLV 0x{tag:04x} not a C string")
                value = buf[off : stop - 1].decode("latin-1")
            else:
                value = int.from_bytes(buf[off:stop], "big")
        out.append((_TAG_ENUM.get(tag, tag), value))
        off = stop
    return tuple(out)


_TLV_INT_PACK = {
    int(t): struct.Struct(">HH" + _INT_CODE[_TLV_INT[spec.kind]])
    for t, spec in TLVS.items()
    if spec.kind in _TLV_INT
}


def encode_tlvs(tlvs: Sequence[tuple[int, TlvValue]]) -> bytes:
    parts: list[bytes] = []
    for tag, value in tlvs:
        packer = _TLV_INT_PACK.get(tag)
        if packer is not None:
            if not isinstance(value, int):
                raise SmppEncodeError(f"TLV 0x{tag:04x} value must be int")
            try:
                parts.append(packer.pack(tag, packer.size - 4, value))
            except struct.error:
                raise SmppEncodeError(f"TLV 0x{tag:04x} value out of range") from None
            continue
        spec = _TLV_SPECS.get(tag)
        if spec is None or spec[0] is TlvKind.OCTETS:
            if not isinstance(value, bytes):
                raise SmppEncodeError(f"TLV 0x{tag:04x} value must be bytes")
            raw = value
        else:  # CSTRING
            if not isinstance(value, str):
                raise SmppEncodeError(f"TLV 0x{tag:04x} value must be str")
            raw = value.encode("latin-1") + b"\0"
            if raw.find(0) != len(raw) - 1:
                raise SmppEncodeError(f"TLV 0x{tag:04x} contains NUL")
        if spec is not None and not spec[1] <= len(raw) <= spec[2]:
            raise SmppEncodeError(f"TLV 0x{tag:04x} length invalid")
        if len(raw) > 0xFFFF:
            raise SmppEncodeError(f"TLV 0x{tag:04x} too long")
        parts.append(_TLV_HEAD.pack(tag, len(raw)))
        parts.append(raw)
    return b"".join(parts)


# -- PDUs ---------------------------------------------------------------------------------------


def decode(frame: bytes) -> Pdu:
    """One whole PDU (header included) -> Pdu. Raises only SmppError."""
    if type(frame) is not bytes:
        frame = bytes(frame)
    n = len(frame)
    if n < 16:
        raise SmppError(S.ESME_RINVCMDLEN, "shorter than a header")
    length, cid, status, seq = HEADER.unpack_from(frame)
    if length != n:
        raise SmppError(S.ESME_RINVCMDLEN, "command_length does not match the frame")
    dec = DECODERS.get(cid)
    if dec is None:
        raise SmppError(S.ESME_RINVCMDID, "unknown command_id", command_id=cid, sequence_number=seq)
    try:
        if n == 16 and status and cid & RESPONSE_BIT:
            fields: dict[str, FieldValue] = {}
            tlvs: tuple[tuple[int, TlvValue], ...] = ()
        else:
            fields, off = dec(frame)
            tlvs = decode_tlvs(frame, off) if off < n else ()
    except SmppError as e:
        e.command_id = cid
        e.sequence_number = seq
        raise
    except (struct.error, IndexError, ValueError):
        raise SmppError(
            S.ESME_RINVCMDLEN, "body shorter than its fields", command_id=cid, sequence_number=seq
        ) from None
    return Pdu(_CID_ENUM[cid], seq, _STATUS_ENUM.get(status, status), fields, tlvs)


def encode(pdu: Pdu) -> bytes:
    """Pdu -> wire bytes. Raises SmppEncodeError if the PDU is not valid SMPP 3.4."""
    cid = pdu.command_id
    enc = ENCODERS.get(cid)
    if enc is None:
        raise SmppEncodeError("unknown command_id")
    fields = pdu.fields
    try:
        if not fields and pdu.command_status and cid & RESPONSE_BIT:
            if pdu.tlvs and BODIES[_CID_ENUM[cid]]:
                raise SmppEncodeError("TLVs without the mandatory body")
            body = b""
        else:
            body = enc(fields)
        if pdu.tlvs:
            body += encode_tlvs(pdu.tlvs)
        return HEADER.pack(16 + len(body), cid, pdu.command_status, pdu.sequence_number) + body
    except SmppEncodeError:
        raise
    except (struct.error, KeyError, TypeError, AttributeError, ValueError, OverflowError) as e:
        raise SmppEncodeError(f"invalid field value ({type(e).__name__})") from None


class PduReader:
    """Splits a TCP byte stream into PDUs.

    ``feed(data)`` then ``next_pdu()`` until it returns None (or iterate). A frame that fails
    to decode raises SmppError from ``next_pdu`` and is consumed, so reading can go on; a bad
    command_length raises SmppError(ESME_RINVCMDLEN) from ``feed`` as soon as the header is
    seen, and the stream stays broken (the connection must be closed).
    """

    def __init__(self, pdu_length_max: int = 65536) -> None:
        self._frames = FrameBuffer(pdu_length_max)

    @property
    def pdu_length_max(self) -> int:
        return self._frames.pdu_length_max

    @property
    def buffered_octets(self) -> int:
        return self._frames.buffered_octets

    @property
    def announced_length(self) -> int | None:
        """command_length of the PDU being read, None if fewer than 4 octets of it."""
        return self._frames.announced_length

    @property
    def broken(self) -> bool:
        """A command_length was out of range: every further call raises; close the stream."""
        return self._frames.broken

    def feed(self, data: bytes) -> None:
        self._frames.feed(data)

    def next_frame(self) -> bytes | None:
        return self._frames.next_frame()

    def next_pdu(self) -> Pdu | None:
        frame = self._frames.next_frame()
        return None if frame is None else decode(frame)

    def __iter__(self) -> Iterator[Pdu]:
        while (pdu := self.next_pdu()) is not None:
            yield pdu
