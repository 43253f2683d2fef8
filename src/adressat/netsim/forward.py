"""What travels on the MT-ForwardSM step: the SMS as the network carries it, and the answers."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from adressat.sms.segment import PARTS_MAX
from adressat.sms.timestamp import SCTS_OCTETS

__all__ = ["NetSms", "Ack", "Failure", "FailureReason", "ForwardResult", "TP_UD_BYTES_MAX"]

TP_UD_BYTES_MAX = 140  # TS 23.040: user data of one SMS-DELIVER


@dataclass(frozen=True, slots=True)
class NetSms:
    """The SMS-DELIVER handed to the network. It carries the SENDER, never the recipient: the
    network knows the recipient only by the IMSI it is addressed to.

    The TPDU fields a handset sees: ``originator`` (TP-OA), ``scts`` (TP-SCTS, the seven
    octets of TS 23.040 §9.2.3.11), ``data_coding`` (TP-DCS), ``udhi`` (TP-UDHI) and
    ``content`` (TP-UD). A handset recognises a resend by (TP-OA, TP-SCTS), and for the parts
    of a long message, which share their message's stamp, by the part number of the
    concatenation element too (§9.2.3.24.1): the SC makes the stamp distinct for every message
    to one MS (§6.2), and a resend carries the same one. SMS-DELIVER has no TP-MR.

    ``smsc_message_id`` and ``part_index`` (0-based) name the SMSC's side of the MT-ForwardSM
    dialogue this SMS travels in: a real SMSC matches an answer by its MAP/TCAP dialogue, never
    by anything in the TPDU; netsim's late-ack channel names the dialogue by them.
    ``smsc_message_id`` and ``content_digest`` (the SMSC's own digest, opaque here) are also
    written to the evidence record. The handset never uses any of the three to recognise a
    resend.

    ``legacy_reference``: set only for a message first sent before schema v9, when netsim
    modelled the identity of an SMS-DELIVER by a TP-MR (0..255): its resends are recognised by
    (originator, that reference, content) as they were then, so that what a handset stored
    before the upgrade is still recognised after it.
    """

    originator: str
    scts: bytes
    data_coding: int
    content: bytes
    smsc_message_id: str
    content_digest: str = ""
    udhi: bool = False
    part_index: int = 0
    legacy_reference: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.scts, bytes) or len(self.scts) != SCTS_OCTETS:
            raise ValueError(f"scts must be {SCTS_OCTETS} octets")
        if not 0 <= self.data_coding <= 255:
            raise ValueError("data_coding must be 0..255")
        if not isinstance(self.content, bytes) or len(self.content) > TP_UD_BYTES_MAX:
            raise ValueError(f"content must be bytes of at most {TP_UD_BYTES_MAX}")
        if not self.originator or len(self.originator) > 21:
            raise ValueError("originator must be 1..21 characters")
        if not 0 <= self.part_index < PARTS_MAX:
            raise ValueError(f"part_index must be 0..{PARTS_MAX - 1}")
        if self.legacy_reference is not None and not 0 <= self.legacy_reference <= 255:
            raise ValueError("legacy_reference must be 0..255")


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
