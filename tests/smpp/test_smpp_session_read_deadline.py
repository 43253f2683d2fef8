"""The read deadline of a PDU that has started to arrive, with time moved by hand.

From a PDU's first octet, the whole of it (its command_length) must arrive within
``pdu_read_timeout_s``, or the session closes. Octets that trickle in reset neither that
deadline nor the idle timer: only a whole PDU counts as hearing from the peer.
"""

from __future__ import annotations

import struct

import pytest

from adressat.smpp.codec import encode
from adressat.smpp.constants import CommandId as C
from adressat.smpp.pdus import Pdu
from adressat.smpp.session import (
    Closed,
    PduReadTimedOut,
    RequestReceived,
    Role,
    Session,
    SessionLimits,
)

ENQUIRE = encode(Pdu.make(C.ENQUIRE_LINK, 1))
BIG_HEADER = struct.pack(">IIII", 65536, C.SUBMIT_SM, 0, 7)  # announces 64 KiB


def smsc(**limits: float) -> Session:
    base: dict[str, float] = dict(enquire_link_interval_s=0, bind_timeout_s=0,
                                  idle_timeout_s=0)
    base.update(limits)
    return Session(Role.SMSC, 0.0, SessionLimits(**base))  # type: ignore[arg-type]


def events(s: Session) -> list[object]:
    out = []
    while (ev := s.next_event()) is not None:
        out.append(ev)
    return out


def test_trickled_pdu_is_closed_at_the_deadline_from_its_first_octet() -> None:
    s = smsc(pdu_read_timeout_s=10)
    assert s.get_timer() is None
    s.receive_data(BIG_HEADER, 1.0)
    assert s.get_timer() == pytest.approx(11.0)
    now = 1.0
    for _ in range(45):  # one octet every 0.2 s: none of them moves the deadline
        now += 0.2
        s.receive_data(b"x", now)
        assert s.get_timer() == pytest.approx(11.0)
        s.handle_timer(now)
        assert not s.is_closed
    assert s.partial_pdu == (16 + 45, 65536)
    s.handle_timer(10.99)
    assert not s.is_closed
    s.handle_timer(11.0)
    assert s.is_closed and s.get_timer() is None
    timed_out, closed = events(s)
    assert timed_out == PduReadTimedOut(received_octets=61, announced_octets=65536,
                                        started_at=1.0)
    assert isinstance(closed, Closed)


def test_fewer_than_four_octets_also_have_a_deadline() -> None:
    s = smsc(pdu_read_timeout_s=5)
    s.receive_data(b"\x00\x00", 2.0)
    assert s.partial_pdu == (2, None)
    s.handle_timer(7.0)
    (timed_out, _closed) = events(s)
    assert timed_out == PduReadTimedOut(2, None, 2.0)


def test_partial_octets_do_not_reset_the_idle_timer() -> None:
    s = smsc(idle_timeout_s=5, pdu_read_timeout_s=0)  # only the idle timer
    s.receive_data(ENQUIRE, 0.0)  # a whole PDU: heard from the peer at 0
    s.data_to_send()
    s.receive_data(BIG_HEADER[:3], 1.0)
    for t in (2.0, 3.0, 4.0):
        s.receive_data(b"\x00", t)
        assert s.get_timer() == pytest.approx(5.0)
    s.handle_timer(5.0)
    assert s.is_closed
    (closed,) = events(s)
    assert closed == Closed("idle timeout")


def test_a_whole_pdu_in_time_clears_the_deadline_and_counts_as_heard() -> None:
    s = smsc(pdu_read_timeout_s=10, idle_timeout_s=100)
    for i, octet in enumerate(ENQUIRE):  # byte at a time, within the deadline
        s.receive_data(bytes([octet]), 1.0 + i * 0.5)
    assert s.partial_pdu is None
    assert s.get_timer() == pytest.approx(1.0 + 15 * 0.5 + 100)  # idle, from the last octet
    s.handle_timer(50.0)
    assert not s.is_closed


def test_deadline_restarts_for_a_pdu_begun_in_the_chunk_that_completed_another() -> None:
    s = smsc(pdu_read_timeout_s=10)
    s.receive_data(ENQUIRE[:5], 0.0)
    assert s.get_timer() == pytest.approx(10.0)
    # the rest of the first, two whole ones and the start of a fourth
    s.receive_data(ENQUIRE[5:] + ENQUIRE + ENQUIRE + BIG_HEADER[:8], 8.0)
    assert s.get_timer() == pytest.approx(18.0)
    assert s.partial_pdu == (8, 65536)
    s.handle_timer(17.9)
    assert not s.is_closed
    s.handle_timer(18.0)
    assert s.is_closed


def test_deadline_applies_to_a_bound_session_with_requests_in_flight() -> None:
    s = Session(Role.SMSC, 0.0, SessionLimits(pdu_read_timeout_s=3))
    s.receive_data(encode(Pdu.make(C.BIND_TRANSCEIVER, 1, system_id="a", password="p")), 0.0)
    (req,) = events(s)
    assert isinstance(req, RequestReceived)
    s.send(req.pdu.response(system_id="adressat"), 0.0)
    assert s.is_bound
    s.receive_data(BIG_HEADER, 1.0)
    assert s.get_timer() == pytest.approx(4.0)
    s.handle_timer(4.0)
    assert s.is_closed
    assert isinstance(events(s)[0], PduReadTimedOut)


def test_zero_means_no_read_deadline() -> None:
    s = smsc(pdu_read_timeout_s=0)
    s.receive_data(BIG_HEADER, 0.0)
    assert s.get_timer() is None
    s.handle_timer(1e9)
    assert not s.is_closed
