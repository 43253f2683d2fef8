"""The session state machine, driven through SessionPair with time moved by hand."""

from __future__ import annotations

import struct

import pytest

from adressat.smpp.codec import encode
from adressat.smpp.constants import CommandId as C
from adressat.smpp.constants import CommandStatus as S
from adressat.smpp.pdus import Pdu
from adressat.smpp.session import (
    SEND_STATES,
    Closed,
    ProtocolViolation,
    RequestReceived,
    ResponseReceived,
    ResponseTimedOut,
    Role,
    SessionError,
    SessionLimits,
    SessionState,
    WindowFull,
)
from adressat.testing.session_pair import SessionPair


def bind(pair: SessionPair, cid: C = C.BIND_TRANSCEIVER, status: S = S.ESME_ROK) -> None:
    pair.send(pair.esme, Pdu.make(cid, 0, system_id="acme", password="pw"))
    (req,) = pair.events(pair.smsc)
    assert isinstance(req, RequestReceived) and req.pdu.command_id == cid
    pair.send(pair.smsc, req.pdu.response(status, system_id="adressat"))


@pytest.mark.parametrize(
    ("cid", "state"),
    [(C.BIND_TRANSMITTER, SessionState.BOUND_TX), (C.BIND_RECEIVER, SessionState.BOUND_RX),
     (C.BIND_TRANSCEIVER, SessionState.BOUND_TRX)],
)
def test_bind_modes(cid: C, state: SessionState) -> None:
    pair = SessionPair()
    bind(pair, cid)
    assert pair.esme.state is state and pair.smsc.state is state
    (ev,) = pair.events(pair.esme)
    assert isinstance(ev, ResponseReceived) and ev.pdu.command_status == 0


def test_failed_bind_stays_open() -> None:
    pair = SessionPair()
    bind(pair, status=S.ESME_RINVPASWD)
    assert pair.esme.state is SessionState.OPEN and pair.smsc.state is SessionState.OPEN


def test_submit_before_bind_is_rinvbndsts_and_session_goes_on() -> None:
    pair = SessionPair()
    # an ESME that ignores its own state: write the bytes directly
    pair.smsc.receive_data(encode(Pdu.make(C.SUBMIT_SM, 7, destination_addr="1")), 0)
    (ev,) = pair.events(pair.smsc)
    assert isinstance(ev, ProtocolViolation) and ev.command_status == S.ESME_RINVBNDSTS
    pair.flush()
    (resp,) = pair.events(pair.esme)
    assert isinstance(resp, ProtocolViolation)  # unmatched at the ESME: it never sent seq 7
    bind(pair)
    assert pair.smsc.is_bound


def test_submit_on_receiver_bind_refused_both_ways() -> None:
    pair = SessionPair()
    bind(pair, C.BIND_RECEIVER)
    with pytest.raises(SessionError):
        pair.esme.send(Pdu.make(C.SUBMIT_SM, 0), 0)
    pair.smsc.receive_data(encode(Pdu.make(C.SUBMIT_SM, 9)), 0)
    (ev,) = pair.events(pair.smsc)
    assert isinstance(ev, ProtocolViolation) and ev.command_status == S.ESME_RINVBNDSTS
    assert pair.smsc.data_to_send()[4:16] == struct.pack(">III", C.SUBMIT_SM_RESP,
                                                          S.ESME_RINVBNDSTS, 9)


def test_second_bind_is_ralybnd() -> None:
    pair = SessionPair()
    bind(pair)
    pair.smsc.receive_data(encode(Pdu.make(C.BIND_TRANSMITTER, 5, system_id="x")), 0)
    (ev,) = pair.events(pair.smsc)
    assert ev.command_status == S.ESME_RALYBND  # type: ignore[union-attr]


def test_deliver_sm_only_to_receivers() -> None:
    pair = SessionPair()
    bind(pair, C.BIND_TRANSMITTER)
    assert not pair.smsc.can_receive
    with pytest.raises(SessionError):
        pair.smsc.send(Pdu.make(C.DELIVER_SM, 0), 0)


def test_responses_match_by_sequence_and_window() -> None:
    pair = SessionPair(esme_limits=SessionLimits(window_size_max=3))
    bind(pair)
    pair.events(pair.esme)
    sent = [pair.send(pair.esme, Pdu.make(C.SUBMIT_SM, 0, destination_addr=str(i)))
            for i in range(3)]
    assert len({p.sequence_number for p in sent}) == 3
    with pytest.raises(WindowFull):
        pair.esme.send(Pdu.make(C.SUBMIT_SM, 0), 0)
    reqs = pair.events(pair.smsc)
    for ev in reversed(reqs):  # answered out of order
        assert isinstance(ev, RequestReceived)
        pair.send(pair.smsc, ev.pdu.response(message_id="m" + ev.pdu.fields["destination_addr"]))
    got = pair.events(pair.esme)
    for ev in got:
        assert isinstance(ev, ResponseReceived)
        assert ev.pdu.fields["message_id"] == "m" + ev.request.fields["destination_addr"]
    assert pair.esme.outstanding == 0 and pair.smsc.unanswered == 0


