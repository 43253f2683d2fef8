"""Account password hashing (scrypt). The salt is passed in (``os.urandom(16)`` by the caller)."""

from __future__ import annotations

import hashlib
import hmac

_N = 2**14
_R = 8
_P = 1


def hash_password(password: str, salt: bytes, *, n: int = _N, r: int = _R, p: int = _P) -> str:
    """``scrypt$n$r$p$salt-hex$hash-hex``."""
    if len(salt) < 8:
        raise ValueError("salt must be at least 8 octets")
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, dklen=32)
    return f"scrypt${n}${r}${p}${salt.hex()}${digest.hex()}"


def verify_password(password: str, encoded: str) -> bool:
    try:
        scheme, n, r, p, salt_hex, digest_hex = encoded.split("$")
        if scheme != "scrypt":
            return False
        salt = bytes.fromhex(salt_hex)
        expected = bytes.fromhex(digest_hex)
        digest = hashlib.scrypt(
            password.encode("utf-8"), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)
