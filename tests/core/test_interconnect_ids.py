"""How a receipt's partner id is read (core/interconnect.py, id_candidates): under each
connector format the receipt finds the id its submit_sm_resp gave, and under a known format
one receipt never reads as two messages' ids, which ``auto`` cannot promise for small ids."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adressat.core.interconnect import RECEIPT_ID_FORMATS, canonical_id, id_candidates

#: (the response's spelling, the receipt's spelling) of one number, per format
SPELLINGS = {
    "same": [(str, str), (lambda n: f"{n:x}", lambda n: f"{n:X}"),
             (lambda n: f"{n:010d}", str)],
    "receipt-decimal": [(lambda n: f"{n:x}", str), (lambda n: f"{n:08X}", lambda n: f"{n:012d}")],
    "receipt-hex": [(str, lambda n: f"{n:x}"), (lambda n: f"{n:010d}", lambda n: f"{n:X}")],
}


@given(n=st.integers(min_value=0, max_value=2**63), which=st.integers(0, 5))
def test_the_receipt_finds_its_response_id_under_its_format_and_under_auto(n: int,
                                                                            which: int) -> None:
    for fmt, pairs in SPELLINGS.items():
        resp, receipt = pairs[which % len(pairs)]
        stored = canonical_id(resp(n))
        assert stored in id_candidates(receipt(n), fmt), (fmt, resp(n), receipt(n))
        assert stored in id_candidates(receipt(n), "auto")
        assert len(id_candidates(receipt(n), fmt)) == 1


def test_a_small_counter_is_ambiguous_under_auto_and_not_under_its_format() -> None:
    # a partner counting decimal ids from 1, in its responses and its receipts alike
    ids = {str(n) for n in range(1, 5001)}
    ambiguous_auto = [i for i in ids if len(ids & set(id_candidates(i, "auto"))) > 1]
    ambiguous_same = [i for i in ids if len(ids & set(id_candidates(i, "same"))) > 1]
    assert len(ambiguous_auto) > 1000  # why a connector says its format
    assert ambiguous_same == []
    # a partner writing hex responses and decimal receipts, counting from 1
    hex_ids = {f"{n:x}" for n in range(1, 5001)}
    assert all(set(id_candidates(str(n), "receipt-decimal")) == {f"{n:x}"}
               for n in range(1, 5001))
    assert sum(len(hex_ids & set(id_candidates(str(n), "auto"))) > 1
               for n in range(1, 5001)) > 1000


@pytest.mark.parametrize(("raw", "fmt"), [("12ab", "receipt-decimal"), ("xyz", "receipt-hex"),
                                          ("12", "sometimes")])
def test_an_id_that_cannot_be_read_so_is_refused(raw: str, fmt: str) -> None:
    with pytest.raises(ValueError):
        id_candidates(raw, fmt)


def test_the_formats_are_the_ones_the_connector_check_knows() -> None:
    from dataclasses import replace

    from adressat.core.interconnect_config import check_connector
    from adressat.core.model import ConnectorConfig

    cfg = ConnectorConfig("hub", "127.0.0.1", 2775, "us", "pw")
    for fmt in RECEIPT_ID_FORMATS:
        check_connector(replace(cfg, receipt_ids=fmt))
    with pytest.raises(ValueError, match="receipt ids"):
        check_connector(replace(cfg, receipt_ids="hex"))


def test_auto_learns_one_spelling_and_nothing_from_two() -> None:
    from adressat.core.interconnect import SPELLING_EVIDENCE_MIN, ReceiptSpelling

    sp = ReceiptSpelling()
    assert sp.saw("5", "5") is None  # every spelling reads 5 as 5: no evidence
    for n in range(SPELLING_EVIDENCE_MIN - 1):
        assert sp.saw(str(0xA000 + n), str(0xA000 + n)) == "same"
    assert sp.learned is None and sp.preferred("16") is None  # not yet
    assert sp.saw("40960", "40960") == "same"
    assert sp.learned == "same"
    assert sp.preferred("264544") == "264544"  # not "40960", its decimal-to-hex reading
    # a hex response answered by a decimal receipt: a second spelling, so nothing is trusted
    assert sp.saw("41000", canonical_id(f"{41000:x}")) == "receipt-decimal"
    assert sp.mixed and sp.learned is None and sp.preferred("264544") is None

    hexed = ReceiptSpelling()
    for n in range(SPELLING_EVIDENCE_MIN):
        hexed.saw(str(0xA000 + n), f"{0xA000 + n:x}")
    assert hexed.learned == "receipt-decimal"
    assert hexed.preferred("16") == "10"
    assert hexed.preferred("1a") is None  # not decimal: that spelling cannot read it
