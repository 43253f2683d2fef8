"""What travels on the MT-ForwardSM step: the SMS as the network carries it, and the answers."""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["NetSms", "Ack", "Failure", "FailureReason", "ForwardResult", "TP_UD_BYTES_MAX"]

TP_UD_BYTES_MAX = 140  # TS 23.040: user data of one SMS-DELIVER


@dataclass(frozen=True, slots=True)
class NetSms:
    """The SMS handed to the network. It carries the SENDER, never the recipient: the network
    knows the recipient only by the IMSI it is addressed to.

    ``message_reference`` is the TP-MR (0..255): with the originator and the content it lets a
    handset discard a retransmission of a message it already stored. The SMSC gives the
    messages to one number consecutive references and a resend the same one; a handset
    remembers an originator's last 128 references (``network.REFERENCE_WINDOW``).
    ``smsc_message_id`` and ``content_digest`` (the SMSC's own digest, opaque here) are carried
    for the evidence record only.
    """

    originator: str
    message_reference: int
    data_coding: int
    content: bytes
    smsc_message_id: str
    content_digest: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.message_reference <= 255:
            raise ValueError("message_reference must be 0..255")
        if not 0 <= self.data_coding <= 255:
            raise ValueError("data_coding must be 0..255")
        if not isinstance(self.content, bytes) or len(self.content) > TP_UD_BYTES_MAX:
            raise ValueError(f"content must be bytes of at most {TP_UD_BYTES_MAX}")
        if not self.originator or len(self.originator) > 21:
            raise ValueError("originator must be 1..21 characters")


@dataclass(frozen=True, slots=True)
class Ack:
    """The handset that actually stored the message, in its OWN identity (I2 evidence).

    ``also``: the acknowledgements of OTHER handsets that stored the same SMS during this
    same MT-ForwardSM (a node that delivers one message to two handsets: the
    ``double_delivery`` fault). Empty on an honest network, so ``Ack(imsi, msisdn)`` compares
    equal to what an honest network returns. A non-empty ``also`` means the message reached
    more than one identity: the SMSC must treat it as a misdelivery (I3), whatever the
    primary identity says.
    """

    imsi: str
    msisdn: str
    also: tuple[Ack, ...] = ()


class FailureReason(enum.Enum):
    ABSENT_SUBSCRIBER = "absent_subscriber"
    MEMORY_CAPACITY_EXCEEDED = "memory_capacity_exceeded"
    UNKNOWN_SUBSCRIBER = "unknown_subscriber"  # IMSI not of this network: permanent
    UNIDENTIFIED_SUBSCRIBER = "unidentified_subscriber"  # IMSI not at that node (any more)
    SYSTEM_FAILURE = "system_failure"
    TIMEOUT = "timeout"


_PERMANENT = frozenset({FailureReason.UNKNOWN_SUBSCRIBER})


@dataclass(frozen=True, slots=True)
class Failure:
    reason: FailureReason
    permanent: bool

    @property
    def temporary(self) -> bool:
        return not self.permanent

    @classmethod
    def of(cls, reason: FailureReason) -> Failure:
        """The failure with its usual permanence (only UNKNOWN_SUBSCRIBER is permanent)."""
        return cls(reason, reason in _PERMANENT)


ForwardResult = Ack | Failure
