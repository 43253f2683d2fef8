from __future__ import annotations

from adressat.core.model import Message, State, receipt_wanted
from adressat.core.passwords import hash_password, verify_password
from adressat.core.scheduling import claim_order_key, is_due, should_expire


def _m(**kw: object) -> Message:
    base: dict[str, object] = dict(id="a", account="acc", source_addr="S", destination="4670",
                                   content=b"secret text", submitted_at=0.0, expires_at=100.0,
                                   state=State.ROUTED)
    base.update(kw)
    return Message(**base)  # type: ignore[arg-type]


def test_repr_hides_text() -> None:
    assert "secret" not in repr(_m()) and "secret" not in str(_m())


def test_receipt_wanted() -> None:
    assert receipt_wanted(1, State.DELIVERED) and receipt_wanted(1, State.EXPIRED)
    assert not receipt_wanted(2, State.DELIVERED) and receipt_wanted(2, State.QUARANTINED)
    assert not receipt_wanted(0, State.EXPIRED) and not receipt_wanted(3, State.EXPIRED)
    assert receipt_wanted(0x11, State.DELIVERED)


def test_due_and_expiry() -> None:
    assert is_due(_m(), 1.0)
    assert not is_due(_m(next_attempt_at=5.0), 1.0)
    assert not is_due(_m(not_before=5.0), 1.0)
    assert not is_due(_m(state=State.HELD), 1.0)
    assert not is_due(_m(), 100.0)
    assert should_expire(_m(), 100.0) and not should_expire(_m(state=State.HELD), 1e9)
    assert not should_expire(_m(state=State.DISPATCHED), 1e9)


def test_order_key() -> None:
    ms = [_m(id="1", priority=0), _m(id="2", priority=3, submitted_at=5.0, next_attempt_at=5.0),
          _m(id="3", priority=0, next_attempt_at=-1.0)]
    assert [m.id for m in sorted(ms, key=claim_order_key)] == ["2", "3", "1"]


def test_passwords() -> None:
    h = hash_password("secret", b"0123456789abcdef", n=2**10)
    assert verify_password("secret", h)
    assert not verify_password("secreT", h)
    assert not verify_password("secret", "garbage")
    assert "secret" not in h
