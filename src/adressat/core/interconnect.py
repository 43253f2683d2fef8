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

Nor only small ones: a partner counting decimal ids from 40,960 reaches, after about 220,000
messages, ids such as 264544, which written in hex is 40960, the first id it gave (seen in a
soak: from its minute 8 on, thousands of receipts a minute were ambiguous). So under
``auto`` the connector also learns its partner's spelling from the receipts that matched one
message under exactly one reading (:class:`ReceiptSpelling`): once
:data:`SPELLING_EVIDENCE_MIN` of them agreed and none disagreed, a receipt that reads as
several messages goes to the one its partner's spelling names. Evidence of two spellings (a
partner that mixes them) teaches nothing: ambiguous receipts are then applied to none, as
before.
"""

from __future__ import annotations

from collections.abc import Sequence

from adressat.core.model import State

__all__ = [
    "PARTNER_ID_LENGTH_MAX",
    "canonical_id",
    "id_candidates",
    "id_readings",
    "ReceiptSpelling",
    "RECEIPT_ID_FORMATS",
    "SPELLING_EVIDENCE_MIN",
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


def id_readings(raw: str, receipt_ids: str = "auto") -> tuple[tuple[str, str], ...]:
    """(spelling, canonical id) for every way a receipt carrying ``raw`` may be read under
    the connector's ``receipt_ids`` (:data:`RECEIPT_ID_FORMATS`; under ``auto`` every
    spelling that can read it, the literal one first; two spellings may give one id). Raises
    ValueError for an id that cannot be read so (``receipt-decimal`` and not all digits,
    ``receipt-hex`` and not hex)."""
    if receipt_ids not in RECEIPT_ID_FORMATS:
        raise ValueError(f"receipt_ids must be one of {RECEIPT_ID_FORMATS}")
    first = canonical_id(raw)
    chars = set(first)
    out: list[tuple[str, str]] = []
    if receipt_ids in ("auto", "same"):
        out.append(("same", first))
    if receipt_ids in ("auto", "receipt-decimal"):
        if chars <= _DEC:
            out.append(("receipt-decimal", canonical_id(format(int(first), "x"))))
        elif receipt_ids != "auto":
            raise ValueError("a receipt-decimal partner id is not decimal")
    if receipt_ids in ("auto", "receipt-hex"):
        if chars <= _HEX:
            out.append(("receipt-hex", canonical_id(str(int(first, 16)))))
        elif receipt_ids != "auto":
            raise ValueError("a receipt-hex partner id is not hex")
    return tuple(out)


def id_candidates(raw: str, receipt_ids: str = "auto") -> tuple[str, ...]:
    """Every canonical id a receipt carrying ``raw`` may mean (:func:`id_readings`), each
    once, the literal reading first."""
    return tuple(dict.fromkeys(c for _, c in id_readings(raw, receipt_ids)))


#: unambiguous receipts of one spelling (and none of another) before ``auto`` trusts it
SPELLING_EVIDENCE_MIN = 50


class ReceiptSpelling:
    """What one ``auto`` connector's receipts have shown of its partner's spelling: per
    spelling, the receipts that matched one message under that reading alone. ``learned``:
    the spelling once :data:`SPELLING_EVIDENCE_MIN` receipts showed it and none another."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    @property
    def learned(self) -> str | None:
        if len(self.counts) != 1:
            return None
        [(spelling, n)] = self.counts.items()
        return spelling if n >= SPELLING_EVIDENCE_MIN else None

    @property
    def mixed(self) -> bool:
        return len(self.counts) > 1

    def preferred(self, raw: str) -> str | None:
        """The id the learned spelling reads ``raw`` as (None: nothing learned, or ``raw``
        cannot be read so)."""
        spelling = self.learned
        if spelling is None:
            return None
        return next((c for s, c in id_readings(raw) if s == spelling), None)

    def saw(self, raw: str, matched: str) -> str | None:
        """A receipt carrying ``raw`` matched one message's ``matched`` id by itself (not by
        a preference): evidence when exactly one spelling reads it so. The spelling it
        showed, or None."""
        shown = {s for s, c in id_readings(raw) if c == matched}
        if len(shown) != 1:
            return None
        [spelling] = shown
        self.counts[spelling] = self.counts.get(spelling, 0) + 1
        return spelling


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
