"""TP-SCTS (3GPP TS 23.040 §9.2.3.11): one golden table drives encoding and decoding."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adressat.sms import SCTS_OCTETS, SctsError, decode_scts, encode_scts


def _utc(*fields: int) -> int:
    return int(datetime(*fields, tzinfo=UTC).timestamp())  # type: ignore[misc]


# (octets as sent, epoch second UTC, time zone in quarters of an hour)
GOLDEN: list[tuple[str, int, int]] = [
    # the example of the SMS PDU references: 12 Feb 1999 05:57:30 local, GMT+3 (0x21: units
    # 2 in the high nibble, tens 1 in the low one: 12 quarters)
    ("99202150750321", _utc(1999, 2, 12, 2, 57, 30), 12),
    # the epoch, GMT
    ("07101000000000", 0, 0),
    # 20 January 2023 10:45:00 GMT, when the misdeliveries began
    ("32100201540000", _utc(2023, 1, 20, 10, 45, 0), 0),
    # the same instant at GMT-6: 0x4A, sign bit (bit 3) set, 24 quarters
    ("3210024054004A", _utc(2023, 1, 20, 10, 45, 0), -24),
    # GMT-7 (0x8A) and GMT-4 (0x69), the decodings a protocol analyser shows
    ("3210023054008A", _utc(2023, 1, 20, 10, 45, 0), -28),
    ("32100260540069", _utc(2023, 1, 20, 10, 45, 0), -16),
    # a leap day, the last second of a day, India (+5:30 = 22 quarters)
    ("42209232959522", _utc(2024, 2, 29, 18, 29, 59), 22),
    # the last second 7 semi-octets can tell apart from 1970 (year 69)
    ("96211332959500", _utc(2069, 12, 31, 23, 59, 59), 0),
    # Chatham Islands, +13:45 = 55 quarters: the largest in use
    ("52306031000055", _utc(2025, 3, 5, 23, 15, 0), 55),
]


@pytest.mark.parametrize(("octets", "epoch_s", "tz"), GOLDEN)
def test_golden_encode_and_decode(octets: str, epoch_s: int, tz: int) -> None:
    raw = bytes.fromhex(octets)
    assert len(raw) == SCTS_OCTETS
    assert encode_scts(epoch_s, tz) == raw
    assert decode_scts(raw) == (epoch_s, tz)


@given(st.integers(0, _utc(2070, 1, 1) - 1 - 56 * 900), st.integers(-48, 56))
def test_round_trip(epoch_s: int, tz: int) -> None:
    if epoch_s + tz * 900 < 0:  # local time before 1970
        return
    raw = encode_scts(epoch_s, tz)
    assert decode_scts(raw) == (epoch_s, tz)


@given(st.integers(0, _utc(2069, 12, 31)))
def test_distinct_seconds_distinct_stamps(epoch_s: int) -> None:
    # what the handset compares: one second apart is another stamp
    assert encode_scts(epoch_s) != encode_scts(epoch_s + 1)


def test_out_of_range_times_refused() -> None:
    with pytest.raises(SctsError):
        encode_scts(-1)
    with pytest.raises(SctsError):
        encode_scts(_utc(2070, 1, 1))
    with pytest.raises(SctsError):
        encode_scts(1000, 80)
    with pytest.raises(SctsError):
        encode_scts(0, -1)  # 1969 in local time


@pytest.mark.parametrize(
    "octets",
    [
        "321002015400",  # six octets
        "3210020154000000",  # eight
        "3A100201540000",  # a digit over 9 (units of the year)
        "32000201540000",  # month 0
        "32201301540000",  # 31 February
        "32209201540000",  # 29 February 2023
        "32100242540000",  # hour 24
        "32100201060000",  # minute 60
        "32100201540600",  # second 60
    ],
)
def test_malformed_refused(octets: str) -> None:
    with pytest.raises(SctsError):
        decode_scts(bytes.fromhex(octets))
