"""Per-account bind admission in SmppService, with time moved by hand: bound sessions at once
(a slot is taken before the bind_resp leaves, so binds racing for the last one cannot both get
it) and accepted binds in a sliding minute."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from adressat.ingress.smpp import BindWindow, SmppService

_ids = itertools.count(1)


@dataclass(eq=False)
class FakeConn:
    account: str | None = None
    is_gone: bool = False
    peer: str = "127.0.0.1:1"
    conn_id: int = field(default_factory=lambda: next(_ids))


def service(sessions_max: int = 0, binds_per_minute_max: int = 0) -> SmppService:
    return SmppService(None, None, None,  # type: ignore[arg-type]  # bind admission only
                       account_sessions_max=sessions_max,
                       account_binds_per_minute_max=binds_per_minute_max)


def admit(svc: SmppService, conn: FakeConn, account: str, now: float = 0.0) -> object:
    refusal = svc._admit_bind(conn, account, now)  # type: ignore[arg-type]
    if refusal is None:
        conn.account = account  # what _bind does next
    return refusal


def test_a_slot_is_taken_at_admission_not_at_on_bound() -> None:
    """Three binds admitted before any of them is answered (password checks finishing in
    one loop turn): the third is refused."""
    svc = service(sessions_max=2)
    a, b, c = FakeConn(), FakeConn(), FakeConn()
    assert admit(svc, a, "acme") is None
    assert admit(svc, b, "acme") is None
    assert admit(svc, c, "acme") == ("sessions", 2)
    assert admit(svc, FakeConn(), "other") is None  # per account
    svc.receipts = _NoReceipts()  # type: ignore[assignment]
    svc.on_closed(a)  # type: ignore[arg-type]
    assert admit(svc, c, "acme") is None
    assert len(svc.account_sessions["acme"]) == 2


def test_a_connection_gone_during_its_password_check_takes_no_slot() -> None:
    svc = service(sessions_max=1, binds_per_minute_max=5)
    assert admit(svc, FakeConn(is_gone=True), "acme") is None
    assert "acme" not in svc.account_sessions
    assert not svc.bind_windows["acme"].times
    assert admit(svc, FakeConn(), "acme") is None


def test_binds_per_minute() -> None:
    svc = service(binds_per_minute_max=3)
    for t in (0.0, 1.0, 2.0):
        assert admit(svc, FakeConn(), "acme", t) is None
    assert admit(svc, FakeConn(), "acme", 30.0) == ("binds per minute", 3)
    assert svc._bind_rate_full("acme", 30.0)  # the screen before the password check
    assert not svc._bind_rate_full("calm", 30.0)
    assert admit(svc, FakeConn(), "acme", 60.0) is None  # the bind at 0 has left the window


def test_zero_means_no_limit() -> None:
    svc = service()
    for _ in range(50):
        assert admit(svc, FakeConn(), "acme") is None


def test_bind_window_slides() -> None:
    w = BindWindow(3)
    for t in (0.0, 10.0, 20.0):
        assert not w.full(t)
        w.take(t)
    assert w.full(20.0) and w.full(59.9)
    assert not w.full(60.0)
    w.take(60.0)
    assert w.full(69.9) and not w.full(70.0)
    assert len(w.times) <= 3


class _NoReceipts:
    def remove_receiver(self, account: str, conn: object) -> None:
        """These tests bind no receiver: nothing to remove."""
