"""The delivery error codes: the ``err:`` field of receipts and the store's ``error`` column.

One table (STYLE.md #6), checked by ``tests/delivery/test_delivery_errors.py``: every code is
unique, fits the receipt's three digits, and has a description. Ranges:

* 0          success
* 1..9       answers of the network about the subscriber (temporary unless noted)
* 10..19     our own routing or content refusals (permanent, nothing was sent)
* 20..29     validity
* 30..39     integrity failures: 30..33 and 35 QUARANTINED (never retried, never sent to anyone
             else); 34 an integrity refusal BEFORE sending (nothing went out; the message
             itself is fine, so it is retried after backoff, or HELD once the route's breaker
             trips: the register is giving wrong answers on this route)
"""

from __future__ import annotations

from enum import IntEnum


class DeliveryError(IntEnum):
    """A documented numeric error code. ``description`` says what it means (no message text)."""

    description: str

    def __new__(cls, value: int, description: str) -> DeliveryError:
        obj = int.__new__(cls, value)
        obj._value_ = value
        obj.description = description
        return obj

    OK = (0, "delivered; the handset acknowledged with the destination's current identity")
    ABSENT_SUBSCRIBER = (1, "absent subscriber (detached or no paging response); temporary")
    MEMORY_CAPACITY_EXCEEDED = (2, "handset memory full; temporary")
    UNKNOWN_SUBSCRIBER = (3, "the number is not a subscriber of the network; permanent")
    SYSTEM_FAILURE = (4, "network or register failure; temporary")
    TIMEOUT = (5, "no answer from the network within the delivery timeout; temporary")
    UNIDENTIFIED_SUBSCRIBER = (6, "the serving node does not know the IMSI (moved); temporary")
    UNROUTABLE = (10, "no route or no adapter for the message's route; permanent")
    INVALID_CONTENT = (11, "content cannot be carried (data coding, UDH, size); permanent")
    EXPIRED = (20, "validity period ended before delivery")
    TAG_MISMATCH = (30, "integrity: the binding tag does not match what was about to be sent")
    IDENTITY_MISMATCH = (
        31,
        "integrity: the acknowledging identity (IMSI, MSISDN) is not the destination's current"
        " identity",
    )
    IMSI_CONFLICT = (32, "integrity: one IMSI acknowledged for two different numbers")
    PARTS_IDENTITY_MISMATCH = (
        33,
        "integrity: the parts of one long message were acknowledged by different identities",
    )
    RETRY_IDENTITY_CHANGED = (
        35,
        "integrity: a retry after an unanswered attempt (timeout: the handset may have stored"
        " it) would go to another identity than the one addressed before; not sent",
    )
    ROUTING_MISMATCH = (
        34,
        "integrity: the register's routing answer is not the destination's current identity"
        " (stale after a SIM swap, or another number's IMSI); nothing sent; temporary",
    )

    # interconnect (issue 11): 40..49
    PARTNER_REFUSED = (
        40, "the partner operator refused the message (its command_status in the record); "
        "permanent",
    )
    PARTNER_UNAVAILABLE = (
        41, "no connector of the route could take it (unbound, or refused it for now); "
        "temporary",
    )
    PARTNER_NO_RECEIPT = (
        42, "handed to a partner, which never said what became of it (final UNKNOWN)",
    )
    PARTNER_UNANSWERED = (
        43, "sent to a partner, no answer (timeout or connection lost): retried through the "
        "same connector only; temporary",
    )
    PARTNER_NOT_DELIVERED = (
        44, "the partner's receipt says it was not delivered (its err: in the record)",
    )
    ROUTING_LOOP = (
        45, "the route would send it back to the partner it came from, or past the hop limit;"
        " permanent",
    )


#: Codes that mean an integrity failure (the message is QUARANTINED). ``ROUTING_MISMATCH`` is
#: not one of them: it is a refusal before sending (alarm, breaker, message retried or HELD).
INTEGRITY_ERRORS: frozenset[DeliveryError] = frozenset(
    {
        DeliveryError.TAG_MISMATCH,
        DeliveryError.IDENTITY_MISMATCH,
        DeliveryError.IMSI_CONFLICT,
        DeliveryError.PARTS_IDENTITY_MISMATCH,
        DeliveryError.RETRY_IDENTITY_CHANGED,
    }
)
