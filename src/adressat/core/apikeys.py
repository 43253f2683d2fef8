"""HTTP API keys (issue 12): their text form, and how a presented key is checked. Pure: the
random octets are made by the caller (``cli_http``), the store keeps only the hash.

A key is ``adr_<key_id>_<secret>``: ``key_id`` KEY_ID_LENGTH lower-case hex characters (the
row to look up, shown by ``account key list``), ``secret`` SECRET_LENGTH random octets in
base64url without padding. Only ``sha256(secret)`` is stored: a 256-bit random secret needs
no key stretching (nothing to guess from a dictionary), and a per-request scrypt would cap
the HTTP API at some 25 requests a second per core. The hashes are compared with
``hmac.compare_digest``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

KEY_PREFIX = "adr"
KEY_ID_LENGTH = 12  # hex characters (6 random octets)
SECRET_LENGTH = 32  # octets
_SECRET_TEXT_LENGTH = 43  # base64url of 32 octets, no padding
_HEX = frozenset("0123456789abcdef")


def format_api_key(key_id: str, secret: bytes) -> str:
    """The key as a sender is given it (once)."""
    if len(key_id) != KEY_ID_LENGTH or not set(key_id) <= _HEX:
        raise ValueError(f"key_id must be {KEY_ID_LENGTH} lower-case hex characters")
    if len(secret) != SECRET_LENGTH:
        raise ValueError(f"secret must be {SECRET_LENGTH} octets")
    text = base64.urlsafe_b64encode(secret).rstrip(b"=").decode("ascii")
    return f"{KEY_PREFIX}_{key_id}_{text}"


def parse_api_key(text: str) -> tuple[str, bytes] | None:
    """(key_id, secret) of a presented key, or None for anything that is not one."""
    if len(text) != len(KEY_PREFIX) + 2 + KEY_ID_LENGTH + _SECRET_TEXT_LENGTH:
        return None
    prefix, sep, rest = text.partition("_")
    key_id, sep2, secret_text = rest.partition("_")
    if prefix != KEY_PREFIX or not sep or not sep2:
        return None
    if len(key_id) != KEY_ID_LENGTH or not set(key_id) <= _HEX:
        return None
    if len(secret_text) != _SECRET_TEXT_LENGTH or "=" in secret_text:
        return None
    try:
        secret = base64.urlsafe_b64decode(secret_text + "=")
    except (binascii.Error, ValueError):
        return None
    if len(secret) != SECRET_LENGTH or format_api_key(key_id, secret) != text:
        return None  # not the canonical form (e.g. stray bits in the last character)
    return key_id, secret


def secret_hash(secret: bytes) -> bytes:
    """What the store keeps of a key's secret."""
    return hashlib.sha256(secret).digest()


def secret_matches(stored_hash: bytes, secret: bytes) -> bool:
    """Whether ``secret`` is the one whose hash was stored (constant time)."""
    return hmac.compare_digest(stored_hash, secret_hash(secret))
