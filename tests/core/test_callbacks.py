"""core/callbacks.py: events per state, the spec's encoding (issue 12)."""

from __future__ import annotations

import pytest

from adressat.core.callbacks import (
    CALLBACK_KINDS,
    DEFAULT_EVENTS,
    BadCallbackSpec,
    CallbackEvent,
    CallbackSpec,
    decode_spec,
    encode_spec,
    event_for,
    make_spec,
    spec_event,
)
from adressat.core.model import FINAL_STATES, State


def test_event_for_every_state() -> None:
    assert event_for(State.DELIVERED) is CallbackEvent.DELIVERED
    assert event_for(State.DEFERRED) is CallbackEvent.DEFERRED
    assert event_for(State.FORWARDED) is CallbackEvent.FORWARDED
    for state in FINAL_STATES - {State.DELIVERED}:
        assert event_for(state) is CallbackEvent.FAILED, state
    for state in (State.ACCEPTED, State.ROUTED, State.DISPATCHED, State.HELD):
        assert event_for(state) is None, state


def test_default_events_are_the_finals() -> None:
    assert DEFAULT_EVENTS == (CallbackEvent.DELIVERED, CallbackEvent.FAILED)
    assert CALLBACK_KINDS == ("webhook", "kannel")


@pytest.mark.parametrize("kind", CALLBACK_KINDS)
@pytest.mark.parametrize(
    "url",
    ["https://a.example/cb", "http://h:8080/x?a=1&b=%d|%T", "https://h/p|q|r"],
)
def test_encode_decode_round_trip(kind: str, url: str) -> None:
    for events in (DEFAULT_EVENTS, tuple(CallbackEvent), (CallbackEvent.ACCEPTED,)):
        spec = make_spec(kind, url, events)
        text = encode_spec(spec)
        assert decode_spec(text) == spec
        assert isinstance(text, str)


def test_encoding_is_stable_and_compact() -> None:
    spec = CallbackSpec("webhook", "https://x/cb", frozenset(CallbackEvent))
    assert encode_spec(spec) == "webhook|accepted,deferred,forwarded,delivered,failed|https://x/cb"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "webhook",
        "webhook|delivered",
        "smtp|delivered|https://x",
        "webhook||https://x",
        "webhook|delivered|",
        "webhook|sent|https://x",
    ],
)
def test_decode_refuses_what_encode_never_wrote(text: str) -> None:
    with pytest.raises(BadCallbackSpec):
        decode_spec(text)


@pytest.mark.parametrize(
    ("kind", "url", "events"),
    [
        ("smtp", "https://x/", DEFAULT_EVENTS),
        ("webhook", "ftp://x/", DEFAULT_EVENTS),
        ("webhook", "javascript:alert(1)", DEFAULT_EVENTS),
        ("webhook", "https://x/ y", DEFAULT_EVENTS),
        ("webhook", "https://x/\n", DEFAULT_EVENTS),
        ("webhook", "", DEFAULT_EVENTS),
        ("webhook", "https://x/" + "a" * 3000, DEFAULT_EVENTS),
        ("webhook", "https://x/", ()),
        ("webhook", "https://x/", ("sent",)),
    ],
)
def test_make_spec_refuses(kind: str, url: str, events: tuple[str, ...]) -> None:
    with pytest.raises(BadCallbackSpec):
        make_spec(kind, url, events)


def test_spec_event_only_what_was_asked() -> None:
    text = encode_spec(make_spec("webhook", "https://x/", (CallbackEvent.DEFERRED,)))
    assert spec_event(text, State.DEFERRED) is CallbackEvent.DEFERRED
    assert spec_event(text, State.DELIVERED) is None
    assert spec_event(text, State.ROUTED) is None
    default = encode_spec(make_spec("webhook", "https://x/"))
    assert spec_event(default, State.EXPIRED) is CallbackEvent.FAILED
    assert spec_event(default, State.DELIVERED) is CallbackEvent.DELIVERED
    assert spec_event(None, State.DELIVERED) is None
    assert spec_event(7, State.DELIVERED) is None
    assert spec_event("garbage", State.DELIVERED) is None


def test_callback_url_allowed_only_to_the_accounts_hosts() -> None:
    from adressat.core.callbacks import callback_url_allowed

    own = "https://hooks.acme.example/sms"
    assert callback_url_allowed("https://hooks.acme.example/other?x=1", own, ())
    assert callback_url_allowed("http://HOOKS.acme.example:8080/p", own, ())
    assert callback_url_allowed("https://b.example/p", own, ("b.example",))
    assert callback_url_allowed("https://b.example/p", None, ("B.Example",))
    assert not callback_url_allowed("https://b.example/p", None, ())  # by default: nothing
    assert not callback_url_allowed("https://evil.example/p", own, ("b.example",))
    assert not callback_url_allowed("https://hooks.acme.example.evil.example/", own, ())
    assert not callback_url_allowed("https://user@evil.example/", own, ())
    assert not callback_url_allowed("ftp://hooks.acme.example/", own, ())
    assert not callback_url_allowed("https://hooks.acme.example:99999/", own, ())
    assert not callback_url_allowed("not a url", own, ())


def test_check_account_callbacks() -> None:
    from adressat.core.callbacks import check_account_callbacks

    assert check_account_callbacks(None, (), None) == (None, (), None)
    url, hosts, secret = check_account_callbacks(
        "https://h.example/cb", ("A.example", "a.example", " b.example "), b"k" * 32
    )
    assert (url, hosts, secret) == ("https://h.example/cb", ("a.example", "b.example"), b"k" * 32)
    for bad in (
        ("ftp://h/", (), None),
        ("https:///nohost", (), None),
        ("https://h.example/a b", (), None),
        (None, ("a/b",), None),
        (None, ("",), None),
        (None, ("h:80",), None),
        (None, tuple(f"h{i}.example" for i in range(33)), None),
        (None, (), b"short"),
    ):
        with pytest.raises(ValueError):
            check_account_callbacks(*bad)  # type: ignore[arg-type]
