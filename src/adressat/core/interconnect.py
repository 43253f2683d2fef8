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

That search (``auto``) cannot tell the readings apart when a partner's ids are small numbers:
with ids counted from 1, the receipt for "16" also reads as "10" and "22", which are other
messages' ids, so most receipts are ambiguous (applied to none, alarmed, the messages end
UNKNOWN). A connector whose partner's spelling is known says it (``receipt_ids``, as Kannel's
``msg-id-type`` does per SMSC): ``same`` (the receipt spells the id as the response did, up to
case and leading zeros), ``receipt-decimal`` (the response hex, the receipt that number in
decimal), ``receipt-hex`` (the response decimal, the receipt in hex); each is one reading.
"""

from __future__ import annotations

from collections.abc import Sequence

from adressat.core.model import State

__all__ = [
    "PARTNER_ID_LENGTH_MAX",
    "canonical_id",
    "id_candidates",
    "RECEIPT_ID_FORMATS",
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


#: how a connector's partner spells a message id in its receipts, against its submit_sm_resp
RECEIPT_ID_FORMATS: tuple[str, ...] = ("auto", "same", "receipt-decimal", "receipt-hex")


def id_candidates(raw: str, receipt_ids: str = "auto") -> tuple[str, ...]:
    """Every canonical id a receipt carrying ``raw`` may mean under the connector's
    ``receipt_ids`` (:data:`RECEIPT_ID_FORMATS`), the literal reading first. Raises
    ValueError for an id that cannot be read so (``receipt-decimal`` and not all digits,
    ``receipt-hex`` and not hex)."""
    first = canonical_id(raw)
    chars = set(first)
    if receipt_ids == "same":
        return (first,)
    if receipt_ids == "receipt-decimal":
        if not chars <= _DEC:
            raise ValueError("a receipt-decimal partner id is not decimal")
        return (canonical_id(format(int(first), "x")),)
    if receipt_ids == "receipt-hex":
        if not chars <= _HEX:
            raise ValueError("a receipt-hex partner id is not hex")
        return (canonical_id(str(int(first, 16))),)
    if receipt_ids != "auto":
        raise ValueError(f"receipt_ids must be one of {RECEIPT_ID_FORMATS}")
    out = [first]
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
