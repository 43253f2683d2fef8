"""E.164 normalisation: valid/invalid, TON/NPI variants, '+'/'00', own range, no input in errors."""

from __future__ import annotations

import random

import pytest

from adressat.routing.numbers import (
    OWN_RANGE_DEFAULT,
    InvalidNumber,
    cache_clear,
    normalise,
    normalise_source,
)


@pytest.mark.parametrize(
    ("addr", "ton", "npi", "expected"),
    [
        ("46701234567", 1, 1, "46701234567"),
        ("+46701234567", 1, 1, "46701234567"),
        ("0046701234567", 1, 1, "46701234567"),
        ("0701234567", 0, 1, "46701234567"),
        ("0701234567", 2, 1, "46701234567"),
        ("701234567", 2, 1, "46701234567"),
        ("+46701234567", 0, 0, "46701234567"),
        ("0046701234567", 2, 1, "46701234567"),
        ("+4915112345678", 0, 1, "4915112345678"),
        ("4791234567", 1, 1, "4791234567"),
        ("46701234567", 1, 6, "46701234567"),
    ],
)
def test_valid(addr: str, ton: int, npi: int, expected: str) -> None:
    assert normalise(addr, ton, npi) == expected


def test_default_region_changes_national_parse() -> None:
    assert normalise("91234567", 2, 1, default_region="NO") == "4791234567"


@pytest.mark.parametrize(
    ("addr", "ton", "npi"),
    [
        ("", 1, 1),
        ("123", 1, 1),  # too short for any country
        ("4670123456789012345", 1, 1),
        ("46701abc567", 1, 1),
        ("+", 1, 1),
        ("00", 0, 1),
        ("46701234567", 3, 1),  # network specific: unsupported
        ("46701234567", 6, 1),  # abbreviated
        ("46701234567", 1, 9),  # private numbering plan
        ("0" * 30, 1, 1),
        ("4600000000", 1, 1),  # not a valid Swedish number
        ("46701 234567", 1, 1),
    ],
)
def test_invalid(addr: str, ton: int, npi: int) -> None:
    with pytest.raises(InvalidNumber):
        normalise(addr, ton, npi)


def test_alphanumeric_is_a_source_never_a_destination() -> None:
    with pytest.raises(InvalidNumber, match="not a destination"):
        normalise("MyBank", 5, 0)
    assert normalise_source("MyBank", 5, 0) == "MyBank"
    assert normalise_source("+46701234567", 1, 1) == "46701234567"
    with pytest.raises(InvalidNumber):
        normalise_source("ABCDEFGHIJKL", 5, 0)  # 12 characters
    with pytest.raises(InvalidNumber):
        normalise_source("Bank\n", 5, 0)


def test_whole_own_range_is_valid_sample() -> None:
    low, high = OWN_RANGE_DEFAULT
    rng = random.Random(7)
    sample = [low, high, low + 1, high - 1] + [rng.randint(low, high) for _ in range(2000)]
    for n in sample:
        assert normalise(str(n), 1, 1) == str(n)
        # phonenumbers itself agrees (no reliance on the override today)
        assert normalise(str(n), 1, 1, valid_ranges=()) == str(n)
        assert normalise("0" + str(n)[2:], 2, 1) == str(n)


def test_own_range_override_accepts_what_metadata_refuses() -> None:
    # 46999999999 is not a valid Swedish number; an explicit range makes it acceptable.
    with pytest.raises(InvalidNumber):
        normalise("46999999999", 1, 1)
    ranges = ((46999999900, 46999999999),)
    assert normalise("46999999999", 1, 1, valid_ranges=ranges) == "46999999999"


SECRET = "46709999998"


@pytest.mark.parametrize(
    ("addr", "ton", "npi"),
    [
        ("x" + SECRET, 1, 1),
        (SECRET + "x", 0, 1),
        (SECRET, 7, 1),
        (SECRET, 1, 13),
        (SECRET + SECRET, 1, 1),
        ("Secret" + SECRET, 5, 0),
        (SECRET[:4], 1, 1),
    ],
)
def test_error_messages_carry_no_input(addr: str, ton: int, npi: int) -> None:
    with pytest.raises(InvalidNumber) as info:
        normalise(addr, ton, npi)
    msg = str(info.value)
    assert SECRET[:4] not in msg and "Secret" not in msg
    assert len(msg) < 60 and not any(ch.isdigit() for ch in msg)


def test_refusals_are_cached_and_repeatable() -> None:
    cache_clear()
    for _ in range(3):
        with pytest.raises(InvalidNumber):
            normalise("999", 1, 1)
    assert normalise("0701234567", 0, 1) == normalise("0701234567", 0, 1)
