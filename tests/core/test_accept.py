"""accept_message(): validation, normalisation, id, tag, route (the only way in)."""

from __future__ import annotations

import pytest

from adressat.core.accept import AcceptLimits, Refusal, Refused, Submission, accept_message
from adressat.core.model import Message, State
from adressat.core.tag import verify_tag
from adressat.routing import normalise

KEY = b"k" * 32
NOW = 1_800_000_000.0


def _accept(sub: Submission, **kw: object):
    return accept_message(
        sub,
        now=NOW,
        message_id="0" * 31 + "1",
        normalise_destination=normalise,
        route_for=lambda dest, account: "netsim" if dest.startswith("467") else "unroutable",
        tag_key=KEY,
        **kw,  # type: ignore[arg-type]
    )


def sub(**kw: object) -> Submission:
    base: dict[str, object] = dict(
        account="acme", source_addr="Acme", source_ton=5, dest_addr="46701000001",
        dest_ton=1, dest_npi=1, content=b"hello",
    )
    base.update(kw)
    return Submission(**base)  # type: ignore[arg-type]


def test_accepted_message_is_routed_tagged_and_normalised() -> None:
    m = _accept(sub(dest_addr="0701000001", dest_ton=2))
    assert m.destination == "46701000001"
    assert m.state is State.ROUTED and m.route == "netsim"
    assert verify_tag(KEY, m.tag, m.id, m.destination, m.content, m.data_coding, m.esm_class)
    assert m.expires_at == NOW + AcceptLimits().validity_s_default
    assert m.not_before == NOW == m.next_attempt_at


def test_accepted_message_has_every_field_where_the_dataclass_puts_it() -> None:
    # accept_message builds the record positionally (the hot path): it must equal the one
    # the dataclass's own keyword __init__ builds
    s = sub(source_npi=1, data_coding=8, content="hej".encode("utf-16-be"), esm_class=0,
            registered_delivery=1, priority=2, protocol_id=3, schedule_at=NOW + 60,
            extra={"user_message_reference": 7})
    m = _accept(s)
    assert m == Message(
        id="0" * 31 + "1", account="acme", source_addr="Acme", destination="46701000001",
        content=s.content, submitted_at=NOW,
        expires_at=NOW + 60 + AcceptLimits().validity_s_default,
        source_ton=5, source_npi=1, data_coding=8, esm_class=0, registered_delivery=1,
        priority=2, protocol_id=3, not_before=NOW + 60, state=State.ROUTED, route="netsim",
        attempts=0, next_attempt_at=NOW + 60, tag=m.tag, extra={"user_message_reference": 7},
    )
    assert verify_tag(KEY, m.tag, m.id, m.destination, m.content, m.data_coding, m.esm_class)
    assert m.reference is None and m.final_at is None and m.lease_owner is None


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"dest_addr": "12"}, Refusal.INVALID_DESTINATION),
        ({"dest_addr": "Acme", "dest_ton": 5}, Refusal.INVALID_DESTINATION),
        ({"source_addr": "ThisIsTooLongForAlpha"}, Refusal.INVALID_SOURCE),
        ({"source_addr": "12ab", "source_ton": 1}, Refusal.INVALID_SOURCE),
        ({"content": b"\x80abc"}, Refusal.INVALID_CONTENT),
        ({"content": b"abc\x1b"}, Refusal.INVALID_CONTENT),
        ({"content": b"\x00a\x00", "data_coding": 8}, Refusal.INVALID_CONTENT),
        ({"content": b"a" * 40_000}, Refusal.MESSAGE_TOO_LONG),
        ({"priority": 4}, Refusal.INVALID_PRIORITY),
        ({"expires_at": NOW - 1}, Refusal.INVALID_EXPIRY),
        ({"schedule_at": NOW + 100, "expires_at": NOW + 50}, Refusal.INVALID_SCHEDULE),
        ({"schedule_at": NOW + 30 * 86400}, Refusal.INVALID_SCHEDULE),
    ],
)
def test_refusals(kw: dict[str, object], reason: Refusal) -> None:
    with pytest.raises(Refused) as e:
        _accept(sub(**kw))
    assert e.value.reason is reason
    assert "hello" not in str(e.value)


def test_escaped_escape_and_even_ucs2_are_fine() -> None:
    assert _accept(sub(content=b"a\x1b\x1b")).content == b"a\x1b\x1b"
    assert _accept(sub(content=b"\x00a", data_coding=8)).content == b"\x00a"
    # with a UDH the text is checked where the UDH is parsed
    assert _accept(sub(content=b"\x05\x00\x03\x01\x02\x01\x00a\x00", data_coding=8,
                       esm_class=0x40)).esm_class == 0x40


def test_binary_content_above_0x7f_is_fine_for_8bit() -> None:
    m = _accept(sub(content=b"\x80\xff", data_coding=4))
    assert m.content == b"\x80\xff"


def test_validity_beyond_maximum_is_shortened_and_recorded() -> None:
    m = _accept(sub(expires_at=NOW + 30 * 86400))
    assert m.expires_at == NOW + AcceptLimits().validity_s_max
    assert m.extra["validity_shortened"] == 1


def test_schedule_is_kept() -> None:
    m = _accept(sub(schedule_at=NOW + 600))
    assert m.not_before == NOW + 600 == m.next_attempt_at
    assert m.expires_at == NOW + 600 + AcceptLimits().validity_s_default


def test_other_operator_routes_unroutable() -> None:
    assert _accept(sub(dest_addr="4915112345678")).route == "unroutable"
