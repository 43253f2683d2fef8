"""Interconnect decisions (issue 11), pure: partner message ids, what a partner's receipt
says, and how the parts of a forwarded message end it.

Partner message ids come back in more than one spelling: the same id hex in the
submit_sm_resp and decimal in the receipt, with or without leading zeros, upper or lower
case (Jasmin #423, #521; Kannel's ``msg-id-type`` exists for exactly this). An id is kept in
its *canonical* form (trimmed, lower case, leading zeros dropped) and a receipt is looked up
under every reading of what it carries (:func:`id_candidates`): as given, and, when it is all
digits, as that decimal number written in hex, and, when it is hex, as that number written in
decimal. A receipt that matches more than one message under those readings is applied to none
(an alarm; RestComm smscgateway #256 applied such receipts to the wrong message).
"""

from __future__ import annotations

from collections.abc import Sequence

from adressat.core.model import State

__all__ = [
    "PARTNER_ID_LENGTH_MAX",
    "canonical_id",
    "id_candidates",
    "receipt_final_state",
    "message_final_state",
]

#: The delivery error codes the store writes for partner outcomes: the values of
#: ``delivery.errors.DeliveryError`` (OK, PARTNER_NOT_DELIVERED, PARTNER_NO_RECEIPT), named
#: here because the store may not import the delivery package (a test checks they agree).
ERROR_OK = 0
ERROR_NOT_DELIVERED = 44
ERROR_NO_RECEIPT = 42

#: SMPP 3.4 §5.2.23: message_id is a C-Octet String of at most 65 octets (with its NUL)
PARTNER_ID_LENGTH_MAX = 64
_HEX = frozenset("0123456789abcdef")
_DEC = frozenset("0123456789")

#: SMPP 3.4 §5.2.28 message_state (and the receipt text's ``stat:``) -> the final state of
#: ours it means. ENROUTE (1) and ACCEPTED (6) are not final: such a receipt is noted, the
#: message stays FORWARDED. DELETED (4): the partner deleted it, so it was not delivered.
_MESSAGE_STATE: dict[int, State] = {
    2: State.DELIVERED,
    3: State.EXPIRED,
    4: State.UNDELIVERABLE,
    5: State.UNDELIVERABLE,
    7: State.UNKNOWN,
    8: State.REJECTED,
}
_STAT: dict[str, State] = {
    "DELIVRD": State.DELIVERED,
    "DELIVERED": State.DELIVERED,
    "EXPIRED": State.EXPIRED,
    "DELETED": State.UNDELIVERABLE,
    "UNDELIV": State.UNDELIVERABLE,
    "UNDELIVERABLE": State.UNDELIVERABLE,
    "UNDELIVERED": State.UNDELIVERABLE,
    "UNKNOWN": State.UNKNOWN,
    "REJECTD": State.REJECTED,
    "REJECTED": State.REJECTED,
}


def canonical_id(raw: str) -> str:
    """The form a partner id is stored and looked up in. Raises ValueError for an empty id or
    one longer than SMPP allows (never echoing it)."""
    text = raw.strip().lower()
    if not text or len(text) > PARTNER_ID_LENGTH_MAX:
        raise ValueError("partner message id is empty or too long")
    if set(text) <= _HEX:
        text = text.lstrip("0") or "0"
    return text


def id_candidates(raw: str) -> tuple[str, ...]:
    """Every canonical id a receipt carrying ``raw`` may mean, the literal reading first."""
    first = canonical_id(raw)
    out = [first]
    chars = set(first)
    if chars <= _DEC:
        out.append(canonical_id(format(int(first), "x")))
    if chars <= _HEX:
        out.append(canonical_id(str(int(first, 16))))
    return tuple(dict.fromkeys(out))


def receipt_final_state(message_state: int | None, stat: str | None) -> State | None:
    """The final state a partner's receipt says (the message_state TLV first, else the text's
    ``stat:``); None when it says nothing final (ENROUTE, ACCEPTD, or nothing readable)."""
    if message_state is not None:
        return _MESSAGE_STATE.get(message_state)
    if stat is not None:
        return _STAT.get(stat.strip().upper())
    return None


def message_final_state(part_states: Sequence[State | None]) -> tuple[State | None, int | None]:
    """How the parts of one forwarded message end it: (final state, failed part). None while
    a part is still open. DELIVERED only when every part is; otherwise the state of the first
    part that failed, and its number (1-based), so the sender is told which one."""
    if any(s is None for s in part_states):
        return None, None
    for number, state in enumerate(part_states, start=1):
        if state is not State.DELIVERED:
            return state, number
    return State.DELIVERED, None
