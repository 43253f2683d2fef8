"""Status callbacks (issue 12): what a sender asked to be told, and one outbox row of it.

A message that asked for callbacks carries its :class:`CallbackSpec` in
``Message.extra["cb"]``, encoded by :func:`encode_spec` as the text ``"kind|events|url"``
(events comma-separated, in the order of :class:`CallbackEvent`; the URL last, so a ``|`` in
it survives). The store writes one :class:`Callback` row in the same transaction as every
state change the spec asks for (``event_for``); the callback sender (ingress/callbacks.py)
sends them, the oldest pending one of each message first. Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from urllib.parse import urlsplit

from adressat.core.model import FINAL_STATES, State


class CallbackEvent(StrEnum):
    """What a sender may ask to be told (API field ``callback_events``)."""

    ACCEPTED = "accepted"  # durably committed (written in the accepting transaction)
    DEFERRED = "deferred"  # temporary failure, will be retried (-> DEFERRED)
    FORWARDED = "forwarded"  # a partner operator accepted it (-> FORWARDED)
    DELIVERED = "delivered"  # final DELIVERED
    FAILED = "failed"  # any other final state (EXPIRED, UNDELIVERABLE, REJECTED,
    # QUARANTINED, CANCELLED, UNKNOWN)


DEFAULT_EVENTS: tuple[CallbackEvent, ...] = (CallbackEvent.DELIVERED, CallbackEvent.FAILED)

#: webhook: a signed JSON POST; kannel: a GET of Kannel's dlr-url with its escapes expanded
CALLBACK_KINDS: tuple[str, ...] = ("webhook", "kannel")

#: The longest callback URL we keep (characters); longer ones are refused at ingress.
CALLBACK_URL_LENGTH_MAX = 2048

_ORDER: tuple[CallbackEvent, ...] = tuple(CallbackEvent)


def event_for(state: State) -> CallbackEvent | None:
    """The event a move into ``state`` reports: DEFERRED, FORWARDED and the final states;
    None for the others (ACCEPTED is written by the accepting insert, not by a move)."""
    if state is State.DELIVERED:
        return CallbackEvent.DELIVERED
    if state in FINAL_STATES:
        return CallbackEvent.FAILED
    if state is State.DEFERRED:
        return CallbackEvent.DEFERRED
    if state is State.FORWARDED:
        return CallbackEvent.FORWARDED
    return None


class BadCallbackSpec(ValueError):
    """A callback spec that cannot be encoded or decoded (our own data, or a bad field)."""


@dataclass(frozen=True, slots=True)
class CallbackSpec:
    """Where and what to tell about one message: ``kind`` one of CALLBACK_KINDS, ``url`` the
    http(s) URL (for ``kannel`` the dlr-url with its escapes unexpanded), ``events`` the
    events asked for (not empty)."""

    kind: str
    url: str
    events: frozenset[CallbackEvent]

    def wants(self, event: CallbackEvent) -> bool:
        return event in self.events


def make_spec(
    kind: str, url: str, events: Iterable[CallbackEvent | str] = DEFAULT_EVENTS
) -> CallbackSpec:
    """A checked spec: a known kind, an http(s) URL of at most CALLBACK_URL_LENGTH_MAX
    characters without control characters, at least one known event."""
    if kind not in CALLBACK_KINDS:
        raise BadCallbackSpec(f"unknown callback kind {kind!r}")
    if not url or len(url) > CALLBACK_URL_LENGTH_MAX:
        raise BadCallbackSpec("callback url empty or too long")
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        raise BadCallbackSpec("callback url has spaces or control characters")
    if not url.lower().startswith(("http://", "https://")):
        raise BadCallbackSpec("callback url is not http(s)")
    try:
        chosen = frozenset(CallbackEvent(e) for e in events)
    except ValueError as exc:
        raise BadCallbackSpec(f"unknown callback event: {exc}") from None
    if not chosen:
        raise BadCallbackSpec("no callback events")
    return CallbackSpec(kind, url, chosen)


def encode_spec(spec: CallbackSpec) -> str:
    """The text kept in ``Message.extra["cb"]``: ``"kind|ev1,ev2|url"``."""
    if spec.kind not in CALLBACK_KINDS or "|" in spec.kind:
        raise BadCallbackSpec(f"unknown callback kind {spec.kind!r}")
    if not spec.events:
        raise BadCallbackSpec("no callback events")
    events = ",".join(e.value for e in _ORDER if e in spec.events)
    return f"{spec.kind}|{events}|{spec.url}"


#: decoded specs kept (a sender's messages share one: the store decodes it at every change)
_SPECS_CACHED_MAX = 1024


@lru_cache(maxsize=_SPECS_CACHED_MAX)
def decode_spec(text: str) -> CallbackSpec:
    """The spec :func:`encode_spec` wrote; BadCallbackSpec for anything else (specs are
    immutable values, so repeated texts are decoded once, up to _SPECS_CACHED_MAX)."""
    parts = text.split("|", 2)
    if len(parts) != 3:
        raise BadCallbackSpec("callback spec is not kind|events|url")
    kind, events, url = parts
    if kind not in CALLBACK_KINDS:
        raise BadCallbackSpec(f"unknown callback kind {kind!r}")
    if not url:
        raise BadCallbackSpec("callback spec without url")
    try:
        chosen = frozenset(CallbackEvent(e) for e in events.split(",") if e)
    except ValueError:
        raise BadCallbackSpec("unknown callback event in spec") from None
    if not chosen:
        raise BadCallbackSpec("callback spec without events")
    return CallbackSpec(kind, url, chosen)


def spec_event(extra_cb: object, state: State) -> CallbackEvent | None:
    """For the store: the event to write when a message whose ``extra.get("cb")`` is
    ``extra_cb`` moves to ``state`` (None: none asked for, or no spec). A spec that does not
    decode writes nothing (it was checked at ingress; the store never fails a transition
    over it)."""
    if not isinstance(extra_cb, str):
        return None
    event = event_for(state)
    if event is None:
        return None
    try:
        spec = decode_spec(extra_cb)
    except BadCallbackSpec:
        return None
    return event if event in spec.events else None


#: An account's callback_hosts: at most this many.
CALLBACK_HOSTS_MAX = 32
#: The length of an account's webhook secret (octets).
WEBHOOK_SECRET_LENGTH = 32


def url_host(url: str) -> str | None:
    """The host of an http(s) URL, lower case (None: not an http(s) URL with a host)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - a bad port raises here
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    return host.lower()


