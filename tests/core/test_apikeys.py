"""core/apikeys.py: the text form of an HTTP API key and its check (issue 12)."""

from __future__ import annotations

import hashlib

import pytest

from adressat.core.apikeys import format_api_key, parse_api_key, secret_hash, secret_matches

SECRET = bytes(range(32))


def test_format_parse_round_trip() -> None:
    key = format_api_key("0123456789ab", SECRET)
    assert key.startswith("adr_0123456789ab_") and "=" not in key and len(key) == 60
    assert parse_api_key(key) == ("0123456789ab", SECRET)
    for secret in (b"\x00" * 32, b"\xff" * 32):
        assert parse_api_key(format_api_key("ffffffffffff", secret)) == ("ffffffffffff", secret)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "adr_0123456789ab_",
        "xyz_0123456789ab_" + "A" * 43,
        "adr_0123456789AB_" + "A" * 43,  # upper-case id
        "adr_0123456789a_" + "A" * 44,  # short id
        "adr_0123456789ab_" + "A" * 42 + "=",
        "adr_0123456789ab_" + "A" * 42 + "!",
        "adr_0123456789ab_" + "A" * 42 + "B",  # stray bits: not canonical
        "adr-0123456789ab-" + "A" * 43,
        "Bearer adr_0123456789ab_" + "A" * 43,
    ],
)
def test_parse_refuses(text: str) -> None:
    assert parse_api_key(text) is None


def test_hash_and_match() -> None:
    assert secret_hash(SECRET) == hashlib.sha256(SECRET).digest()
    assert secret_matches(secret_hash(SECRET), SECRET)
    assert not secret_matches(secret_hash(SECRET), SECRET[:-1] + b"\x00")


def test_format_refuses_bad_parts() -> None:
    with pytest.raises(ValueError):
        format_api_key("0123", SECRET)
    with pytest.raises(ValueError):
        format_api_key("0123456789ab", b"short")
