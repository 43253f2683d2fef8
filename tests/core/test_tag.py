from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from adressat.core.tag import binding_tag, verify_tag

KEY = b"k" * 32
BASE = ("0123abcd", "46701000001", b"hello", 0, 0)


def test_length_and_verify() -> None:
    t = binding_tag(KEY, *BASE)
    assert len(t) == 16
    assert verify_tag(KEY, t, *BASE)
    assert not verify_tag(b"other", t, *BASE)


def _flip(b: bytes, bit: int) -> bytes:
    ba = bytearray(b)
    ba[bit // 8] ^= 1 << (bit % 8)
    return bytes(ba)


@given(st.binary(min_size=1, max_size=160), st.data())
def test_any_content_bit_changes_tag(content: bytes, data: st.DataObject) -> None:
    bit = data.draw(st.integers(0, len(content) * 8 - 1))
    t = binding_tag(KEY, "id1", "4670", content, 0, 0)
    assert binding_tag(KEY, "id1", "4670", _flip(content, bit), 0, 0) != t
    assert not verify_tag(KEY, t, "id1", "4670", _flip(content, bit), 0, 0)


@given(st.integers(0, 255), st.integers(0, 255))
def test_coding_and_esm_change_tag(dc: int, esm: int) -> None:
    t = binding_tag(KEY, "id", "4670", b"x", dc, esm)
    assert binding_tag(KEY, "id", "4670", b"x", dc ^ 1, esm) != t
    assert binding_tag(KEY, "id", "4670", b"x", dc, esm ^ 0x40) != t


def test_id_and_destination_change_tag() -> None:
    t = binding_tag(KEY, *BASE)
    assert binding_tag(KEY, "0123abce", *BASE[1:]) != t
    assert binding_tag(KEY, BASE[0], "46701000002", *BASE[2:]) != t
    # the separator keeps (id, destination) boundaries unambiguous
    assert binding_tag(KEY, "ab", "1", b"", 0, 0) != binding_tag(KEY, "a", "b1", b"", 0, 0)


def test_tag_is_the_documented_hmac() -> None:
    """Stored tags stay verifiable: the value is exactly the one the module docstring gives
    (HMAC-SHA256 over id, NUL, destination, NUL, SHA-256(content || dc || esm), 16 octets)."""
    import hashlib
    import hmac

    key, mid, dest, content = b"k" * 32, "0" * 32, "46701000001", b"hello \x00 world"
    digest = hashlib.sha256(content + bytes((0x08, 0x40))).digest()
    material = mid.encode() + b"\x00" + dest.encode() + b"\x00" + digest
    want = hmac.new(key, material, hashlib.sha256).digest()[:16]
    assert binding_tag(key, mid, dest, content, 0x08, 0x40) == want
