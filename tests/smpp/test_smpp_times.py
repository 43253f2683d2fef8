"""SMPP 3.4 time format (7.1.1): absolute with offsets, relative, refusals."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adressat.smpp.times import (
    SmppTimeError,
    format_relative,
    format_smpp_time,
    parse_smpp_time,
)

NOW = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC).timestamp()


def test_empty_means_not_set() -> None:
    assert parse_smpp_time("", NOW) is None


def test_absolute_utc_and_offsets() -> None:
    utc = datetime(2026, 12, 24, 18, 30, 5, 700_000, tzinfo=UTC).timestamp()
    assert parse_smpp_time("261224183005700+", NOW) == utc
    # 20:30 at UTC+2 (8 quarter hours) is 18:30 UTC
    assert parse_smpp_time("261224203005708+", NOW) == utc
    # 13:30 at UTC-5 (20 quarter hours) is 18:30 UTC
    assert parse_smpp_time("261224133005720-", NOW) == utc


def test_relative() -> None:
    assert parse_smpp_time("000001020304000R", NOW) == NOW + 86400 + 2 * 3600 + 3 * 60 + 4
    # one month from 30 November is 30 December
    expected = datetime(2026, 12, 30, 12, tzinfo=UTC).timestamp()
    assert parse_smpp_time("000100000000000R", NOW) == expected


@pytest.mark.parametrize(
    "bad",
    ["2612241830057", "26122418300570+X", "261324183005700+", "261224183005749+",
     "261224183005700*", "2a1224183005700+", "261231246000000+"],
)
def test_invalid(bad: str) -> None:
    with pytest.raises(SmppTimeError):
        parse_smpp_time(bad, NOW)


@given(st.integers(min_value=946_684_800, max_value=4_102_444_799))
def test_absolute_round_trip(epoch: int) -> None:
    assert parse_smpp_time(format_smpp_time(epoch), NOW) == epoch


@given(st.integers(min_value=0, max_value=100 * 86400 - 1))
def test_relative_round_trip(seconds: int) -> None:
    assert parse_smpp_time(format_relative(seconds), NOW) == NOW + seconds
