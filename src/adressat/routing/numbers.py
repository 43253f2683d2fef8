"""Address normalisation to E.164 (DESIGN.md, Routing step 1).

``normalise(addr, ton, npi)`` turns an SMPP address (digits, type of number, numbering plan)
into E.164 digits without '+', or raises ``InvalidNumber`` whose message is a short reason and
never contains the address (I6: what a sender typed may be personal data).

Results are cached per (addr, ton, npi, region, role, valid_ranges) in a bounded LRU,
including refusals, so a sender that repeats the same bad number costs one dictionary lookup.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import phonenumbers

from adressat.smpp.constants import Npi, Ton

__all__ = [
    "InvalidNumber",
    "Ton",
    "Npi",
    "normalise",
    "normalise_source",
    "OWN_RANGE_DEFAULT",
    "ADDRESS_LENGTH_MAX",
    "ALPHANUMERIC_LENGTH_MAX",
    "CACHE_ENTRIES_MAX",
]


class InvalidNumber(ValueError):
    """The address is not a usable number. ``str(e)`` is a short reason, never the input."""


# The own network's simulated range (netsim numbers 46701000000 upward, up to 2.7M
# subscribers). phonenumbers 9.x considers all of it valid (tests check a sample); a range
# passed in ``valid_ranges`` is accepted even if a future metadata update disagrees.
OWN_RANGE_DEFAULT: tuple[int, int] = (46701000000, 46703699999)

ADDRESS_LENGTH_MAX = 21  # SMPP source/destination_addr is C-Octet String of max 21
ALPHANUMERIC_LENGTH_MAX = 11  # GSM 03.40 TP-OA alphanumeric: 11 characters
CACHE_ENTRIES_MAX = 65536

_ACCEPTED_NPI = frozenset({Npi.UNKNOWN, Npi.ISDN, Npi.LAND_MOBILE})
_DIGITS = frozenset("0123456789")


def normalise(
    addr: str,
    ton: int,
    npi: int,
    default_region: str = "SE",
    *,
    valid_ranges: Sequence[tuple[int, int]] = (OWN_RANGE_DEFAULT,),
) -> str:
    """A DESTINATION address as E.164 digits without '+'; raises ``InvalidNumber``.

    TON 1 (international): the digits are the full number (a leading '+' or '00' is accepted).
    TON 0 (unknown) and 2 (national): a leading '+' or '00' means international, otherwise the
    number is parsed as a national number of ``default_region``. TON 5 (alphanumeric) is never
    a destination; TON 3, 4, 6 are not supported. NPI must be 0, 1 or 6.
    The number must pass ``phonenumbers.is_valid_number`` or lie in one of ``valid_ranges``
    (inclusive integer E.164 ranges, default: the own network's range).
    """
    if ton == Ton.INTERNATIONAL and type(addr) is str and addr.isdigit() and addr.isascii() \
            and addr[0] != "0" and npi in _ACCEPTED_NPI:
        # the bulk of the traffic, before any cache: an international number inside a known
        # range is E.164 as written (the same fast path as in _cached, without the LRU's
        # hashing of every argument, which misses anyway on a network of millions)
        as_int = int(addr)
        for low, high in valid_ranges:
            if low <= as_int <= high and len(addr) == len(str(low)):
                return addr
    ok, value = _cached(addr, ton, npi, default_region, False, tuple(valid_ranges))
    if not ok:
        raise InvalidNumber(value)
    return value


def normalise_source(
    addr: str,
    ton: int,
    npi: int,
    default_region: str = "SE",
    *,
    valid_ranges: Sequence[tuple[int, int]] = (OWN_RANGE_DEFAULT,),
) -> str:
    """A SOURCE address: as ``normalise``, but TON 5 (alphanumeric, 1..11 printable
    characters) is accepted and returned unchanged."""
    ok, value = _cached(addr, ton, npi, default_region, True, tuple(valid_ranges))
    if not ok:
        raise InvalidNumber(value)
    return value


def cache_clear() -> None:
    _cached.cache_clear()


@functools.lru_cache(maxsize=CACHE_ENTRIES_MAX)
def _cached(
    addr: str,
    ton: int,
    npi: int,
    region: str,
    source: bool,
    valid_ranges: tuple[tuple[int, int], ...],
) -> tuple[bool, str]:
    """(True, e164) or (False, reason). Refusals are cached too."""
    if not isinstance(addr, str):
        return False, "address is not text"
    if not addr:
        return False, "empty address"
    if len(addr) > ADDRESS_LENGTH_MAX:
        return False, "address too long"
    if ton == Ton.ALPHANUMERIC:
        if not source:
            return False, "alphanumeric address is not a destination"
        if len(addr) > ALPHANUMERIC_LENGTH_MAX:
            return False, "alphanumeric address too long"
        if not addr.isprintable() or addr.strip() != addr:
            return False, "alphanumeric address has unprintable characters"
        return True, addr
    if ton not in (Ton.UNKNOWN, Ton.INTERNATIONAL, Ton.NATIONAL):
        return False, "unsupported type of number"
    if npi not in _ACCEPTED_NPI:
        return False, "unsupported numbering plan"

    international = ton == Ton.INTERNATIONAL
    digits = addr
    if digits.startswith("+"):
        digits = digits[1:]
        international = True
    elif digits.startswith("00"):
        digits = digits[2:]
        international = True
    if not digits or not _DIGITS.issuperset(digits):
        return False, "not a number"

    if international and digits.isascii() and digits[0] != "0":
        # fast path: an international number inside a known range (the own network's plan)
        # is E.164 as written; no parse needed for the bulk of the traffic
        as_int = int(digits)
        for low, high in valid_ranges:
            if low <= as_int <= high and len(digits) == len(str(low)):
                return True, digits
    try:
        if international:
            parsed = phonenumbers.parse("+" + digits, None)
        else:
            parsed = phonenumbers.parse(digits, region)
    except phonenumbers.NumberParseException:
        parsed = None
    if parsed is None:
        return False, "not a number"
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)[1:]
    if len(e164) > 15:
        return False, "number too long"
    as_int = int(e164)
    for low, high in valid_ranges:
        if low <= as_int <= high and len(e164) == len(str(low)):
            return True, e164
    if not phonenumbers.is_valid_number(parsed):
        return False, "not a valid number"
    return True, e164
