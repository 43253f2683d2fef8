"""TP-Service-Centre-Time-Stamp (TP-SCTS), 3GPP TS 23.040 §9.2.3.11.

Seven octets in semi-octet representation (§9.1.2.3: the first digit of each pair in bits 0-3,
the second in bits 4-7), each octet one field of the SC's local time: year (two digits),
month, day, hour, minute, second, time zone. The time zone is the difference between local
time and GMT in quarters of an hour; bit 3 of the seventh octet (the first bit of its first
semi-octet, the tens digit) is its sign (0 positive, 1 negative).

adressat keeps a stamp as an integer epoch second (UTC) and shows the network these seven
octets. The year has two digits: decoding reads 70..99 as 1970..1999 and 00..69 as 2000..2069,
the span :func:`encode_scts` accepts. Pure: no clock.
"""

from __future__ import annotations

__all__ = ["SCTS_OCTETS", "SctsError", "encode_scts", "decode_scts"]

SCTS_OCTETS = 7
#: |time zone| in quarters of an hour: the tens digit has three bits (the fourth is the sign)
TZ_QUARTERS_MAX = 79
_YEAR_MIN, _YEAR_MAX = 1970, 2069
_SECONDS_PER_DAY = 86_400
# the semi-octet form of 0..99: units in the high nibble, tens in the low one
_SEMI = bytes(((v % 10) << 4) | (v // 10) for v in range(100))
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class SctsError(ValueError):
    """Not a TP-SCTS (wrong length, a digit over 9, a field out of range), or a time outside
    what seven semi-octets can carry."""


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def _civil_from_days(days: int) -> tuple[int, int, int]:
    days += 719_468
    era = days // 146_097
    doe = days - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


def encode_scts(epoch_s: int, tz_quarters: int = 0) -> bytes:
    """The seven octets of the stamp for ``epoch_s`` (UTC seconds), in local time at
    ``tz_quarters`` quarters of an hour from GMT."""
    if not -TZ_QUARTERS_MAX <= tz_quarters <= TZ_QUARTERS_MAX:
        raise SctsError("time zone out of range")
    local = epoch_s + tz_quarters * 900
    days, second_of_day = divmod(local, _SECONDS_PER_DAY)
    year, month, day = _civil_from_days(days)
    if not _YEAR_MIN <= year <= _YEAR_MAX:
        raise SctsError("time outside 1970..2069")
    hour, rest = divmod(second_of_day, 3600)
    minute, second = divmod(rest, 60)
    semi = _SEMI
    tz = semi[abs(tz_quarters)] | (0x08 if tz_quarters < 0 else 0)
    return bytes(
        (semi[year % 100], semi[month], semi[day], semi[hour], semi[minute], semi[second], tz)
    )


def _digits(octet: int) -> int:
    low, high = octet & 0x0F, octet >> 4
    if low > 9 or high > 9:
        raise SctsError("not a decimal semi-octet")
    return low * 10 + high


def decode_scts(octets: bytes) -> tuple[int, int]:
    """(epoch second UTC, time zone in quarters of an hour) of a TP-SCTS."""
    if len(octets) != SCTS_OCTETS:
        raise SctsError("a TP-SCTS has 7 octets")
    yy, month, day, hour, minute, second = (_digits(o) for o in octets[:6])
    tz_octet = octets[6]
    quarters = _digits(tz_octet & 0xF7)
    if quarters > TZ_QUARTERS_MAX:  # cannot happen: the tens digit has three bits
        raise SctsError("time zone out of range")
    tz_quarters = -quarters if tz_octet & 0x08 else quarters
    year = 1900 + yy if yy >= 70 else 2000 + yy
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if not 1 <= month <= 12:
        raise SctsError("month out of range")
    if not 1 <= day <= _DAYS_IN_MONTH[month - 1] + (month == 2 and leap):
        raise SctsError("day out of range")
    if hour > 23 or minute > 59 or second > 59:
        raise SctsError("time of day out of range")
    local = _days_from_civil(year, month, day) * _SECONDS_PER_DAY + hour * 3600
    return local + minute * 60 + second - tz_quarters * 900, tz_quarters
