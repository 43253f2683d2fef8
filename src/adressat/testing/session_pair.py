"""An ESME session and an SMSC session joined back to back, with time moved by hand.

For tests of the session state machine and of anything built on it: no sockets, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from adressat.smpp.pdus import Pdu
from adressat.smpp.session import Event, Role, Session, SessionLimits


@dataclass
class SessionPair:
    now: float = 0.0
    esme_limits: SessionLimits = field(default_factory=SessionLimits)
    smsc_limits: SessionLimits = field(default_factory=SessionLimits)

    def __post_init__(self) -> None:
        self.esme = Session(Role.ESME, self.now, self.esme_limits)
        self.smsc = Session(Role.SMSC, self.now, self.smsc_limits)

    def other(self, side: Session) -> Session:
        return self.smsc if side is self.esme else self.esme

    def send(self, side: Session, pdu: Pdu) -> Pdu:
        """``side`` sends ``pdu``; the bytes reach the other side. Returns the PDU as sent."""
        data = side.send(pdu, self.now)
        self.other(side).receive_data(data, self.now)
        return side.last_sent

    def flush(self) -> None:
        """Deliver what each side produced on its own (answers to bad PDUs, enquire_link)."""
        for _ in range(10):
            moved = False
            for side in (self.esme, self.smsc):
                data = side.data_to_send()
                if data:
                    self.other(side).receive_data(data, self.now)
                    moved = True
            if not moved:
                return

    def events(self, side: Session) -> list[Event]:
        out = []
        while (ev := side.next_event()) is not None:
            out.append(ev)
        return out

    def advance(self, seconds: float) -> None:
        self.now += seconds
        for side in (self.esme, self.smsc):
            side.handle_timer(self.now)
        self.flush()
