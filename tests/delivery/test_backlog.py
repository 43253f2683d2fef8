"""delivery/backlog.py: which routes a claim shows delivery behind on (pure)."""

from __future__ import annotations

from dataclasses import replace

from delivery_kit import T0, make_msg

from adressat.core.model import Message
from adressat.delivery.backlog import ClaimLag, youngest_waits


def _m(route: str, due: float, not_before: float = 0.0) -> Message:
    return replace(make_msg(), route=route, next_attempt_at=due, not_before=not_before)


def test_youngest_wait_per_route_counts_from_when_it_was_due() -> None:
    now = T0 + 10
    msgs = [_m("out", T0), _m("out", T0 + 9.5), _m("own", T0 + 2),
            _m("own", T0 + 1, not_before=T0 + 8)]  # scheduled: due at not_before
    assert youngest_waits(msgs, now) == {"out": 0.5, "own": 2.0}
    assert youngest_waits([], now) == {}


def test_a_full_claim_of_old_messages_is_behind_and_a_short_claim_catches_up() -> None:
    lag = ClaimLag(0.05)
    now = T0 + 1
    assert lag.observe([_m("out", now - 0.2)] * 4, 4, now) == ("out",)
    # nothing new to say within repeat_s; said again after it
    assert lag.observe([_m("out", now - 0.2)] * 4, 4, now + 0.05) is None
    assert lag.observe([_m("out", now - 0.2)] * 4, 4, now + 0.11) == ("out",)
    # a claim that did not fill its limit emptied the due queue: every route caught up
    assert lag.observe([_m("out", now - 0.2)], 4, now + 0.12) == ()
    assert lag.observe([], 4, now + 0.2) is None  # said once


def test_messages_due_just_now_or_one_straggler_are_not_a_queue() -> None:
    lag = ClaimLag(0.05)
    now = T0 + 1
    assert lag.observe([_m("out", now - 0.01)] * 4, 4, now) is None
    # one message that waited for its destination, the rest fresh: the youngest decides
    claim = [_m("out", now - 5.0)] + [_m("out", now - 0.01)] * 3
    assert lag.observe(claim, 4, now) is None


def test_routes_are_told_apart() -> None:
    lag = ClaimLag(0.05)
    now = T0 + 1
    claim = [_m("out", now - 0.3), _m("out", now - 0.2), _m("own", now - 0.001)]
    assert lag.observe(claim, 3, now) == ("out",)
    # a later full claim shows "own" behind too, without "out": "out" stays until it lapses
    assert lag.observe([_m("own", now - 0.3)] * 3, 3, now + 0.05) == ("out", "own")
    # not seen in a full claim for three repeats: lapsed
    assert lag.observe([_m("own", now - 0.3)] * 3, 3, now + 0.5) == ("own",)
    # a full claim of fresh "own" messages: it keeps up
    assert lag.observe([_m("own", now + 0.5)] * 3, 3, now + 0.51) == ()


def test_pacing_off_is_never_behind() -> None:
    lag = ClaimLag(0.0)
    assert lag.observe([_m("out", T0 - 100)] * 4, 4, T0) is None


def test_a_route_not_paced_is_never_said_behind() -> None:
    lag = ClaimLag(0.05)
    now = T0 + 1
    claim = [_m("out", now - 0.3), _m("netsim", now - 0.3)]
    assert lag.observe(claim, 2, now, paced=lambda r: r != "netsim") == ("out",)
