"""What a delivery adapter answers, and the protocol every adapter implements.

An adapter puts one message on one kind of route (netsim, smpp connector, ...) and says what
happened; it never touches the store. The worker turns the :class:`Outcome` into one state
transition plus one audit record.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from adressat.core.model import ExtraValue, ForwardPart, Message
from adressat.delivery.errors import DeliveryError


class OutcomeKind(enum.Enum):
    DELIVERED = "DELIVERED"
    """Acknowledged by the destination's current identity (final)."""
    TEMPORARY = "TEMPORARY"
    """Try again later (DEFERRED, or EXPIRED if the next attempt would be too late)."""
    PERMANENT = "PERMANENT"
    """Will never succeed (UNDELIVERABLE)."""
    QUARANTINE = "QUARANTINE"
    """Integrity failure (QUARANTINED): never retried, never sent to anyone else."""
    FORWARDED = "FORWARDED"
    """A partner operator accepted it (FORWARDED): its receipt ends it, nothing resends it."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one delivery attempt.

    ``imsi``/``msisdn`` are the identity that acknowledged (or, for failures, the identity the
    message was addressed to, if known); ``node`` is the network node used. ``error`` is a
    :class:`~adressat.delivery.errors.DeliveryError` code; ``reason`` a short machine word,
    never message text. ``related``: other message ids involved in an integrity failure
    (for ``IMSI_CONFLICT``, the earlier message the same IMSI acknowledged for another number).
    ``addressed_imsi``: the IMSI the SMSC looked up and addressed, when it differs from
    ``imsi`` (an integrity failure: the forensic record and the audit need both).
    """

    kind: OutcomeKind
    imsi: str | None = None
    msisdn: str | None = None
    node: str | None = None
    error: int = DeliveryError.OK
    reason: str = ""
    related: tuple[str, ...] = ()
    addressed_imsi: str | None = None
    #: FORWARDED: the parts as handed to the partner (partner ids, refused parts)
    forwards: tuple[ForwardPart, ...] = ()
    #: kept on the message's ``extra`` whatever the outcome: where it went (``connector``,
    #: ``operator``, ``partner_id``) and the partner's answer (``partner_status``)
    attribution: tuple[tuple[str, ExtraValue], ...] = ()

    @classmethod
    def delivered(cls, imsi: str, msisdn: str, node: str | None) -> Outcome:
        return cls(OutcomeKind.DELIVERED, imsi, msisdn, node, DeliveryError.OK, "delivered")

    @classmethod
    def failed(
        cls,
        kind: OutcomeKind,
        error: DeliveryError,
        *,
        imsi: str | None = None,
        msisdn: str | None = None,
        node: str | None = None,
        reason: str | None = None,
        related: tuple[str, ...] = (),
        addressed_imsi: str | None = None,
    ) -> Outcome:
        return cls(
            kind, imsi, msisdn, node, int(error), reason or error.name.lower(), related,
            addressed_imsi,
        )


#: ``await addressed(imsi)``: an adapter calls it once it knows the identity it will hand the
#: message to, and sends nothing unless it answers True (the identity is durable on the
#: message by then: after a crash in the middle of the attempt, the retry goes only there).
Addressed = Callable[[str], Awaitable[bool]]


@runtime_checkable
class Adapter(Protocol):
    async def deliver(self, msg: Message, addressed: Addressed | None = None) -> Outcome: ...
