"""A request that cannot be encoded is our own error and leaves the session as it was."""

from __future__ import annotations

import pytest

from adressat.smpp.constants import CommandId as C
from adressat.smpp.errors import SmppEncodeError
from adressat.smpp.pdus import Pdu
from adressat.testing.session_pair import SessionPair


def test_unencodable_submit_takes_no_window_slot() -> None:
    pair = SessionPair()
    pair.send(pair.esme, Pdu.make(C.BIND_TRANSCEIVER, 0, system_id="a", password="b"))
    bind = pair.events(pair.smsc)[0].pdu  # type: ignore[union-attr]
    pair.send(pair.smsc, bind.response(system_id="smsc"))
    assert pair.esme.is_bound
    with pytest.raises(SmppEncodeError):
        pair.esme.send(Pdu.make(C.SUBMIT_SM, 0, destination_addr="4" * 30), pair.now)
    assert pair.esme.outstanding == 0
    assert pair.esme.data_to_send() == b""
    sent = pair.send(pair.esme, Pdu.make(C.SUBMIT_SM, 0, destination_addr="4673"))
    assert pair.esme.outstanding == 1 and sent.sequence_number >= 2
