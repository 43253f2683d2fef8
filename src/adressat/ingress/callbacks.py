"""Status callbacks out (issue 12): the outbox rows the store wrote with each state change,
sent to the account that submitted the message, and to no one else (I4).

Two kinds (``core.callbacks.CALLBACK_KINDS``):

* ``webhook``: a JSON POST of ``{"id", "type": "message.<event>", "message_id", "state",
  "error", "at" (RFC 3339), "to", "from", "client_reference"?}``, signed with the account's
  secret: ``Adressat-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, f"{t}." + raw body)>``
  (:func:`sign`, :func:`verify`; docs/http-api.md "Verifying callbacks"), the event id also
  in ``Adressat-Event-Id`` so a receiver drops repeats.
* ``kannel``: a GET of the sender's Kannel ``dlr-url`` with Kannel's escapes expanded
  (:func:`expand_dlr_url`), so an application written for Kannel keeps its DLR handler.

The sender (:class:`CallbackSender`, SMPP process) reads the due rows through the group
committer (a read, no write lock), at most ``batch_max`` per poll and at most
``concurrency_max`` requests in flight, at most ``connections_per_host_max`` of them to one
host (a slow receiver does not take every slot; its other rows wait for a later poll),
over one shared ``aiohttp.ClientSession`` (a timeout per request, redirects not followed: a
redirect could lead to another account's host). It polls every ``poll_s`` and at once on
:meth:`wake` (but not sooner than ``poll_gap_s`` after the last read: one read for the
completions of many requests). When one busy host's rows fill the window read, the read is
widened (up to ``read_rows_max`` rows, at most once per ``poll_s``) so that the other
receivers' rows behind them go out. The store gives per message only its oldest pending
event and only when due, and the sender keeps an event "in flight" until its mark is
durable, so one message's events go out one after the other, in order. Before each send
the URL is checked against the account's rule again (``core.callbacks.
callback_url_allowed``): refused, it is given up. A webhook of an account without a secret
is not sent unsigned: it waits (tried again with the backoff) until an operator gives the
account one.

Answers: 2xx sent; 5xx, 408, 429 (``Retry-After`` honoured), a timeout or a connection
error: tried again with exponential backoff and full jitter (the ceiling doubles from
``retry_delay_s_min`` to ``retry_delay_s_max`` per try), until ``keep_s`` after the event,
then given up; any other answer (3xx, 4xx) is given up at once (logged, counted). A
callback is at least once: a crash between the receiver's 2xx and our mark sends it again
with the same event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import hashlib
import hmac
import json
import logging
import random
import time
from collections import Counter as CounterOf
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

import aiohttp
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily

from adressat.core.callbacks import (
    BadCallbackSpec,
    Callback,
    CallbackEvent,
    CallbackSpec,
    callback_url_allowed,
    make_spec,
    url_host,
)
from adressat.core.model import Account, ForwardPart, Message, State
from adressat.observe.metrics import TurnCounts
from adressat.sms.receipt import DeliveryReceipt, ReceiptStat, build_receipt
from adressat.store.base import Store

if TYPE_CHECKING:
    from adressat.app.settings import Settings
    from adressat.store.commit import GroupCommitter

__all__ = [
    "SIGNATURE_HEADER",
    "EVENT_ID_HEADER",
    "sign",
    "verify",
    "webhook_body",
    "KannelReport",
    "DLR_TYPE",
    "events_for_dlr_mask",
    "kannel_spec",
    "kannel_report",
    "expand_dlr_url",
    "RetryPolicy",
    "Verdict",
    "verdict",
    "parse_retry_after",
    "url_allowed",
    "CallbackSender",
    "CALLBACKS",
    "pending_gauge",
]

log = logging.getLogger("adressat.callbacks")

SIGNATURE_HEADER = "Adressat-Signature"
EVENT_ID_HEADER = "Adressat-Event-Id"
#: a receiver refuses a signature whose timestamp is further than this from its clock
SIGNATURE_TOLERANCE_S = 300.0
#: a response body is read (so the connection is kept) only up to this size; a larger or
#: unsized one is not read and the connection is closed
RESPONSE_BYTES_MAX = 65536
USER_AGENT = "adressat-callbacks/1"

CALLBACKS = Counter("adressat_callbacks", "Status callbacks by account and result (sent,"
                    " retried: a try failed and another is due, gave_up)", ["account", "result"])


# --- signatures ------------------------------------------------------------------------------

def sign(secret: bytes, t: int, body: bytes) -> str:
    """The ``Adressat-Signature`` value: ``t=<t>,v1=<hex HMAC-SHA256(secret, b"<t>." +
    body)>`` over the raw bytes of the body."""
    mac = hmac.new(secret, str(int(t)).encode("ascii") + b"." + body, hashlib.sha256)
    return f"t={int(t)},v1={mac.hexdigest()}"


def verify(secret: bytes, header: str, body: bytes, now: float,
           tolerance_s: float = SIGNATURE_TOLERANCE_S) -> bool:
    """True when ``header`` (an ``Adressat-Signature`` value) signs ``body`` with
    ``secret`` and its timestamp is within ``tolerance_s`` of ``now``. Several ``v1=`` items
    are allowed (any one matching is enough); items of other names are ignored."""
    t: int | None = None
    macs: list[str] = []
    for item in header.split(","):
        name, sep, value = item.strip().partition("=")
        if not sep:
            return False
        if name == "t":
            if t is not None or not value.isdigit() or len(value) > 12:
                return False
            t = int(value)
        elif name == "v1":
            macs.append(value)
    if t is None or not macs or abs(now - t) > tolerance_s:
        return False
    expected = hmac.new(secret, str(t).encode("ascii") + b"." + body,
                        hashlib.sha256).hexdigest()
    ok = False
    for m in macs:  # every one compared, in constant time each
        ok |= hmac.compare_digest(expected, m)
    return ok


def rfc3339(at: float) -> str:
    """``2026-12-03T20:11:33.123Z`` (UTC, milliseconds)."""
    return datetime.fromtimestamp(at, tz=UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def webhook_body(cb: Callback, client_reference: str | None = None,
                 source_international: bool = False) -> bytes:
    """The JSON a webhook POSTs (compact, keys sorted: the same event gives the same bytes).
    As the API shows a message (``GET /v1/messages/{id}``): the state in lower case, ``to``
    in E.164 with its ``+``, ``from`` with a ``+`` when it is an international number
    (``source_international``: the message's source_ton is 1). No message text, ever (I6)."""
    doc: dict[str, object] = {
        "id": str(cb.event_id),
        "type": f"message.{cb.event.value}",
        "message_id": cb.message_id,
        "state": cb.state.value.lower(),
        "error": cb.error,
        "at": rfc3339(cb.at),
        "to": "+" + cb.destination,
        "from": ("+" if source_international else "") + cb.source_addr,
    }
    if client_reference is not None:
        doc["client_reference"] = client_reference
    return json.dumps(doc, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


# --- Kannel's dlr-url ------------------------------------------------------------------------

#: Kannel's DLR types (the bits of its dlr-mask)
DLR_DELIVERED = 1
DLR_FAILED = 2
DLR_BUFFERED = 4
DLR_SMSC_ACK = 8
DLR_SMSC_FAIL = 16

#: The ``%d`` each event is reported as: accepted is Kannel's "delivered to SMSC" (8), a
#: deferral and a hand-over to a partner are "buffered" (4), the finals 1 and 2.
DLR_TYPE: dict[CallbackEvent, int] = {
    CallbackEvent.ACCEPTED: DLR_SMSC_ACK,
    CallbackEvent.DEFERRED: DLR_BUFFERED,
    CallbackEvent.FORWARDED: DLR_BUFFERED,
    CallbackEvent.DELIVERED: DLR_DELIVERED,
    CallbackEvent.FAILED: DLR_FAILED,
}


def events_for_dlr_mask(mask: int) -> frozenset[CallbackEvent]:
    """The events a Kannel ``dlr-mask`` asks for (the one mapping: sendsms uses it too).
    16 (DLR_SMSC_FAIL, "the SMSC refused it") is FAILED: a submit we refuse is refused in the
    sendsms answer, but a message a partner operator refuses after our 202 ends failed, which
    is what an application asking for 16 wants to hear of."""
    events = {e for e, bit in DLR_TYPE.items() if mask & bit}
    if mask & DLR_SMSC_FAIL:
        events.add(CallbackEvent.FAILED)
    return frozenset(events)


def kannel_spec(dlr_url: str, dlr_mask: int) -> CallbackSpec | None:
    """The callback spec of a sendsms with ``dlr-url`` and ``dlr-mask`` (None: the mask asks
    for nothing we send). BadCallbackSpec for a URL that is not one (checked here; whose
    host it names is the caller's check, ``url_allowed``). A ``%`` escape in the host part
    is refused: a value of the message must never choose where its report goes."""
    events = events_for_dlr_mask(dlr_mask)
    if not events:
        return None
    spec = make_spec("kannel", dlr_url, events)
    host = url_host(dlr_url)
    if host is None or "%" in host:
        raise BadCallbackSpec("dlr-url must be an http(s) URL with a plain host")
    return spec


_RECEIPT_STAT: dict[State, ReceiptStat] = {
    State.DELIVERED: ReceiptStat.DELIVRD,
    State.EXPIRED: ReceiptStat.EXPIRED,
    State.UNDELIVERABLE: ReceiptStat.UNDELIV,
    State.QUARANTINED: ReceiptStat.UNDELIV,
    State.REJECTED: ReceiptStat.REJECTD,
    State.CANCELLED: ReceiptStat.DELETED,
    State.UNKNOWN: ReceiptStat.UNKNOWN,
}


@dataclass(frozen=True, slots=True)
class KannelReport:
    """What the escapes of one dlr-url are filled with (Kannel's DLR message)."""

    dlr_type: int  # %d
    reply: str  # %A, and the words of %k %s %S %r %a %b
    source: str  # %p: the original sender
    destination: str  # %P: the original receiver
    at: float  # %t %T: when the state changed
    smsc: str  # %i: the route
    message_id: str  # %I: our message id
    foreign_id: str  # %F: the partner's id, else ours
    account: str  # %n: the sendsms user
    error: int | None  # %B: the receipt's err
    dlr_url: str  # %R


def kannel_reply(cb: Callback, submitted_at: float) -> str:
    """``%A``, what Kannel's DLR carries as its text: ``ACK/`` when the SMSC took it (as
    Kannel says for its DLR 8), else a receipt text as an SMPP SMSC sends (SMPP 3.4
    Appendix B, empty text field): a final state's stat, ENROUTE while it is buffered."""
    if cb.event is CallbackEvent.ACCEPTED:
        return "ACK/"
    stat = _RECEIPT_STAT.get(cb.state, ReceiptStat.ENROUTE)
    return build_receipt(DeliveryReceipt(
        id=cb.message_id, sub=1, dlvrd=1 if cb.state is State.DELIVERED else 0,
        submit_date=datetime.fromtimestamp(submitted_at, tz=UTC),
        done_date=datetime.fromtimestamp(cb.at, tz=UTC), stat=stat,
        err=f"{min(max(cb.error or 0, 0), 999):03d}"))


def kannel_report(cb: Callback, *, route: str = "", submitted_at: float | None = None,
                  partner_id: str | None = None) -> KannelReport:
    return KannelReport(
        dlr_type=DLR_TYPE[cb.event], reply=kannel_reply(cb, cb.at if submitted_at is None
                                                        else submitted_at),
        source=cb.source_addr, destination=cb.destination, at=cb.at, smsc=route,
        message_id=cb.message_id, foreign_id=partner_id or cb.message_id,
        account=cb.account, error=cb.error, dlr_url=cb.url)


def _enc(value: str) -> str:
    return quote(value, safe="")


def _plus00(number: str) -> str:
    """``%q``/``%Q``: a leading ``00`` as ``+`` (encoded)."""
    return "%2B" + _enc(number[2:]) if number.startswith("00") else _enc(number)


#: Kannel escapes of values adressat does not keep (account meta-data, binfo, the original
#: SMS's fields such as %o %O %D %f %u %m %M %x): expanded to nothing, as Kannel does unset
UNSET_ESCAPES = frozenset("oODfumMx")


def expand_dlr_url(pattern: str, r: KannelReport) -> str:
    """Kannel's escapes in a dlr-url, each value URL-encoded (Kannel's user guide,
    "Parameters (Escape Codes)"): ``%d`` DLR type, ``%A`` the reply, ``%p``/``%P`` sender and
    receiver, ``%q``/``%Q`` the same with a leading 00 as +, ``%t`` ``YYYY-MM-DD+HH:MM:SS``
    (UTC), ``%T`` unix time, ``%i`` smsc (our route), ``%I`` our id, ``%F`` the foreign
    (partner) id, ``%n`` the user, ``%B`` the err, ``%R`` the dlr-url, ``%c`` 0, ``%C``
    UTF-8, ``%k``, ``%s``, ``%S``, ``%r``, ``%a``, ``%b`` the words of the reply as Kannel
    takes them from a DLR's text; ``%o %O %D %f %u %m %M %x`` (nothing of ours to say) are
    empty, ``%%`` is ``%``; any other ``%x`` stays as written, as in Kannel."""
    words = r.reply.split()
    out: list[str] = []
    nextarg = 1
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c != "%" or i + 1 >= n:
            out.append(c)
            i += 1
            continue
        e = pattern[i + 1]
        i += 2
        if e == "d":
            out.append(str(r.dlr_type))
        elif e == "A":
            out.append(_enc(r.reply))
        elif e == "b":
            out.append(_enc(r.reply))
        elif e == "a":
            out.append("+".join(_enc(w) for w in words))
        elif e == "k":
            out.append(_enc(words[0]) if words else "")
        elif e == "s":
            if nextarg < len(words):
                out.append(_enc(words[nextarg]))
                nextarg += 1
        elif e == "S":
            if nextarg < len(words):
                out.append(words[nextarg].replace("*", "~"))  # not encoded, as in Kannel
                nextarg += 1
        elif e == "r":
            out.append("+".join(_enc(w) for w in words[nextarg:]))
        elif e == "p":
            out.append(_enc(r.source))
        elif e == "P":
            out.append(_enc(r.destination))
        elif e == "q":
            out.append(_plus00(r.source))
        elif e == "Q":
            out.append(_plus00(r.destination))
        elif e == "t":
            out.append(datetime.fromtimestamp(r.at, tz=UTC).strftime("%Y-%m-%d+%H:%M:%S"))
        elif e == "T":
            out.append(str(int(r.at)))
        elif e == "i":
            out.append(_enc(r.smsc))
        elif e == "I":
            out.append(_enc(r.message_id))
        elif e == "F":
            out.append(_enc(r.foreign_id))
        elif e == "n":
            out.append(_enc(r.account))
        elif e == "B":
            out.append(f"{min(max(r.error or 0, 0), 999):03d}")
        elif e == "R":
            out.append(_enc(r.dlr_url))
        elif e == "c":
            out.append("0")
        elif e == "C":
            out.append("UTF-8")
        elif e in UNSET_ESCAPES:
            out.append("")  # a value adressat has none of: empty, as Kannel writes it unset
        elif e == "%":
            out.append("%")
        else:
            out.append("%" + e)
    return "".join(out)


# --- who may be called -----------------------------------------------------------------------

def url_allowed(url: str, account: Account) -> bool:
    """Whether a callback to ``url`` may go out for ``account`` now, by the account's rule
    (``core.callbacks.callback_url_allowed``: the host of its ``callback_url`` or one of its
    ``callback_hosts``), checked again at every send: an operator may have changed the
    account since the message was accepted."""
    try:
        if urlsplit(url).username is not None:  # user@host: refused, never guessed at
            return False
    except ValueError:
        return False
    return callback_url_allowed(url, account.callback_url, account.callback_hosts)


# --- retries ---------------------------------------------------------------------------------

class Verdict(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    GIVE_UP = "give_up"


def verdict(status: int) -> Verdict:
    """What an HTTP status means for a callback (0: no answer, a timeout or a connection
    error): 2xx sent; 0, 5xx, 408 and 429 tried again; anything else given up at once."""
    if 200 <= status < 300:
        return Verdict.SENT
    if status == 0 or status >= 500 or status in (408, 429):
        return Verdict.RETRY
    return Verdict.GIVE_UP


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or an HTTP-date; RFC 9110
    10.2.3); None when absent or not understood."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(int(value[:12]))
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter: after the n-th failed try (n from 0) the next
    one is due a uniformly random delay within [0, min(delay_s_max, delay_s_min * 2**n)]
    (so a receiver coming back is not hit by everything at once), or later when the
    receiver said Retry-After (clamped to delay_s_max); never past ``keep_s`` after the
    event, when the last try is made; a failure then gives up."""

    delay_s_min: float = 1.0
    delay_s_max: float = 3600.0
    keep_s: float = 86400.0

    def __post_init__(self) -> None:
        if not 0 < self.delay_s_min <= self.delay_s_max or self.keep_s < 0:
            raise ValueError("0 < delay_s_min <= delay_s_max, keep_s >= 0")

    def ceiling_s(self, attempts: int) -> float:
        exp = min(max(attempts, 0), 64)
        return min(self.delay_s_max, self.delay_s_min * 2.0**exp)

    def delay_s(self, attempts: int, rng: random.Random) -> float:
        return rng.uniform(0.0, self.ceiling_s(attempts))

    def next_attempt_at(self, *, at: float, attempts: int, now: float, rng: random.Random,
                        retry_after_s: float | None = None) -> float | None:
        """When to try again after a failed try at ``now`` of an event of ``at`` that had
        failed ``attempts`` times before; None: give up."""
        deadline = at + self.keep_s
        if now >= deadline:
            return None
        delay = self.delay_s(attempts, rng)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.delay_s_max))
        return min(now + delay, deadline)


# --- the sender ------------------------------------------------------------------------------

@dataclass(slots=True)
class _Context:
    """What one poll read besides the rows: the accounts and messages they belong to."""

    accounts: dict[str, Account | None] = field(default_factory=dict)
    messages: dict[str, Message | None] = field(default_factory=dict)
    forwards: dict[str, list[ForwardPart]] = field(default_factory=dict)


def _read_due(store: Store, now: float, want: int, skip: set[int], load: dict[str, int],
              per_host: int, rows_max: int
              ) -> tuple[list[tuple[Callback, str]], _Context, bool]:
    """Up to ``want`` due rows to start now, each with its host: not in ``skip`` (in flight
    or held), and no host past ``per_host`` with what is in flight to it (``load``). When
    one busy host's rows fill the window read, it is read again four times as wide, up to
    ``rows_max`` rows, so the other receivers' rows behind them are not held up by it; then
    the accounts and messages of the rows picked. The flag: it was read wider."""
    limit = want + len(skip)
    wider = False
    while True:
        rows = store.due_callbacks(now, limit)
        used: CounterOf[str] = CounterOf()
        picked: list[tuple[Callback, str]] = []
        for r in rows:
            if r.event_id in skip:
                continue
            host = url_host(r.url) or ""
            if load.get(host, 0) + used[host] >= per_host:
                continue
            used[host] += 1
            picked.append((r, host))
            if len(picked) >= want:
                break
        if len(picked) >= want or len(rows) < limit or limit >= rows_max:
            break
        limit = min(rows_max, limit * 4)
        wider = True
    ctx = _Context()
    for r, _ in picked:
        if r.account not in ctx.accounts:
            ctx.accounts[r.account] = store.get_account(r.account)
        if r.message_id not in ctx.messages:
            ctx.messages[r.message_id] = store.get_message(r.message_id)
        if r.kind == "kannel" and r.message_id not in ctx.forwards:
            ctx.forwards[r.message_id] = store.forwards_of_message(r.message_id)
    return picked, ctx, wider


class CallbackSender:
    """Sends the due callbacks of every account (see the module's doc)."""

    def __init__(
        self,
        committer: GroupCommitter,
        *,
        timeout_s: float = 10.0,
        concurrency_max: int = 64,
        connections_per_host_max: int = 8,
        poll_s: float = 0.5,
        poll_gap_s: float = 0.02,
        batch_max: int = 100,
        read_rows_max: int = 1000,
        policy: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        if concurrency_max < 1 or batch_max < 1 or connections_per_host_max < 1:
            raise ValueError("concurrency_max, batch_max, connections_per_host_max >= 1")
        if read_rows_max < batch_max:
            raise ValueError("read_rows_max must be >= batch_max")
        if timeout_s <= 0 or poll_s <= 0 or not 0 <= poll_gap_s <= poll_s:
            raise ValueError("timeout_s, poll_s > 0; 0 <= poll_gap_s <= poll_s")
        self.committer = committer
        self.timeout_s = timeout_s
        self.concurrency_max = concurrency_max
        self.connections_per_host_max = connections_per_host_max
        self.poll_s = poll_s
        self.poll_gap_s = poll_gap_s
        self._polled_at = -1e18
        self._wide_at = -1e18
        self.batch_max = batch_max
        self.read_rows_max = read_rows_max
        self.policy = policy or RetryPolicy()
        self.clock = clock
        self.rng = rng or random.Random()
        self._in_flight: dict[int, asyncio.Task[None]] = {}
        self._host_load: CounterOf[str] = CounterOf()  # our requests in flight per host
        #: event id -> not before: outcomes the store could not record (bounded by the
        #: events in flight when it failed; each leaves when its time is up)
        self._held: dict[int, float] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._http: aiohttp.ClientSession | None = None
        self._sent_ids: list[int] = []
        self._sent_waiters: list[asyncio.Future[None]] = []
        self._flush_scheduled = False
        self._counts = TurnCounts(CALLBACKS)
        self.sent = 0
        self.retried = 0
        self.gave_up = 0
        self.in_flight_max = 0  # the most requests in flight at once (for tests and status)
        self.polls = 0  # outbox reads
        self.poll_failures = 0
        self._failing = False

    @classmethod
    def from_settings(cls, committer: GroupCommitter, s: Settings) -> CallbackSender:
        return cls(committer, timeout_s=s.callback_timeout_s,
                   concurrency_max=s.callback_concurrency_max,
                   connections_per_host_max=s.callback_connections_per_host_max,
                   poll_s=s.callback_poll_s, poll_gap_s=s.callback_poll_gap_s,
                   batch_max=s.callback_batch_max,
                   read_rows_max=s.callback_read_rows_max,
                   policy=RetryPolicy(s.callback_retry_delay_s_min,
                                      s.callback_retry_delay_s_max, s.callback_keep_s))

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def wake(self) -> None:
        """New rows may be due (a commit wrote some): poll now, not at the next tick."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    def stats(self) -> dict[str, int]:
        return {"sent": self.sent, "retried": self.retried, "gave_up": self.gave_up,
                "in_flight": len(self._in_flight)}

    async def run(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.concurrency_max,
                                         limit_per_host=self.connections_per_host_max)
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                         headers={"User-Agent": USER_AGENT}) as http:
            self._http = http
            loop = asyncio.get_running_loop()
            try:
                while not self._stopping:
                    with contextlib.suppress(TimeoutError):  # the poll: woken or not
                        await asyncio.wait_for(self._wake.wait(), timeout=self.poll_s)
                    # wakes within poll_gap_s of the last poll wait for it: one read for
                    # the completions of many requests, not one read each
                    gap = self._polled_at + self.poll_gap_s - loop.time()
                    if gap > 0:
                        await asyncio.sleep(gap)
                    self._wake.clear()
                    self._polled_at = loop.time()
                    if self._stopping:
                        break
                    try:
                        await self._poll()
                    except Exception as e:  # noqa: BLE001 - the store may be failing: next tick
                        self.poll_failures += 1
                        if not self._failing:  # once when it starts, not every tick
                            self._failing = True
                            log.error("callback poll failing",
                                      extra={"error_type": type(e).__name__})
                    else:
                        if self._failing:
                            self._failing = False
                            log.warning("callback poll recovered",
                                        extra={"failures": self.poll_failures})
            finally:
                tasks = list(self._in_flight.values())
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                self._http = None

    async def _poll(self) -> None:
        self.polls += 1
        room = self.concurrency_max - len(self._in_flight)
        if room <= 0:
            return
        now = self.clock()
        if self._held:
            for i in [i for i, until in self._held.items() if until <= now]:
                del self._held[i]
        skip = set(self._in_flight) | self._held.keys()
        want = min(self.batch_max, room)
        load = dict(self._host_load)
        # a wider read (about 14 ms for 1,000 rows here, on the loop) at most once per
        # poll_s: a busy host's backlog must not make every poll a long one
        rows_max = self.read_rows_max if now - self._wide_at >= self.poll_s else 0
        picked, ctx, wider = await self.committer.read(lambda s: _read_due(
            s, now, want, skip, load, self.connections_per_host_max, rows_max))
        if wider:
            self._wide_at = now
        started = 0
        for cb, host in picked:
            # between the read and now nothing else started (one poll at a time), but the
            # read is a coroutine: checked again
            if cb.event_id in self._in_flight or cb.event_id in self._held:
                continue
            if self._host_load[host] >= self.connections_per_host_max:
                continue
            self._host_load[host] += 1
            self._in_flight[cb.event_id] = asyncio.ensure_future(self._deliver(cb, ctx, host))
            started += 1
        self.in_flight_max = max(self.in_flight_max, len(self._in_flight))
        if started >= self.batch_max:
            self.wake()  # there may be more due: the next poll at once

    async def _deliver(self, cb: Callback, ctx: _Context, host: str) -> None:
        try:
            status, retry_after = await self._send(cb, ctx)
            await self._record(cb, status, retry_after)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - the store could not record it: later again
            # not sent again at once (the receiver may have taken it; the store may be
            # failing): held as long as a failed try would wait
            self._held[cb.event_id] = self.clock() + self.policy.ceiling_s(cb.attempts)
            log.error("callback outcome not recorded", extra={
                "event_id": cb.event_id, "message_id": cb.message_id, "account": cb.account,
                "error_type": type(e).__name__})
        finally:
            self._in_flight.pop(cb.event_id, None)
            left = self._host_load[host] - 1
            if left > 0:
                self._host_load[host] = left
            else:
                del self._host_load[host]
            self._wake.set()  # the next event of this message may be due now

    async def _send(self, cb: Callback, ctx: _Context) -> tuple[int | None, float | None]:
        """(status, Retry-After seconds). The status: the HTTP status, 0 for no answer (a
        timeout, a connection error), -1 when it must not go out at all (the account is
        gone, the URL is not the account's or not a URL), None when it was not tried now
        (no webhook secret yet: tried again later)."""
        account = ctx.accounts.get(cb.account)
        if account is None:
            return -1, None  # the account is gone: nobody to tell
        msg = ctx.messages.get(cb.message_id)
        headers = {EVENT_ID_HEADER: str(cb.event_id)}
        if cb.kind == "webhook":
            if not url_allowed(cb.url, account):
                return -1, None
            secret = account.webhook_secret
            if not secret:
                # not signed, not sent: tried again (an operator can rotate a secret in)
                log.warning("callback waits for a webhook secret",
                            extra={"event_id": cb.event_id, "account": cb.account})
                return None, None
            data = webhook_body(cb, msg.client_reference if msg is not None else None,
                                msg is not None and msg.source_ton == 1)
            headers["Content-Type"] = "application/json"
            headers[SIGNATURE_HEADER] = sign(secret, int(self.clock()), data)
            method, url = "POST", cb.url
        elif cb.kind == "kannel":
            fw = ctx.forwards.get(cb.message_id) or []
            partner = next((f.partner_id for f in fw if f.partner_id), None)
            report = kannel_report(cb, route=msg.route if msg is not None else "",
                                   submitted_at=msg.submitted_at if msg is not None else None,
                                   partner_id=partner)
            url = expand_dlr_url(cb.url, report)
            # an escape in the host part would let a value choose the host: refused
            if url_host(url) != url_host(cb.url) or not url_allowed(url, account):
                return -1, None
            method, data = "GET", b""
        else:
            return -1, None
        http = self._http
        assert http is not None
        try:
            async with http.request(method, url, data=data or None, headers=headers,
                                    allow_redirects=False) as resp:
                length = resp.content_length
                if length is not None and length <= RESPONSE_BYTES_MAX:
                    await resp.read()  # so the connection is kept for the next one
                return resp.status, parse_retry_after(resp.headers.get("Retry-After"),
                                                      self.clock())
        except (aiohttp.InvalidURL, ValueError):
            return -1, None
        except (aiohttp.ClientError, TimeoutError, OSError):
            return 0, None

    async def _record(self, cb: Callback, status: int | None, retry_after: float | None
                      ) -> None:
        now = self.clock()
        if status is None:
            v = Verdict.RETRY
        elif status < 0:
            v = Verdict.GIVE_UP
        else:
            v = verdict(status)
        if v is Verdict.SENT:
            await self._mark_sent(cb.event_id)
            self.sent += 1
            self._counts.add(cb.account, "sent")
            return
        last = None if status is None or status < 0 else status
        if v is Verdict.RETRY:
            at = self.policy.next_attempt_at(at=cb.at, attempts=cb.attempts, now=now,
                                             rng=self.rng, retry_after_s=retry_after)
            if at is not None:
                await self.committer.run(lambda s: s.callback_retry(cb.event_id, at, last))
                self.retried += 1
                self._counts.add(cb.account, "retried")
                return
            why = "kept_too_long"
        else:
            why = "refused" if status is not None and status >= 0 else "not_allowed"
        await self.committer.run(lambda s: s.callback_gave_up(cb.event_id, now, last))
        self.gave_up += 1
        self._counts.add(cb.account, "gave_up")
        log.warning("callback given up", extra={"event_id": cb.event_id,
                                                "message_id": cb.message_id,
                                                "account": cb.account, "status": last,
                                                "reason": why, "attempts": cb.attempts + 1})

    def _mark_sent(self, event_id: int) -> asyncio.Future[None]:
        """Marked with the others of this loop turn in one statement; the future is done
        once the mark is durable."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sent_ids.append(event_id)
        self._sent_waiters.append(fut)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush_sent)
        return fut

    def _flush_sent(self) -> None:
        self._flush_scheduled = False
        ids, waiters = self._sent_ids, self._sent_waiters
        self._sent_ids, self._sent_waiters = [], []
        t = self.clock()
        try:
            done = self.committer.enqueue(lambda s: s.callbacks_sent(ids, t))
        except Exception as e:  # noqa: BLE001 - queue full or closed: sent again later
            for w in waiters:
                if not w.done():
                    w.set_exception(e)
            return

        def _resolved(f: asyncio.Future[None]) -> None:
            err = None if f.cancelled() else f.exception()
            for w in waiters:
                if w.done():
                    continue
                if f.cancelled():
                    w.cancel()
                elif err is not None:
                    w.set_exception(err)
                else:
                    w.set_result(None)

        done.add_done_callback(_resolved)


def pending_gauge(store: Store) -> GaugeMetricFamily:
    """``adressat_callbacks_pending`` for the scrape (read then, not kept on the hot path)."""
    return GaugeMetricFamily("adressat_callbacks_pending",
                             "Status callbacks in the outbox neither sent nor given up",
                             value=store.pending_callbacks())
