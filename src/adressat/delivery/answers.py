"""Answers from the network that arrive outside the attempt they belong to (DESIGN.md,
"Identity checks": late, unmatched or duplicated answers are discarded with an alarm, never
applied to another message).

The netsim adapter gets the answer of each MT-ForwardSM as the return value of that call, so
the attempt in flight is matched by construction, as a real SMSC matches an answer by its
MAP/TCAP dialogue (never by a field of the TPDU: SMS-DELIVER carries no TP-MR). Anything
that arrives on the network's late-ack channel (``Network.on_late_ack``) is therefore, by
definition, not the answer of an attempt in flight: it is classified here and only ever
produces an alarm (plus fail-closed effects on the message it names), never a delivery.
"""

from __future__ import annotations

from dataclasses import dataclass

from adressat.core.integrity import AlarmKind
from adressat.core.model import Message, State

__all__ = ["NetworkAnswer", "classify_answer"]


@dataclass(frozen=True, slots=True)
class NetworkAnswer:
    """An acknowledgement seen outside its MT-ForwardSM: the dialogue it answers (the SMSC's
    message id and the index of the part it carried), and the identity of the handset that
    answered."""

    smsc_message_id: str
    part_index: int
    imsi: str
    msisdn: str
    node: str | None = None


def classify_answer(
    msg: Message | None, answer: NetworkAnswer, current_imsi: str | None
) -> AlarmKind:
    """Which alarm an out-of-attempt answer raises.

    * the id is unknown -> ``unmatched_answer``;
    * the answering identity is not the message's destination identity (the MSISDN differs,
      or the IMSI differs from the one that acknowledged delivery, or, when not delivered, from
      the destination's current IMSI) -> ``stray_ack``: a stranger's handset has the message;
    * the right identity, message DELIVERED -> ``duplicate_answer``;
    * the right identity, otherwise -> ``late_answer``.
    """
    if msg is None:
        return AlarmKind.UNMATCHED_ANSWER
    if answer.msisdn != msg.destination:
        return AlarmKind.STRAY_ACK
    expected = msg.delivered_imsi if msg.state is State.DELIVERED else current_imsi
    if expected is not None and answer.imsi != expected:
        return AlarmKind.STRAY_ACK
    if msg.state is State.DELIVERED:
        return AlarmKind.DUPLICATE_ANSWER
    return AlarmKind.LATE_ANSWER
