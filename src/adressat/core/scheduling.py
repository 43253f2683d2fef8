"""Pure scheduling decisions shared by the store back ends and the scheduler."""

from __future__ import annotations

import hashlib
import math

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


def takes_scts(scts: int | None, attempts: int) -> bool:
    """A queued message (its stored ``scts`` and ``attempts`` before this claim) gets its
    TP-SCTS at the claim of its first attempt; a resend keeps the one it has. A message first
    attempted before stamps were stored (schema v9) has none and keeps the identity it was
    first sent with (its TP-MR), so a resend across the upgrade is still recognised."""
    return scts is None and attempts == 0


def counter_key(destination: str) -> int:
    """The key of a destination's TP-SCTS counter: the number itself (E.164 digits, at most
    15), an integer key being the cheapest to look up; anything else by a 62-bit hash, above
    every E.164 number. Two destinations sharing a key share a counter: their stamps are
    then only further apart, never alike."""
    if destination.isascii() and destination.isdigit() and len(destination) <= 15:
        return int(destination)
    digest = hashlib.blake2b(destination.encode(), digest_size=8).digest()
    return (1 << 62) | (int.from_bytes(digest, "big") >> 2)


def give_scts(last: int | None, now: float) -> int:
    """The TP-SCTS (epoch second) a destination's next message gets, from the last one given
    to that destination (None: never). TS 23.040 §6.2: the stamp is the time the message
    reached the SC to the second, and when two or more messages to one MS arrive within one
    second the SC modifies their stamps so that (a) all messages to the MS differ and (b) the
    modification is kept to a minimum: here the second of ``now``, or one second after the
    last one given when that is not later (also when the clock has stepped back). The result
    is the destination's new last stamp."""
    second = math.floor(now)
    return second if last is None or second > last else last + 1
