"""The smpp delivery adapter's decisions (issue 11): what it sends, the binding tag checked on
exactly those PDUs, failover only before a partner accepted, no failover after an unanswered
submit and the retry pinned to that connector. The connectors here are small partners in
the test (``Partner``): the adapter's own logic, not the socket code, which
tests/integration/test_e2e_interconnect.py drives against real sessions."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace

import pytest
from delivery_kit import KEY, make_msg

from adressat.core.model import State
from adressat.delivery.adapter import OutcomeKind
from adressat.delivery.errors import DeliveryError
from adressat.delivery.smpp_adapter import (
    HOPS_TLV,
    RouteTarget,
    SmppAdapter,
    build_submits,
    content_of,
)
from adressat.smpp.constants import CommandStatus as S
from adressat.smpp.constants import EsmClass
from adressat.smpp.views import SubmitSm
from adressat.transport.smpp_client import NotBound, SubmitUnanswered

DEST = "46761234567"


@dataclass
class Answer:
    status: int
    message_id: str


@dataclass
class Partner:
    """Answers each submit_sm in turn from ``answers`` (a status, or "unanswered")."""

    answers: list[int | str] = field(default_factory=lambda: [0])
    bound: bool = True
    got: list[SubmitSm] = field(default_factory=list)
    ids: int = 100

    async def submit(self, pdu: SubmitSm) -> Answer:
        if not self.bound:
            raise NotBound()
        self.got.append(pdu)
        a = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if a == "unanswered":
            raise SubmitUnanswered()
        self.ids += 1
        assert isinstance(a, int)
        return Answer(a, format(self.ids, "x") if a == 0 else "")


def adapter(partners: dict[str, Partner], via: tuple[str, ...] = ("a", "b"),
            payload: bool = False) -> SmppAdapter:
    return SmppAdapter(
        KEY,
        route=lambda name: RouteTarget(via) if name == "out" else None,
        connector=partners.get,  # type: ignore[arg-type]
        payload_allowed=lambda name: payload,
    )


def msg(text: str = "Your code is 123456", **kw: object):  # type: ignore[no-untyped-def]
    m = make_msg(DEST, text, **kw)  # type: ignore[arg-type]
    return replace(m, route="out")


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_short_message_is_forwarded_with_its_partner_id() -> None:
    a, b = Partner(), Partner()
    out = run(adapter({"a": a, "b": b}).deliver(msg()))
    assert out.kind is OutcomeKind.FORWARDED
    [part] = out.forwards
    assert (part.connector, part.partner_id, part.part, part.parts) == ("a", "65", 1, 1)
    assert dict(out.attribution) == {"connector": "a", "partner_id": "65"}
    [pdu] = a.got
    assert pdu.destination_addr == DEST and pdu.dest_addr_ton == 1
    assert pdu.registered_delivery == 1  # we need the receipt, whatever was asked
    assert pdu.adressat_hops == 1
    assert pdu.to_pdu().tlv(HOPS_TLV) == 1
    assert b.got == []


def test_failover_when_the_first_is_down_or_refuses() -> None:
    a, b = Partner(bound=False), Partner()
    out = run(adapter({"a": a, "b": b}).deliver(msg()))
    assert out.kind is OutcomeKind.FORWARDED and out.forwards[0].connector == "b"
    a, b = Partner([int(S.ESME_RTHROTTLED)]), Partner()
    out = run(adapter({"a": a, "b": b}).deliver(msg()))
    assert out.kind is OutcomeKind.FORWARDED and out.forwards[0].connector == "b"
    assert len(a.got) == 1 and len(b.got) == 1


def test_no_failover_after_an_unanswered_submit() -> None:
    a, b = Partner(["unanswered"]), Partner()
    out = run(adapter({"a": a, "b": b}).deliver(msg()))
    assert out.kind is OutcomeKind.TEMPORARY
    assert out.error == DeliveryError.PARTNER_UNANSWERED
    assert b.got == []  # I3: "a" may have it


def test_the_retry_after_an_unanswered_submit_goes_only_to_that_connector() -> None:
    a, b = Partner(bound=False), Partner()
    m = replace(msg(), addressed_imsi="smpp:a", error=int(DeliveryError.PARTNER_UNANSWERED),
                attempts=2)
    out = run(adapter({"a": a, "b": b}).deliver(m))
    assert out.kind is OutcomeKind.TEMPORARY and b.got == []
    a.bound = True
    out = run(adapter({"a": a, "b": b}).deliver(m))
    assert out.kind is OutcomeKind.FORWARDED and out.forwards[0].connector == "a"


def test_permanent_refusal_by_every_connector() -> None:
    a, b = Partner([int(S.ESME_RINVDSTADR)]), Partner([int(S.ESME_RINVDSTADR)])
    out = run(adapter({"a": a, "b": b}).deliver(msg()))
    assert out.kind is OutcomeKind.PERMANENT and out.error == DeliveryError.PARTNER_REFUSED
    assert dict(out.attribution)["partner_status"] == int(S.ESME_RINVDSTADR)


def test_temporary_when_a_refusal_was_temporary_or_none_is_bound() -> None:
    a, b = Partner([int(S.ESME_RINVDSTADR)]), Partner([int(S.ESME_RMSGQFUL)])
    out = run(adapter({"a": a, "b": b}).deliver(msg()))
    assert out.kind is OutcomeKind.TEMPORARY
    out = run(adapter({"a": Partner(bound=False)}).deliver(msg()))
    assert out.kind is OutcomeKind.TEMPORARY and out.error == DeliveryError.PARTNER_UNAVAILABLE


def test_never_back_to_the_partner_it_came_from() -> None:
    a, b = Partner(), Partner()
    m = replace(msg(), extra={"no_via": "a"})
    out = run(adapter({"a": a, "b": b}).deliver(m))
    assert out.forwards[0].connector == "b" and a.got == []
    out = run(adapter({"a": a}, via=("a",)).deliver(m))
    assert out.kind is OutcomeKind.PERMANENT and out.error == DeliveryError.ROUTING_LOOP


def test_a_mixed_up_message_is_caught_by_the_tag_and_nothing_is_sent() -> None:
    a = Partner()
    m = replace(msg(), destination="46761234568")  # the record says another number
    out = run(adapter({"a": a}).deliver(m))
    assert out.kind is OutcomeKind.QUARANTINE and out.error == DeliveryError.TAG_MISMATCH
    assert a.got == []


@pytest.mark.parametrize("payload", [False, True])
def test_long_message_as_parts_or_payload(payload: bool) -> None:
    text = "x" * 400  # GSM 7-bit: three parts of 153
    a = Partner()
    out = run(adapter({"a": a}, payload=payload).deliver(msg(text)))
    assert out.kind is OutcomeKind.FORWARDED
    if payload:
        [pdu] = a.got
        assert pdu.message_payload == text.encode() and pdu.short_message == b""
        assert len(out.forwards) == 1
    else:
        assert len(a.got) == 3 and [f.part for f in out.forwards] == [1, 2, 3]
        assert all(p.esm_class & EsmClass.GSM_UDHI for p in a.got)
        assert content_of(a.got)[1] == text.encode()
        assert len({f.partner_id for f in out.forwards}) == 3


def test_a_part_refused_after_the_first_was_accepted_stays_with_that_partner() -> None:
    a, b = Partner([0, int(S.ESME_RINVDSTADR), 0]), Partner()
    out = run(adapter({"a": a, "b": b}).deliver(msg("y" * 400)))
    assert out.kind is OutcomeKind.FORWARDED and b.got == []
    states = [f.state for f in out.forwards]
    assert states == [State.FORWARDED, State.UNDELIVERABLE, State.FORWARDED]
    assert out.forwards[1].partner_id is None


def test_build_submits_refuses_what_cannot_be_carried() -> None:
    m = msg(content=b"\x05\x00\x03\x01\x02\x01" + b"z" * 300, esm_class=0x40)
    with pytest.raises(ValueError):
        build_submits(m, payload=False)
    [pdu] = build_submits(m, payload=True)
    assert pdu.message_payload == m.content
