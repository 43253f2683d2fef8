"""Pure scheduling decisions shared by the store back ends and the scheduler."""

from __future__ import annotations

import hashlib

from adressat.core.model import QUEUED_STATES, Message, State


def is_due(msg: Message, now: float) -> bool:
    """Claimable now: queued, its next attempt and its scheduled time reached, not expired."""
    return (
        msg.state in QUEUED_STATES
        and msg.next_attempt_at <= now
        and msg.not_before <= now
        and msg.expires_at > now
    )


def should_expire(msg: Message, now: float) -> bool:
    """Past validity and not in flight. HELD messages are not expired while held (fail closed:
    the operator decides); DISPATCHED ones are decided by their attempt or lease recovery."""
    return msg.state in QUEUED_STATES and msg.expires_at <= now


def claim_order_key(msg: Message) -> tuple[int, float, float, str]:
    """Claim order: highest priority first, then earliest due (``next_attempt_at``, which is the
    submission or scheduled time for a new message), then oldest submission, then id."""
    return (-msg.priority, msg.next_attempt_at, msg.submitted_at, msg.id)


def lease_expired(msg: Message, now: float) -> bool:
    return msg.state is State.DISPATCHED and (msg.lease_until is None or msg.lease_until < now)


#: TP-MR is one octet (3GPP TS 23.040 9.2.3.6).
REFERENCES = 256


def takes_reference(reference: int | None, attempts: int) -> bool:
    """A queued message (its stored ``reference`` and ``attempts`` before this claim) gets
    its TP-MR at the claim of its first attempt; a resend keeps the one it has. A message
    attempted before references were stored (schema v4) has none and keeps the one derived
    from its id, so a resend across the upgrade is still recognised."""
    return reference is None and attempts == 0


def counter_key(destination: str) -> int:
    """The key of a destination's TP-MR counter: the number itself (E.164 digits, at most 15),
    an integer key being the cheapest to look up; anything else by a 62-bit hash, above every
    E.164 number."""
    if destination.isascii() and destination.isdigit() and len(destination) <= 15:
        return int(destination)
    digest = hashlib.blake2b(destination.encode(), digest_size=8).digest()
    return (1 << 62) | (int.from_bytes(digest, "big") >> 2)


def give_reference(counter: int | None) -> tuple[int, int]:
    """(the TP-MR a destination's next new message gets, the destination's counter after it),
    from the stored counter (None: a destination never claimed before starts at 0). The
    messages to one number thus differ in TP-MR until the counter has gone round, 256
    messages later; a handset remembers far fewer than that (netsim: 128)."""
    reference = (counter or 0) % REFERENCES
    return reference, (reference + 1) % REFERENCES
