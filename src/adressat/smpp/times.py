"""SMPP 3.4 time format (section 7.1.1): ``YYMMDDhhmmsstnnp``, absolute or relative.

* absolute: ``t`` tenths of a second, ``nn`` the offset from UTC in quarter hours (00..48),
  ``p`` ``+`` (ahead of UTC) or ``-`` (behind);
* relative: ``p`` is ``R``; ``YYMMDDhhmmss`` is a duration added to *now* (``t`` and ``nn`` are
  ``0`` and ``00``).

Time is passed in (epoch seconds); nothing here reads a clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

SMPP_TIME_LENGTH = 16


class SmppTimeError(ValueError):
    """The value is not a valid SMPP time. The message names the part, never more."""


def _digits(value: str, start: int, end: int, what: str) -> int:
    part = value[start:end]
    if not part.isdigit() or not part.isascii():
        raise SmppTimeError(f"{what}: not digits")
    return int(part)


def _add_months(dt: datetime, months: int) -> datetime:
    month0 = dt.month - 1 + months
    year = dt.year + month0 // 12
    month = month0 % 12 + 1
    # clamp the day to the length of the target month
    for day in (dt.day, 30, 29, 28):
        try:
            return dt.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    raise SmppTimeError("relative month out of range")


def parse_smpp_time(value: str, now: float) -> float | None:
    """Epoch seconds for an SMPP time string, or ``None`` for the empty string (not set)."""
    if value == "":
        return None
    if len(value) != SMPP_TIME_LENGTH:
        raise SmppTimeError(f"length {len(value)}, expected {SMPP_TIME_LENGTH}")
    yy = _digits(value, 0, 2, "year")
    mo = _digits(value, 2, 4, "month")
    dd = _digits(value, 4, 6, "day")
    hh = _digits(value, 6, 8, "hour")
    mi = _digits(value, 8, 10, "minute")
    ss = _digits(value, 10, 12, "second")
    tenths = _digits(value, 12, 13, "tenths")
    nn = _digits(value, 13, 15, "offset")
    p = value[15]
    if p == "R":
        if hh > 99 or mi > 99 or ss > 99:
            raise SmppTimeError("relative field out of range")
        base = datetime.fromtimestamp(now, tz=UTC)
        moved = _add_months(base, yy * 12 + mo)
        delta = timedelta(days=dd, hours=hh, minutes=mi, seconds=ss)
        return (moved + delta).timestamp()
    if p not in "+-":
        raise SmppTimeError("direction must be '+', '-' or 'R'")
    if nn > 48:
        raise SmppTimeError("offset beyond 48 quarter hours")
    try:
        local = datetime(2000 + yy, mo, dd, hh, mi, ss, tenths * 100_000, tzinfo=UTC)
    except ValueError:
        raise SmppTimeError("not a calendar time") from None
    offset = timedelta(minutes=15 * nn)
    utc = local - offset if p == "+" else local + offset
    return utc.timestamp()


def format_smpp_time(epoch: float) -> str:
    """Absolute SMPP time in UTC (``nn`` = 00, ``p`` = ``+``)."""
    dt = datetime.fromtimestamp(epoch, tz=UTC)
    if not 2000 <= dt.year <= 2099:
        raise ValueError("year outside the SMPP range 2000..2099")
    return dt.strftime("%y%m%d%H%M%S") + f"{dt.microsecond // 100_000}00+"


def format_relative(seconds: int) -> str:
    """Relative SMPP time for a duration below 100 days (days, hours, minutes, seconds)."""
    if not 0 <= seconds < 100 * 86400:
        raise ValueError("relative duration out of range")
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"0000{days:02d}{hours:02d}{minutes:02d}{secs:02d}000R"
