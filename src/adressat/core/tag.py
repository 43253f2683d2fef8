"""Binding tag (DESIGN.md, "Binding tag").

``tag = HMAC-SHA256(key, id || 0x00 || destination || 0x00 || SHA-256(content || dc || esm))``
truncated to 16 octets. Recomputed by the delivery adapter from exactly what it is about to
send; a mismatch means an in-memory mix-up and the message must not go out.
"""

from __future__ import annotations

import hashlib
import hmac

TAG_LENGTH = 16


def content_digest(content: bytes, data_coding: int, esm_class: int) -> bytes:
    return hashlib.sha256(content + bytes((data_coding & 0xFF, esm_class & 0xFF))).digest()


def binding_tag(
    key: bytes, message_id: str, destination: str, content: bytes, data_coding: int, esm_class: int
) -> bytes:
    if not key:
        raise ValueError("binding tag key must not be empty")
    material = b"%s\x00%s\x00%s" % (
        message_id.encode("utf-8"),
        destination.encode("utf-8"),
        content_digest(content, data_coding, esm_class),
    )
    keyed = _KEYED.get(key)
    if keyed is None:
        if len(_KEYED) >= 8:  # a node has one key; tests make a few
            _KEYED.clear()
        keyed = _KEYED[key] = hmac.new(key, digestmod=hashlib.sha256)
    h = keyed.copy()  # the key's inner and outer states, computed once: 1.6 us, not 2.9
    h.update(material)
    return h.digest()[:TAG_LENGTH]


#: key -> an HMAC-SHA256 with that key and no message yet, copied for each tag
_KEYED: dict[bytes, hmac.HMAC] = {}


def verify_tag(
    key: bytes,
    tag: bytes,
    message_id: str,
    destination: str,
    content: bytes,
    data_coding: int,
    esm_class: int,
) -> bool:
    expected = binding_tag(key, message_id, destination, content, data_coding, esm_class)
    return hmac.compare_digest(expected, tag)