def test_late_response_is_discarded_not_applied() -> None:
    pair = SessionPair(esme_limits=SessionLimits(response_timeout_s=5))
    bind(pair)
    pair.events(pair.esme)
    req = pair.send(pair.esme, Pdu.make(C.SUBMIT_SM, 0))
    (smsc_req,) = pair.events(pair.smsc)
    pair.advance(6)
    (ev,) = pair.events(pair.esme)
    assert isinstance(ev, ResponseTimedOut) and ev.request.sequence_number == req.sequence_number
    pair.send(pair.smsc, smsc_req.pdu.response(message_id="late"))  # type: ignore[union-attr]
    (ev,) = pair.events(pair.esme)
    assert isinstance(ev, ProtocolViolation)
    assert pair.esme.data_to_send() == b""  # a response is never answered


def test_enquire_link_answered_by_session_and_sent_when_quiet() -> None:
    pair = SessionPair(smsc_limits=SessionLimits(enquire_link_interval_s=30))
    bind(pair)
    pair.events(pair.esme)
    pair.send(pair.esme, Pdu.make(C.ENQUIRE_LINK, 0))
    assert pair.events(pair.smsc) == []  # not the application's business
    pair.flush()
    (ev,) = pair.events(pair.esme)
    assert isinstance(ev, ResponseReceived) and ev.pdu.command_id == C.ENQUIRE_LINK_RESP
    assert pair.smsc.get_timer() == pytest.approx(30)
    pair.advance(31)
    (ev,) = pair.events(pair.smsc)
    assert isinstance(ev, ResponseReceived) and ev.request.command_id == C.ENQUIRE_LINK


def test_idle_and_bind_timeouts_close() -> None:
    pair = SessionPair(smsc_limits=SessionLimits(bind_timeout_s=10, idle_timeout_s=100))
    pair.advance(11)
    (ev,) = pair.events(pair.smsc)
    assert isinstance(ev, Closed) and pair.smsc.is_closed
    pair = SessionPair(smsc_limits=SessionLimits(idle_timeout_s=100,
                                                 enquire_link_interval_s=0))
    bind(pair)
    pair.esme.limits.enquire_link_interval_s = 0
    pair.now = 101
    pair.smsc.handle_timer(pair.now)
    assert pair.smsc.is_closed


def test_unbind_both_directions() -> None:
    pair = SessionPair()
    bind(pair)
    pair.events(pair.esme)
    pair.send(pair.esme, Pdu.make(C.UNBIND, 0))
    assert pair.esme.state is SessionState.UNBINDING
    (req,) = pair.events(pair.smsc)
    pair.send(pair.smsc, req.pdu.response())  # type: ignore[union-attr]
    assert pair.smsc.is_closed and pair.esme.is_closed
    assert isinstance(pair.events(pair.esme)[-1], Closed)


def test_bad_pdus_budget_closes() -> None:
    pair = SessionPair(smsc_limits=SessionLimits(bad_pdus_max=2))
    bind(pair)
    unknown = struct.pack(">IIII", 16, 0x00000077, 0, 1)
    for _ in range(3):
        pair.smsc.receive_data(unknown, 0)
    evs = pair.events(pair.smsc)
    assert [type(e) for e in evs] == [ProtocolViolation] * 3 + [Closed]
    assert evs[0].command_status == S.ESME_RINVCMDID  # type: ignore[union-attr]
    # each got a generic_nack
    out = pair.smsc.data_to_send()
    assert out.count(struct.pack(">II", C.GENERIC_NACK, S.ESME_RINVCMDID)) == 3


def test_oversized_command_length_closes_without_buffering() -> None:
    pair = SessionPair(smsc_limits=SessionLimits(pdu_length_max=1024))
    pair.smsc.receive_data(struct.pack(">IIII", 10_000_000, C.SUBMIT_SM, 0, 3), 0)
    evs = pair.events(pair.smsc)
    assert evs[0].command_status == S.ESME_RINVCMDLEN  # type: ignore[union-attr]
    assert isinstance(evs[-1], Closed)
    assert pair.smsc._reader.buffered_octets == 0


def test_inbound_window_throttles() -> None:
    pair = SessionPair(smsc_limits=SessionLimits(inbound_window_max=2))
    bind(pair)
    pair.events(pair.esme)
    for _ in range(3):
        pair.send(pair.esme, Pdu.make(C.SUBMIT_SM, 0))
    evs = pair.events(pair.smsc)
    assert [type(e) for e in evs] == [RequestReceived, RequestReceived, ProtocolViolation]
    pair.flush()
    (ev,) = pair.events(pair.esme)
    assert isinstance(ev, ResponseReceived) and ev.pdu.command_status == S.ESME_RTHROTTLED


def test_sequence_numbers_wrap_and_skip_outstanding() -> None:
    pair = SessionPair()
    bind(pair)
    pair.esme._next_seq = 0x7FFFFFFF
    a = pair.send(pair.esme, Pdu.make(C.SUBMIT_SM, 0))
    b = pair.send(pair.esme, Pdu.make(C.SUBMIT_SM, 0))
    assert a.sequence_number == 0x7FFFFFFF and b.sequence_number == 1


def test_table_covers_every_request() -> None:
    requests = {c for c in C if not c & 0x80000000 and c != C.GENERIC_NACK}
    assert set(SEND_STATES) == requests
    for roles in SEND_STATES.values():
        assert set(roles) <= set(Role)
