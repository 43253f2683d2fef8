"""Delivery receipt text: build (no original text) and tolerant parse."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adressat.sms.receipt import (
    DeliveryReceipt,
    ReceiptError,
    ReceiptStat,
    build_receipt,
    parse_receipt,
)

SECRET = "hunter2-secret-pin-4711"


def test_golden_receipts_from_the_field() -> None:
    # SMPP 3.4 Appendix B layout, as shown in Adobe Campaign's SMPP documentation
    r = parse_receipt(
        "id:1234567890 sub:001 dlvrd:001 submit date:1608011415 done date:1608011417"
        " stat:DELIVRD err:000 Text:Hello Adobe world"
    )
    assert r == DeliveryReceipt(
        id="1234567890",
        sub=1,
        dlvrd=1,
        submit_date=datetime(2016, 8, 1, 14, 15),
        done_date=datetime(2016, 8, 1, 14, 17),
        stat=ReceiptStat.DELIVRD,
        err="000",
        text="Hello Adobe world",
    )
    # Apache Camel's SMPP tests: letters in err, capital Text
    r = parse_receipt(
        b"id:2 sub:001 dlvrd:001 submit date:0908312310 done date:0908312311"
        b" stat:DELIVRD err:xxx Text:Hello SMPP world!"
    )
    assert (r.id, r.err, r.text) == ("2", "xxx", "Hello SMPP world!")
    assert r.done_date == datetime(2009, 8, 31, 23, 11)
    # hex id
    r = parse_receipt(
        "id:483D47F1 sub:001 dlvrd:001 submit date:0905151857 done date:0905151857"
        " stat:DELIVRD err:000 Text:Dear Godwin"
    )
    assert r.id == "483D47F1" and r.submit_date == datetime(2009, 5, 15, 18, 57)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (  # underscores, seconds, lower-case stat, 1-digit err, no text field
            "id:77 sub:1 dlvrd:0 submit_date:240229235959 done_date:240301000001"
            " stat:undeliv err:5",
            DeliveryReceipt(
                id="77",
                sub=1,
                dlvrd=0,
                submit_date=datetime(2024, 2, 29, 23, 59, 59),
                done_date=datetime(2024, 3, 1, 0, 0, 1),
                stat=ReceiptStat.UNDELIV,
                err="5",
                text=None,
            ),
        ),
        (  # upper-case keys, extra spaces, empty text
            "ID:abc-123   SUB:001  DLVRD:001 SUBMIT DATE: 2501011200  DONE DATE:2501011201 "
            " STAT: EXPIRED ERR:  27 TEXT:",
            DeliveryReceipt(
                id="abc-123",
                sub=1,
                dlvrd=1,
                submit_date=datetime(2025, 1, 1, 12, 0),
                done_date=datetime(2025, 1, 1, 12, 1),
                stat=ReceiptStat.EXPIRED,
                err="27",
                text="",
            ),
        ),
        (  # only id and stat; long stat spelling
            "id:9f8e7d6c stat:DELIVERED",
            DeliveryReceipt(id="9f8e7d6c", stat=ReceiptStat.DELIVRD),
        ),
        (  # fields in another order (Jasmin-style), four-digit year, text with colons
            "id:5 submit date:20240102030405 done date:2401020304 stat:ACCEPTD sub:001"
            " dlvrd:000 err:000 text:a: b id:6 stat:X",
            DeliveryReceipt(
                id="5",
                sub=1,
                dlvrd=0,
                submit_date=datetime(2024, 1, 2, 3, 4, 5),
                done_date=datetime(2024, 1, 2, 3, 4),
                stat=ReceiptStat.ACCEPTD,
                err="000",
                text="a: b id:6 stat:X",
            ),
        ),
        (
            "  id:1\tsub:001 dlvrd:001 stat:REJECTD err:ABC text:x  ",
            DeliveryReceipt(id="1", sub=1, dlvrd=1, stat=ReceiptStat.REJECTD, err="ABC", text="x"),
        ),
        ("id:1 stat:enroute", DeliveryReceipt(id="1", stat=ReceiptStat.ENROUTE)),
        ("id:1 stat:DELETED err:", DeliveryReceipt(id="1", stat=ReceiptStat.DELETED)),
        ("stat:UNKNOWN", DeliveryReceipt(stat=ReceiptStat.UNKNOWN)),
    ],
)
def test_variant_receipts_parse(text: str, expected: DeliveryReceipt) -> None:
    assert parse_receipt(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "hello world",
        f"{SECRET} id:1 stat:DELIVRD",  # content before the first field
        "id:1 stat:DELIVRD id:2",  # repeated key
        "id:1 stat:GONE",  # unknown state
        "id:1 stat:",  # empty value
        f"id:{SECRET} sub:x",  # sub not a number
        "id:1 submit date:2402301200",  # 30 February
        "id:1 done date:24010112",  # 8 digits
        "id:1 done date:abcdefghij",
        "id:has space stat:DELIVRD",
        "id:1 err:1234",
        "id:1 err:#",
    ],
)
def test_garbage_raises_a_typed_error_without_the_text(text: str) -> None:
    with pytest.raises(ReceiptError) as info:
        parse_receipt(text + " text:" + SECRET)
    assert SECRET not in str(info.value)
    assert info.value.__cause__ is None


def test_build_our_own_receipt_has_an_empty_text_field() -> None:
    r = DeliveryReceipt(
        id="0000000042",
        sub=1,
        dlvrd=1,
        submit_date=datetime(2026, 11, 30, 22, 5),
        done_date=datetime(2026, 11, 30, 22, 6),
        stat=ReceiptStat.DELIVRD,
        err="0",
    )
    assert build_receipt(r) == (
        "id:0000000042 sub:001 dlvrd:001 submit date:2611302205 done date:2611302206"
        " stat:DELIVRD err:000 text:"
    )
    assert parse_receipt(build_receipt(r)) == DeliveryReceipt(
        id="0000000042",
        sub=1,
        dlvrd=1,
        submit_date=datetime(2026, 11, 30, 22, 5),
        done_date=datetime(2026, 11, 30, 22, 6),
        stat=ReceiptStat.DELIVRD,
        err="000",
        text="",
    )


def test_build_converts_aware_dates_to_utc_and_caps_text_at_20() -> None:
    cet = timezone(timedelta(hours=1))
    r = DeliveryReceipt(
        id="1",
        submit_date=datetime(2026, 1, 1, 0, 30, tzinfo=cet),
        done_date=datetime(2026, 1, 1, 0, 31, tzinfo=UTC),
        stat=ReceiptStat.UNDELIV,
        err="A1",
        text="x" * 25,
    )
    s = build_receipt(r)
    assert "submit date:2512312330 " in s and "done date:2601010031 " in s
    assert s.endswith(" err:A1 text:" + "x" * 20)


@pytest.mark.parametrize(
    "receipt",
    [
        DeliveryReceipt(id=None, stat=ReceiptStat.DELIVRD),
        DeliveryReceipt(id="1", stat=None),
        DeliveryReceipt(id="1 2", stat=ReceiptStat.DELIVRD),
        DeliveryReceipt(id="1", stat=ReceiptStat.DELIVRD, done_date=datetime(2026, 1, 1)),
        DeliveryReceipt(
            id="1",
            stat=ReceiptStat.DELIVRD,
            sub=1000,
            submit_date=datetime(2026, 1, 1),
            done_date=datetime(2026, 1, 1),
        ),
        DeliveryReceipt(
            id="1",
            stat=ReceiptStat.DELIVRD,
            err="1234",
            submit_date=datetime(2026, 1, 1),
            done_date=datetime(2026, 1, 1),
        ),
    ],
)
def test_build_refuses_what_it_cannot_write(receipt: DeliveryReceipt) -> None:
    with pytest.raises(ReceiptError):
        build_receipt(receipt)


dates = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)).map(
    lambda d: d.replace(second=0, microsecond=0)
)


@settings(max_examples=200)
@given(
    st.from_regex(r"[0-9A-Za-z]{1,20}", fullmatch=True),
    st.integers(0, 999),
    st.integers(0, 999),
    dates,
    dates,
    st.sampled_from(list(ReceiptStat)),
    st.from_regex(r"[0-9]{3}|[A-Za-z][0-9A-Za-z]{0,2}", fullmatch=True),
)
def test_build_parse_round_trip(
    rid: str, sub: int, dlvrd: int, submit: datetime, done: datetime, stat: ReceiptStat, err: str
) -> None:
    r = DeliveryReceipt(rid, sub, dlvrd, submit, done, stat, err, "")
    assert parse_receipt(build_receipt(r)) == r
