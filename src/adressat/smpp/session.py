"""The SMPP 3.4 session, sans-I/O (STYLE.md #4, after h11 and aioquic).

Bytes in with :meth:`Session.receive_data`, events out with :meth:`Session.next_event`,
PDUs out with :meth:`Session.send` (returns bytes to write). Time is an argument: the next
deadline is :meth:`Session.get_timer`, and :meth:`Session.handle_timer` says what is due
(enquire_link to send, a response that timed out, an idle session, a PDU that started to
arrive and was not complete within ``pdu_read_timeout_s``).

The session owns what SMPP says about a connection and nothing else: which PDUs are legal in
which state for which side (``SEND_STATES``: one table, the role picks the column), sequence
numbers, the window of outstanding requests in both directions, matching responses to
requests by sequence number only, and the bad-PDU budget. Everything the peer got wrong is
answered by the session itself (generic_nack or the response with an error status) and
surfaces as a :class:`ProtocolViolation` event for the log; what the application gets is a
:class:`RequestReceived` (to answer) or a :class:`ResponseReceived` (matched to its request).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum, StrEnum

from .codec import PduReader, encode
from .constants import RESPONSE_BIT, CommandId, CommandStatus
from .errors import SmppEncodeError, SmppError
from .pdus import Pdu, error_response

C = CommandId
S = CommandStatus

SEQUENCE_MAX = 0x7FFFFFFF


class Role(Enum):
    ESME = "esme"
    SMSC = "smsc"


class SessionState(StrEnum):
    OPEN = "open"
    BOUND_TX = "bound_tx"
    BOUND_RX = "bound_rx"
    BOUND_TRX = "bound_trx"
    UNBINDING = "unbinding"
    CLOSED = "closed"


St = SessionState
BOUND = frozenset({St.BOUND_TX, St.BOUND_RX, St.BOUND_TRX})
_TX = frozenset({St.BOUND_TX, St.BOUND_TRX})
_RX = frozenset({St.BOUND_RX, St.BOUND_TRX})
_OPEN = frozenset({St.OPEN})
_ALIVE = BOUND | {St.OPEN, St.UNBINDING}

# Requests: (role that may send it) -> states in which it may be sent (SMPP 3.4 2.3, 4.x).
# The receiving side checks the same table with the peer's role.
SEND_STATES: Mapping[CommandId, Mapping[Role, frozenset[SessionState]]] = {
    C.BIND_TRANSMITTER: {Role.ESME: _OPEN},
    C.BIND_RECEIVER: {Role.ESME: _OPEN},
    C.BIND_TRANSCEIVER: {Role.ESME: _OPEN},
    C.OUTBIND: {Role.SMSC: _OPEN},
    C.UNBIND: {Role.ESME: BOUND, Role.SMSC: BOUND},
    C.ENQUIRE_LINK: {Role.ESME: _ALIVE, Role.SMSC: _ALIVE},
    C.SUBMIT_SM: {Role.ESME: _TX},
    C.SUBMIT_MULTI: {Role.ESME: _TX},
    C.QUERY_SM: {Role.ESME: _TX},
    C.CANCEL_SM: {Role.ESME: _TX},
    C.REPLACE_SM: {Role.ESME: _TX},
    C.DATA_SM: {Role.ESME: _TX, Role.SMSC: _RX},
    C.DELIVER_SM: {Role.SMSC: _RX},
    C.ALERT_NOTIFICATION: {Role.SMSC: _RX},
}

BIND_STATE: Mapping[int, SessionState] = {
    C.BIND_TRANSMITTER: St.BOUND_TX,
    C.BIND_RECEIVER: St.BOUND_RX,
    C.BIND_TRANSCEIVER: St.BOUND_TRX,
}
# Requests that are never answered.
UNANSWERED = frozenset({C.OUTBIND, C.ALERT_NOTIFICATION, C.GENERIC_NACK})


class SessionError(Exception):
    """Our own misuse of the session (sending what the state forbids, a full window)."""


class WindowFull(SessionError):
    pass


# -- events -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """A legal request from the peer; the application must answer it with ``send``."""

    pdu: Pdu


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """A response matched (by sequence number) to a request we sent."""

    pdu: Pdu
    request: Pdu


@dataclass(frozen=True, slots=True)
class ResponseTimedOut:
    request: Pdu


@dataclass(frozen=True, slots=True)
class ProtocolViolation:
    """The peer sent something wrong; the session already queued the answer (if any)."""

    command_status: int
    reason: str
    command_id: int | None = None
    sequence_number: int | None = None


@dataclass(frozen=True, slots=True)
class PduReadTimedOut:
    """A PDU started to arrive and was not complete within ``pdu_read_timeout_s``; a
    :class:`Closed` follows. ``announced_octets`` is its command_length (None while fewer
    than 4 octets of it had arrived)."""

    received_octets: int
    announced_octets: int | None
    started_at: float


@dataclass(frozen=True, slots=True)
class Closed:
    """The session is over; the transport should close the connection after flushing."""

    reason: str


Event = (RequestReceived | ResponseReceived | ResponseTimedOut | ProtocolViolation
         | PduReadTimedOut | Closed)


@dataclass(slots=True)
class SessionLimits:
    pdu_length_max: int = 65536
    window_size_max: int = 100  # our outstanding requests
    inbound_window_max: int = 1000  # the peer's unanswered requests
    response_timeout_s: float = 10.0
    enquire_link_interval_s: float = 30.0  # 0: never
    idle_timeout_s: float = 120.0  # no whole PDU from the peer; 0: never
    # from the first octet of a PDU to its last (a partial PDU resets neither this nor the
    # idle timer, so a peer trickling one octet at a time cannot hold the session); 0: never
    pdu_read_timeout_s: float = 10.0
    bind_timeout_s: float = 30.0  # OPEN without a bind; 0: never
    bad_pdus_max: int = 10


@dataclass(slots=True)
class _Outstanding:
    pdu: Pdu
    deadline: float


@dataclass
class Session:
    role: Role
    now: float
    limits: SessionLimits = field(default_factory=SessionLimits)

    def __post_init__(self) -> None:
        self.state = St.OPEN
        self._reader = PduReader(self.limits.pdu_length_max)
        self._events: deque[Event] = deque()
        self._out = bytearray()
        self._outstanding: dict[int, _Outstanding] = {}
        self._inbound: set[int] = set()  # sequence numbers of unanswered peer requests
        self._next_seq = 1
        self._bad_pdus = 0
        self._last_rx = self.now  # the last whole PDU (a partial one does not count)
        self._pdu_started_at: float | None = None  # first octet of the PDU being read
        self._last_tx = self.now
        self._opened_at = self.now
        self.peer_role = Role.SMSC if self.role is Role.ESME else Role.ESME

    # -- bytes in -------------------------------------------------------------------------------
    def receive_data(self, data: bytes, now: float) -> None:
        """Feed bytes from the peer; read events with :meth:`next_event`."""
        if self.state is St.CLOSED or not data:
            return
        try:
            self._reader.feed(data)
        except SmppError as e:  # command_length out of range: the stream cannot be resynced
            self._violation(e, count=False)  # closed for this reason, not for the budget
            self._close("invalid command_length")
            return
        completed = False
        while not self.is_closed:
            try:
                pdu = self._reader.next_pdu()
            except SmppError as e:
                completed = True  # a whole frame arrived, it just did not decode
                self._last_rx = now
                if self._reader.broken:  # framing lost (answered once), not a bad body
                    self._violation(e, count=False)
                    self._close("invalid command_length")
                    break
                self._violation(e)
                continue
            if pdu is None:
                break
            completed = True
            self._last_rx = now
            self._on_pdu(pdu, now)
        if not self._reader.buffered_octets:
            self._pdu_started_at = None
        elif completed or self._pdu_started_at is None:
            # what is left began in this chunk: the PDU before it ended here
            self._pdu_started_at = now

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    @property
    def partial_pdu(self) -> tuple[int, int | None] | None:
        """(octets received, command_length announced or None) of a PDU that has started to
        arrive, or None between PDUs."""
        if self._pdu_started_at is None:
            return None
        return self._reader.buffered_octets, self._reader.announced_length

    @property
    def pending_events(self) -> int:
        """Events not read yet with :meth:`next_event`."""
        return len(self._events)

    def data_to_send(self) -> bytes:
        """Bytes the session produced itself (answers to bad PDUs, enquire_link)."""
        if not self._out:
            return b""
        out = bytes(self._out)
        self._out.clear()
        return out

    # -- PDUs out -------------------------------------------------------------------------------
    def send(self, pdu: Pdu, now: float) -> bytes:
        """Check and encode one PDU to send; returns its bytes (plus anything queued before).

        A request with ``sequence_number`` 0 gets the next free one (see ``last_sent``).
        """
        if self.state is St.CLOSED:
            raise SessionError("session closed")
        cid = pdu.command_id
        if cid & RESPONSE_BIT:
            self._send_response(pdu)
        elif cid == C.GENERIC_NACK:
            pass
        else:
            pdu = self._send_request(pdu, now)
        try:
            data = encode(pdu)
        except SmppEncodeError:
            # nothing went out: a request that cannot be encoded takes no window slot
            if not cid & RESPONSE_BIT and cid not in UNANSWERED:
                self._outstanding.pop(pdu.sequence_number, None)
            raise
        self._last_tx = now
        self.last_sent = pdu
        self._out += data
        return self.data_to_send()

    def _send_request(self, pdu: Pdu, now: float) -> Pdu:
        cid = pdu.command_id
        allowed = SEND_STATES.get(cid, {}).get(self.role)  # type: ignore[call-overload]
        if allowed is None or self.state not in allowed:
            raise SessionError(f"{C(cid).name} not allowed for {self.role.value} in {self.state}")
        if cid in UNANSWERED:
            return pdu
        if len(self._outstanding) >= self.limits.window_size_max:
            raise WindowFull("window full")
        if pdu.sequence_number == 0:
            pdu = Pdu(cid, self._take_seq(), pdu.command_status, pdu.fields, pdu.tlvs)
        elif pdu.sequence_number in self._outstanding:
            raise SessionError("sequence number in use")
        self._outstanding[pdu.sequence_number] = _Outstanding(
            pdu, now + self.limits.response_timeout_s
        )
        if cid == C.UNBIND:
            self.state = St.UNBINDING
        return pdu

    def _send_response(self, pdu: Pdu) -> None:
        seq = pdu.sequence_number
        if seq not in self._inbound:
            raise SessionError("response to no outstanding peer request")
        self._inbound.discard(seq)
        cid = pdu.command_id & ~RESPONSE_BIT
        if cid in BIND_STATE and self.role is Role.SMSC:
            if pdu.command_status == S.ESME_ROK:
                self.state = BIND_STATE[cid]
        elif cid == C.UNBIND and pdu.command_status == S.ESME_ROK:
            self.state = St.CLOSED
            self._events.append(Closed("unbound by peer"))

    def _take_seq(self) -> int:
        seq = self._next_seq
        while seq in self._outstanding:
            seq = seq % SEQUENCE_MAX + 1
        self._next_seq = seq % SEQUENCE_MAX + 1
        return seq

    @property
    def outstanding(self) -> int:
        """Our requests waiting for a response."""
        return len(self._outstanding)

    @property
    def window_free(self) -> int:
        return self.limits.window_size_max - len(self._outstanding)

    @property
    def unanswered(self) -> int:
        """Peer requests we have not answered yet."""
        return len(self._inbound)

    @property
    def is_closed(self) -> bool:
        return self.state is St.CLOSED

    @property
    def is_bound(self) -> bool:
        return self.state in BOUND

    @property
    def can_receive(self) -> bool:
        """The peer (an ESME) takes deliver_sm: bound as RX or TRX."""
        return self.state in _RX

    # -- incoming PDUs --------------------------------------------------------------------------
    def _on_pdu(self, pdu: Pdu, now: float) -> None:
        cid = pdu.command_id
        if cid == C.GENERIC_NACK or cid & RESPONSE_BIT:
            self._on_response(pdu)
            return
        allowed = SEND_STATES.get(cid, {}).get(self.peer_role)  # type: ignore[call-overload]
        if allowed is None or self.state not in allowed:
            status = S.ESME_RALYBND if cid in BIND_STATE and self.state in BOUND else (
                S.ESME_RINVBNDSTS
            )
            self._violation(SmppError(status, "not allowed in this state", command_id=cid,
                                      sequence_number=pdu.sequence_number), count=False,
                            answer=cid not in UNANSWERED)
            return
        if cid in UNANSWERED:
            self._events.append(RequestReceived(pdu))
            return
        if pdu.sequence_number in self._inbound:
            # the first request with this number is still being answered: a second answer
            # would be matched to it by the peer, so this one gets none
            self._violation(SmppError(S.ESME_RSYSERR, "sequence number already outstanding",
                                      command_id=cid, sequence_number=pdu.sequence_number),
                            answer=False)
            return
        if len(self._inbound) >= self.limits.inbound_window_max:
            self._violation(SmppError(S.ESME_RTHROTTLED, "peer window exceeded", command_id=cid,
                                      sequence_number=pdu.sequence_number), count=False)
            return
        self._inbound.add(pdu.sequence_number)
        if cid == C.ENQUIRE_LINK:  # answered here: it is about the session, not the service
            self._inbound.discard(pdu.sequence_number)
            self._out += encode(pdu.response())
            return
        if cid == C.UNBIND:
            self.state = St.UNBINDING
        self._events.append(RequestReceived(pdu))

    def _on_response(self, pdu: Pdu) -> None:
        entry = self._outstanding.pop(pdu.sequence_number, None)
        if entry is None:
            # late, unmatched or duplicated: discarded, never applied to another request
            self._violation(SmppError(S.ESME_RINVCMDID, "response to no outstanding request",
                                      command_id=pdu.command_id,
                                      sequence_number=pdu.sequence_number), count=False,
                            answer=False)
            return
        req = entry.pdu
        if pdu.command_id != C.GENERIC_NACK and pdu.command_id != req.command_id | RESPONSE_BIT:
            self._outstanding[pdu.sequence_number] = entry  # still waiting for the right one
            self._violation(SmppError(S.ESME_RINVCMDID, "response of the wrong type",
                                      command_id=pdu.command_id,
                                      sequence_number=pdu.sequence_number), answer=False)
            return
        rcid = req.command_id
        if rcid in BIND_STATE and self.role is Role.ESME and pdu.command_status == S.ESME_ROK:
            self.state = BIND_STATE[rcid]
        elif rcid == C.UNBIND:
            self.state = St.CLOSED
            self._events.append(ResponseReceived(pdu, req))
            self._events.append(Closed("unbound"))
            return
        self._events.append(ResponseReceived(pdu, req))

    def _violation(self, e: SmppError, *, count: bool = True, answer: bool = True) -> None:
        # answer a request that failed (its response with the status, or generic_nack);
        # never answer a response
        if answer and (e.command_id is None or not e.command_id & RESPONSE_BIT):
            self._out += encode(error_response(e))
        self._events.append(ProtocolViolation(int(e.command_status), e.reason, e.command_id,
                                              e.sequence_number))
        if count:
            self._bad_pdus += 1
            if self._bad_pdus > self.limits.bad_pdus_max and self.state is not St.CLOSED:
                self._close("too many invalid PDUs")

    def _close(self, reason: str) -> None:
        self.state = St.CLOSED
        self._events.append(Closed(reason))

    # -- time -------------------------------------------------------------------------------------
    def get_timer(self) -> float | None:
        """The next moment :meth:`handle_timer` has something to do, or None."""
        if self.state is St.CLOSED:
            return None
        lim = self.limits
        times: list[float] = []
        if self._outstanding:
            # every request gets now + response_timeout_s with ``now`` never going back, so
            # the oldest entry (dicts keep insertion order) has the earliest deadline
            times.append(next(iter(self._outstanding.values())).deadline)
        if lim.idle_timeout_s:
            times.append(self._last_rx + lim.idle_timeout_s)
        if self._pdu_started_at is not None and lim.pdu_read_timeout_s:
            times.append(self._pdu_started_at + lim.pdu_read_timeout_s)
        if self.state is St.OPEN and lim.bind_timeout_s:
            times.append(self._opened_at + lim.bind_timeout_s)
        if self.state in BOUND and lim.enquire_link_interval_s:
            times.append(max(self._last_tx, self._last_rx) + lim.enquire_link_interval_s)
        return min(times) if times else None

    def handle_timer(self, now: float) -> None:
        """Do what is due at ``now``; read events and :meth:`data_to_send` afterwards."""
        if self.state is St.CLOSED:
            return
        lim = self.limits
        while self._outstanding:
            seq, o = next(iter(self._outstanding.items()))
            if o.deadline > now:
                break
            del self._outstanding[seq]
            self._events.append(ResponseTimedOut(o.pdu))
            if o.pdu.command_id == C.UNBIND:
                self._close("unbind not answered")
                return
        started = self._pdu_started_at
        if started is not None and lim.pdu_read_timeout_s and (
            now >= started + lim.pdu_read_timeout_s
        ):
            self._events.append(PduReadTimedOut(self._reader.buffered_octets,
                                                self._reader.announced_length, started))
            self._close("PDU not complete in time")
            return
        if lim.idle_timeout_s and now >= self._last_rx + lim.idle_timeout_s:
            self._close("idle timeout")
            return
        if self.state is St.OPEN and lim.bind_timeout_s and now >= self._opened_at + (
            lim.bind_timeout_s
        ):
            self._close("no bind in time")
            return
        if (
            self.state in BOUND
            and lim.enquire_link_interval_s
            and now >= max(self._last_tx, self._last_rx) + lim.enquire_link_interval_s
            and len(self._outstanding) < lim.window_size_max
        ):
            self._out += self.send(Pdu.make(C.ENQUIRE_LINK, 0), now)