def check_host(host: str) -> str:
    """A host name or address as ``callback_hosts`` keeps it (lower case); ValueError."""
    h = host.strip().lower()
    if not h or len(h) > 253 or any(c in h for c in "/:@?#[] \t\n") or not h.isascii():
        raise ValueError(f"not a host name: {host!r}")
    return h


def check_account_callbacks(
    url: str | None, hosts: Sequence[str], secret: bytes | None
) -> tuple[str | None, tuple[str, ...], bytes | None]:
    """An account's callback settings as the store keeps them (hosts lower case, without
    repeats); ValueError naming what is wrong."""
    if url is not None:
        if len(url) > CALLBACK_URL_LENGTH_MAX or url_host(url) is None:
            raise ValueError("callback url must be an http(s) URL with a host")
        if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
            raise ValueError("callback url has spaces or control characters")
    if len(hosts) > CALLBACK_HOSTS_MAX:
        raise ValueError(f"at most {CALLBACK_HOSTS_MAX} callback hosts")
    kept = tuple(dict.fromkeys(check_host(h) for h in hosts))
    if secret is not None and len(secret) != WEBHOOK_SECRET_LENGTH:
        raise ValueError(f"webhook secret must be {WEBHOOK_SECRET_LENGTH} octets")
    return url, kept, secret


def callback_url_allowed(
    url: str, account_callback_url: str | None, callback_hosts: Sequence[str]
) -> bool:
    """Whether an account may have callbacks sent to ``url``: an http(s) URL whose host is
    the host of the account's own ``callback_url`` or one of its ``callback_hosts``
    (anything else, by default everything, is refused: a sender must not make the SMSC call
    into hosts it was not given)."""
    host = url_host(url)
    if host is None:
        return False
    if host in (h.lower() for h in callback_hosts):
        return True
    return account_callback_url is not None and url_host(account_callback_url) == host


@dataclass(frozen=True, slots=True)
class Callback:
    """One outbox row: an event owed to the account that submitted the message (I4).
    ``event_id`` is unique and increasing (the receiver's dedupe id); ``at`` when the state
    changed; ``last_status`` the last HTTP status (0: no answer / connection error)."""

    event_id: int
    message_id: str
    account: str
    kind: str
    url: str
    event: CallbackEvent
    state: State  # the message state the event reports
    error: int | None
    at: float
    source_addr: str
    destination: str
    attempts: int
    next_attempt_at: float
    last_status: int | None
    sent_at: float | None
    gave_up_at: float | None

    @property
    def pending(self) -> bool:
        return self.sent_at is None and self.gave_up_at is None
