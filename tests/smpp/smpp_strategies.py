"""Hypothesis strategies derived from the schema tables (not written per PDU)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from adressat.smpp.constants import RESPONSE_BIT, CommandId, CommandStatus
from adressat.smpp.pdus import Pdu
from adressat.smpp.schema import BODIES, TLVS, WIRE_ONLY_KINDS, Field, Kind, TlvKind

_LATIN1_NO_NUL = st.characters(min_codepoint=1, max_codepoint=255)
_TIME = st.one_of(
    st.just(""),
    st.builds(
        lambda digits, sign: digits + sign,
        st.text(alphabet="0123456789", min_size=15, max_size=15),
        st.sampled_from("+-R"),
    ),
)


def field_strategy(f: Field) -> st.SearchStrategy[Any]:
    if f.kind is Kind.INT8:
        return st.integers(0, 0xFF)
    if f.kind is Kind.INT16:
        return st.integers(0, 0xFFFF)
    if f.kind is Kind.INT32:
        return st.integers(0, 0xFFFFFFFF)
    if f.kind is Kind.CSTRING:
        return st.text(alphabet=_LATIN1_NO_NUL, max_size=f.size - 1)
    if f.kind is Kind.TIME:
        return _TIME
    if f.kind is Kind.OCTETS:
        return st.binary(max_size=f.size)
    if f.kind is Kind.LIST:
        if f.variants is None:
            item = layout_strategy(f.layout)
        else:
            tag = f.layout[0].name
            item = st.one_of(
                *[
                    layout_strategy(f.layout[1:] + layout).map(
                        lambda d, t=tagv: {tag: t, **d}  # type: ignore[misc]
                    )
                    for tagv, layout in f.variants.items()
                ]
            )
        return st.lists(item, max_size=4).map(tuple)
    raise AssertionError(f.kind)


def layout_strategy(fields: tuple[Field, ...]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {f.name: field_strategy(f) for f in fields if f.kind not in WIRE_ONLY_KINDS}
    )


def tlv_value_strategy(tag: int) -> st.SearchStrategy[Any]:
    spec = TLVS[tag]  # type: ignore[index]
    if spec.kind is TlvKind.INT8:
        return st.integers(0, 0xFF)
    if spec.kind is TlvKind.INT16:
        return st.integers(0, 0xFFFF)
    if spec.kind is TlvKind.INT32:
        return st.integers(0, 0xFFFFFFFF)
    if spec.kind is TlvKind.CSTRING:
        return st.text(alphabet=_LATIN1_NO_NUL, max_size=spec.length_max - 1)
    return st.binary(min_size=spec.length_min, max_size=min(spec.length_max, 300))


KNOWN_TAGS = sorted(int(t) for t in TLVS)
_known_tlv = st.sampled_from(KNOWN_TAGS).flatmap(
    lambda t: st.tuples(st.just(t), tlv_value_strategy(t))
)
_unknown_tlv = st.tuples(
    st.integers(0, 0xFFFF).filter(lambda t: t not in TLVS), st.binary(max_size=20)
)
TLV_LISTS = st.lists(st.one_of(_known_tlv, _unknown_tlv), max_size=4)

ERROR_STATUSES = st.sampled_from([s for s in CommandStatus if s]) | st.integers(0x400, 0x4FF)


def pdu_strategy(cid: CommandId) -> st.SearchStrategy[Pdu]:
    seq = st.integers(0, 0xFFFFFFFF)
    full = st.builds(
        lambda s, status, fields, tlvs: Pdu.make(cid, s, status, tlvs=tlvs, **fields),
        seq,
        st.just(0) | ERROR_STATUSES if cid & RESPONSE_BIT else st.just(0),
        layout_strategy(BODIES[cid]),
        TLV_LISTS,
    )
    if cid & RESPONSE_BIT and BODIES[cid]:
        empty_error = st.builds(lambda s, status: Pdu.make(cid, s, status), seq, ERROR_STATUSES)
        return st.one_of(full, empty_error)
    return full


ANY_PDU = st.sampled_from(list(BODIES)).flatmap(pdu_strategy)
