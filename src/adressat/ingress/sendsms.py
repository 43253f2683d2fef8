"""Kannel-compatible ``GET|POST /cgi-bin/sendsms``: an application written for Kannel's smsbox
moves to adressat by changing only the address.

Parameters and answers are Kannel 1.4.5's (its user guide, "Sending SMS", and the answer
strings of ``gw/smsbox.c``, checked against ``strings /usr/sbin/smsbox`` here): ``username``
or ``user``, ``password`` or ``pass`` (an SMPP account's name and password), ``from``, ``to``
(several, separated by spaces), ``text``, ``coding`` (0 7-bit, 1 8-bit, 2 UCS-2), ``charset``,
``udh`` (url-encoded octets), ``mclass``, ``mwi``, ``alt-dcs``, ``pid``, ``priority``,
``validity`` and ``deferred`` (minutes), ``dlr-mask`` and ``dlr-url``. Ignored as in a Kannel
without those features: ``smsc`` (adressat routes itself), ``account`` and ``binfo`` (billing
tags of Kannel's own; the account is the one that logs in), ``meta-data``, ``rpi`` and
``compress`` (checked for Kannel's ranges, then ignored: adressat does not compress).

``POST``: Kannel's own form (``text/plain`` or ``application/octet-stream`` body = the text,
the rest in ``X-Kannel-*`` headers) and, beyond Kannel, an HTML form
(``application/x-www-form-urlencoded``, the same parameters as the GET).

The answer is given only after the commit (I1), like SMPP's submit_sm_resp: ``202 0:
Accepted for delivery``. Refusals answer from :func:`kannel_answer`, a function of the one
refusal table's :class:`~adressat.core.accept.Refusal` (temporary ones: ``503 Temporal
failure, try again later.``). tests/interop/test_sendsms_compat.py sends the same requests to
Kannel's own smsbox and compares status, body and content type byte for byte.

Where adressat answers otherwise, on purpose:

* all or nothing: one receiver refused refuses the request and nothing is created (smsbox
  drops a receiver with characters outside ``0123456789 +-`` and sends to the others);
* a receiver that is no number of anyone is refused at once, ``403 Not routable. Do not try
  again.`` (smsbox queues it and reports its failure later);
* a number parameter that is not a number is that field's ``... field misformed,
  rejected`` (smsbox's sscanf takes a word for "not given");
* a dlr-url only to the account's own hosts (``adressat account callbacks NAME
  --allow-host H``), else ``403 DLR-URL host not allowed for this account, rejected``;
* answers Kannel has no case for, in its words: ``400 Too many receivers, rejected`` (over
  ``sendsms_receivers_max``), ``400 From field misformed, rejected``, ``413 Request too large,
  rejected``; a text too long or not sendable: ``400 Charset or body misformed, rejected``;
* a POST of ``text/html``, ``text/vnd.wap.wml`` or ``text/xml`` (which smsbox converts) is
  ``415 Unsupported content-type, rejected`` after the credentials; an HTML form POST
  (``application/x-www-form-urlencoded``) is accepted, which smsbox refuses;
* dlr-mask 16 (smsc reject) asks for the ``failed`` event: a refused submit is answered in
  the sendsms answer itself, a message that ends failed at once reports it.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import NoReturn
from urllib.parse import unquote_to_bytes

from aiohttp import web

from adressat.core.accept import Refusal, Refused, Submission
from adressat.core.accounts import account_refusal
from adressat.core.callbacks import (
    BadCallbackSpec,
    callback_url_allowed,
    encode_spec,
    make_spec,
)
from adressat.core.interconnect_config import in_ranges
from adressat.core.model import Account, Message
from adressat.smpp.constants import EsmClass, Ton
from adressat.sms.encodings import gsm7_encode, gsm7_is_encodable
from adressat.store.commit import GroupCommitter

from .callbacks import events_for_dlr_mask
from .commit import Ingress
from .credentials import ACCOUNT, CredentialGuard, Verdict
from .refusals import ANSWERS, commit_refusal
from .smpp import TokenBucket, check_one_part

__all__ = ["PATH", "KannelError", "SendSms", "SendSmsRequest", "kannel_answer", "parse_form",
           "parse_request", "dcs_for", "submissions"]

log = logging.getLogger("adressat.ingress.sendsms")

PATH = "/cgi-bin/sendsms"
#: smsbox's reply headers (``sendsms_reply_hdrs`` in gw/smsbox.c)
REPLY_HEADERS = {"Content-Type": "text/html", "Pragma": "no-cache", "Cache-Control": "no-cache"}

ACCEPTED = (202, "0: Accepted for delivery")
AUTH_FAILED = (403, "Authorization failed for sendsms")
MISSING_TO = (400, "Missing receiver number, rejected")
MISSING_TO_POST = (400, "Missing receiver(s) number(s), rejected")
EMPTY_TO = (400, "Empty receiver number not allowed, rejected")
DENIED = (400, "Number(s) has/have been denied by white- and/or black-lists.")
NO_SENDER = (400, "Sender missing and no global set, rejected")
UDH_MISFORMED = (400, "UDH field misformed, rejected")
UDH_TOO_LONG = (400, "UDH field is too long, rejected")
CHARSET_MISFORMED = (400, "Charset or body misformed, rejected")
INVALID_CONTENT_TYPE = (400, "Invalid content-type")
UNSUPPORTED_CONTENT_TYPE = (415, "Unsupported content-type, rejected")
NOT_ROUTABLE = (403, "Not routable. Do not try again.")
TEMPORARY = (503, "Temporal failure, try again later.")
# ours, in Kannel's words (Kannel has no such limit or check)
TOO_MANY_RECEIVERS = (400, "Too many receivers, rejected")
SENDER_MISFORMED = (400, "From field misformed, rejected")
SENDER_NOT_ALLOWED = (403, "Sender not allowed for this account, rejected")
DLR_URL_NOT_ALLOWED = (403, "DLR-URL host not allowed for this account, rejected")
TOO_LARGE = (413, "Request too large, rejected")

#: Kannel's default ``sendsms-chars``: what a receiver number may consist of
NUMBER_CHARS = frozenset("0123456789 +-")
UDH_OCTETS_MAX = 140  # MAX_SMS_OCTETS
_INT = re.compile(r"[+-]?[0-9]{1,9}")


def _misformed(field: str) -> tuple[int, str]:
    return 400, f"{field} field misformed, rejected"


class KannelError(Exception):
    """A request refused before anything is built: its HTTP status and Kannel's answer."""

    def __init__(self, answer: tuple[int, str]) -> None:
        super().__init__(answer[1])
        self.status, self.text = answer


def kannel_answer(reason: Refusal) -> tuple[int, str]:
    """What sendsms answers to a refusal of the one table (ingress/refusals.py): a temporary
    one as smsbox answers a temporary failure of bearerbox, the others as the Kannel field
    check that matches (a destination nobody serves: bearerbox's "not routable")."""
    if ANSWERS[reason].temporary:
        return TEMPORARY
    return _PERMANENT.get(reason, (400, "Invalid parameters, rejected"))


_PERMANENT: dict[Refusal, tuple[int, str]] = {
    Refusal.INVALID_DESTINATION: NOT_ROUTABLE,
    Refusal.DESTINATION_NOT_ALLOWED: NOT_ROUTABLE,
    Refusal.INVALID_SOURCE: SENDER_MISFORMED,
    Refusal.SOURCE_NOT_ALLOWED: SENDER_NOT_ALLOWED,
    Refusal.INVALID_SCHEDULE: _misformed("Deferred"),
    Refusal.INVALID_EXPIRY: _misformed("Validity"),
    Refusal.MESSAGE_TOO_LONG: CHARSET_MISFORMED,
    Refusal.INVALID_CONTENT: CHARSET_MISFORMED,
    Refusal.INVALID_PRIORITY: _misformed("Priority"),
    Refusal.INVALID_ESM_CLASS: UDH_MISFORMED,
}


# --- parsing (pure) --------------------------------------------------------------------------

def parse_form(raw: bytes) -> dict[str, bytes]:
    """``a=b&c=d`` as Kannel's parse_cgivars reads it: ``+`` is a space, ``%XX`` an octet,
    values stay octets (the text's charset is a parameter of its own); the first of a
    repeated name counts (http_cgi_variable)."""
    out: dict[str, bytes] = {}
    for part in raw.split(b"&"):
        if not part:
            continue
        name, _, value = part.partition(b"=")
        key = unquote_to_bytes(name.replace(b"+", b" ")).decode("latin-1")
        if key not in out:
            out[key] = unquote_to_bytes(value.replace(b"+", b" "))
    return out


#: Kannel's POST headers (get_x_kannel_from_headers) and the parameter each one is
HEADER_PARAMS = {
    "x-kannel-from": "from", "x-kannel-to": "to", "x-kannel-username": "username",
    "x-kannel-password": "password", "x-kannel-smsc": "smsc", "x-kannel-udh": "udh",
    "x-kannel-dlr-url": "dlr-url", "x-kannel-account": "account", "x-kannel-binfo": "binfo",
    "x-kannel-coding": "coding", "x-kannel-pid": "pid", "x-kannel-mwi": "mwi",
    "x-kannel-mclass": "mclass", "x-kannel-alt-dcs": "alt-dcs",
    "x-kannel-compress": "compress", "x-kannel-validity": "validity",
    "x-kannel-deferred": "deferred", "x-kannel-dlr-mask": "dlr-mask", "x-kannel-rpi": "rpi",
    "x-kannel-priority": "priority", "x-kannel-meta-data": "meta-data",
}


def params_from_headers(headers: Mapping[str, str], body: bytes) -> dict[str, bytes]:
    """A Kannel POST: the text is the body, everything else in ``X-Kannel-*`` headers (a
    UDH as hex, else url-encoded)."""
    out: dict[str, bytes] = {"text": body}
    for name, value in headers.items():
        param = HEADER_PARAMS.get(name.lower())
        if param is None or param in out:
            continue
        v = value.strip()
        if param == "udh":
            try:
                out[param] = bytes.fromhex(v)
            except ValueError:
                out[param] = unquote_to_bytes(v)
        else:
            out[param] = v.encode("latin-1", "replace")
    return out


@dataclass(frozen=True, slots=True)
class SendSmsRequest:
    """One checked sendsms request (the credentials are checked elsewhere)."""

    receivers: tuple[str, ...]
    sender: str
    content: bytes  # as it goes into the message: UDH + text in its coding
    data_coding: int
    esm_class: int
    protocol_id: int = 0
    priority: int = 0
    validity_min: int | None = None
    deferred_min: int | None = None
    dlr_mask: int = 0
    dlr_url: str = ""


def _text(params: Mapping[str, bytes], name: str) -> str | None:
    v = params.get(name)
    return None if v is None else v.decode("utf-8", "replace")


def _int(params: Mapping[str, bytes], name: str, field: str, low: int, high: int) -> int | None:
    """An integer parameter in Kannel's range, None when absent or -1 (Kannel's "undefined");
    anything else is that field's "misformed" answer (Kannel's sscanf would let a word
    through as undefined: adressat says it is wrong instead)."""
    raw = params.get(name)
    if raw is None or raw.strip() == b"":
        return None
    text = raw.decode("latin-1").strip()
    if not _INT.fullmatch(text):
        raise KannelError(_misformed(field))
    value = int(text)
    if value == -1:
        return None
    if not low <= value <= high:
        raise KannelError(_misformed(field))
    return value


def dcs_for(coding: int, mclass: int | None, mwi: int | None, alt_dcs: bool,
            has_text: bool) -> int:
    """The data coding scheme Kannel's ``fields_to_dcs`` makes of coding, mclass, mwi and
    alt-dcs (3GPP TS 23.038 4)."""
    if mwi is not None:
        if mwi & 0x04:
            return (mwi & 0x03) | 0xC0  # indication inactive
        dcs = (mwi & 0x03) | 0x08
        if not has_text:
            return dcs | 0xC0
        return dcs | (0xD0 if coding == 0 else 0xE0)
    if not alt_dcs or coding == 2:
        dcs = coding << 2
        if mclass is not None:
            dcs |= 0x10 | mclass
        return dcs
    return 0xF0 | (coding << 2) | (1 if mclass is None else mclass)


def _encode_text(raw: bytes, coding: int, charset: str | None) -> bytes:
    """The text's octets as they go into the message: 7-bit as unpacked GSM septets (from
    ``charset``, UTF-8 by default; a character without a GSM 03.38 form becomes ``?`` as in
    Kannel), 8-bit as given, UCS-2 as UTF-16BE (from ``charset``; without one the octets
    are taken to be UTF-16BE already, as in Kannel)."""
    if coding == 1:
        return raw
    if coding == 2:
        if not charset:
            if len(raw) % 2:
                raise KannelError(CHARSET_MISFORMED)
            return raw
        try:
            return raw.decode(charset).encode("utf-16-be")
        except (LookupError, UnicodeError):
            raise KannelError(CHARSET_MISFORMED) from None
    try:
        text = raw.decode(charset or "utf-8")
    except (LookupError, UnicodeError):
        raise KannelError(CHARSET_MISFORMED) from None
    if not gsm7_is_encodable(text):
        text = "".join(c if gsm7_is_encodable(c) else "?" for c in text)
    return gsm7_encode(text)


def parse_request(params: Mapping[str, bytes], *, post: bool = False,
                  coding_default: int | None = None, charset_default: str | None = None,
                  receivers_max: int = 1000) -> SendSmsRequest:
    """Check one request's parameters in the order smsbox checks them; raises KannelError
    with smsbox's answer. Pure."""
    to = params.get("to")
    if to is None:
        raise KannelError(MISSING_TO_POST if post else MISSING_TO)
    if not to:
        raise KannelError(EMPTY_TO)
    udh = params.get("udh")
    if udh is not None and not udh:
        udh = None
    if udh is not None and len(udh) != udh[0] + 1:
        raise KannelError(UDH_MISFORMED)
    if udh is not None and len(udh) > UDH_OCTETS_MAX:
        raise KannelError(UDH_TOO_LONG)
    words = to.decode("latin-1").split()
    if not words:
        raise KannelError(EMPTY_TO)
    if len(words) > receivers_max:
        raise KannelError(TOO_MANY_RECEIVERS)
    if any(not set(w) <= NUMBER_CHARS for w in words):
        # smsbox drops such a receiver (denied) and sends to the others; all or nothing here
        raise KannelError(DENIED)
    receivers: list[str] = []
    for w in words:
        if w not in receivers:  # one number listed twice gets it once
            receivers.append(w)
    sender = _text(params, "from") or ""
    if not sender:
        raise KannelError(NO_SENDER)
    dlr_url = _text(params, "dlr-url") or _text(params, "dlrurl") or ""
    if dlr_url and not dlr_url.lower().startswith(("http://", "https://")):
        raise KannelError(_misformed("DLR-URL"))
    if "dlr-mask" in params:
        dlr_mask = _int(params, "dlr-mask", "DLR-Mask", 0, 63)
    else:
        dlr_mask = _int(params, "dlrmask", "DLR-Mask", 0, 63)
    mclass = _int(params, "mclass", "MClass", 0, 3)
    pid = _int(params, "pid", "PID", 0, 255)
    _int(params, "rpi", "RPI", 0, 2)  # reply path: not offered, checked as Kannel does
    alt_dcs = _int(params, "alt-dcs", "Alt-DCS", 0, 1)
    mwi = _int(params, "mwi", "MWI", 0, 7)
    coding = _int(params, "coding", "Coding", 0, 2)
    _int(params, "compress", "Compress", 0, 1)  # adressat does not compress: ignored
    validity = _int(params, "validity", "Validity", 0, 10**9)
    deferred = _int(params, "deferred", "Deferred", 0, 10**9)
    priority = _int(params, "priority", "Priority", 0, 3)
    if coding is None:
        coding = coding_default if coding_default is not None else (1 if udh else 0)
    raw = params.get("text", b"")
    charset = _text(params, "charset") or charset_default
    text = _encode_text(raw, coding, charset)
    dcs = dcs_for(coding, mclass, mwi, bool(alt_dcs), bool(raw))
    esm_class = 0
    content = text
    if udh is not None:
        esm_class = int(EsmClass.GSM_UDHI)
        content = udh + text
    return SendSmsRequest(
        receivers=tuple(receivers), sender=sender, content=content, data_coding=dcs,
        esm_class=esm_class, protocol_id=pid or 0, priority=priority or 0,
        validity_min=validity, deferred_min=deferred, dlr_mask=dlr_mask or 0,
        dlr_url=dlr_url,
    )


def _address(addr: str) -> tuple[str, int, int]:
    """(address, TON, NPI) of a Kannel number: ``+`` international, else unknown (a leading
    00 is international too, judged by the normaliser); dashes are separators."""
    a = addr.replace("-", "").replace(" ", "")
    if a.startswith("+"):
        return a[1:], int(Ton.INTERNATIONAL), 1
    return a, int(Ton.UNKNOWN), 1


def _source(sender: str) -> tuple[str, int, int]:
    s = sender.strip()
    digits = s[1:] if s.startswith("+") else s
    if digits.isdigit() and digits.isascii():
        return digits, int(Ton.INTERNATIONAL), 1
    return s, int(Ton.ALPHANUMERIC), 0


def submissions(req: SendSmsRequest, account: str, now: float) -> list[Submission]:
    """One submission per receiver; raises KannelError for a dlr-url the spec refuses.
    Registered delivery 0: a sendsms sender hears of its messages only through dlr-url."""
    extra: dict[str, int | str] = {"channel": "kannel"}
    events = events_for_dlr_mask(req.dlr_mask)
    if req.dlr_url and events:
        try:
            extra["cb"] = encode_spec(make_spec("kannel", req.dlr_url, events))
        except BadCallbackSpec:
            raise KannelError(_misformed("DLR-URL")) from None
    src, ston, snpi = _source(req.sender)
    schedule = None if req.deferred_min is None else now + 60.0 * req.deferred_min
    expires = None
    if req.validity_min is not None:
        expires = max(now, schedule or now) + 60.0 * req.validity_min
    out = []
    for r in req.receivers:
        dest, ton, npi = _address(r)
        out.append(Submission(
            account=account, source_addr=src, source_ton=ston, source_npi=snpi,
            dest_addr=dest, dest_ton=ton, dest_npi=npi, content=req.content,
            data_coding=req.data_coding, esm_class=req.esm_class, registered_delivery=0,
            priority=req.priority, protocol_id=req.protocol_id, schedule_at=schedule,
            expires_at=expires, extra=extra,
        ))
    return out


# --- credentials -----------------------------------------------------------------------------

class AuthCache:
    """Successful password checks, kept ``ttl_s`` in memory (at most ``entries_max``):
    keyed by the account, its stored hash (a changed password misses) and an HMAC of the
    password under a key of this process only (the password itself is never kept).
    Failures are never cached."""

    def __init__(self, ttl_s: float, entries_max: int) -> None:
        self.ttl_s = ttl_s
        self.entries_max = entries_max
        self._key = os.urandom(32)
        self._ok: dict[tuple[str, str, bytes], float] = {}

    def key(self, account: Account, password: str) -> tuple[str, str, bytes]:
        mac = hmac.new(self._key, password.encode("utf-8"), hashlib.sha256).digest()
        return account.name, account.password_hash, mac

    def hit(self, account: Account, password: str, now: float) -> bool:
        k = self.key(account, password)
        until = self._ok.get(k)
        if until is None:
            return False
        if until <= now:
            del self._ok[k]
            return False
        return True

    def put(self, account: Account, password: str, now: float) -> None:
        if self.ttl_s <= 0 or self.entries_max <= 0:
            return
        if len(self._ok) >= self.entries_max:
            for k in [k for k, until in self._ok.items() if until <= now]:
                del self._ok[k]
            while len(self._ok) >= self.entries_max:  # the oldest go first
                del self._ok[next(iter(self._ok))]
        self._ok[self.key(account, password)] = now + self.ttl_s

    def __len__(self) -> int:
        return len(self._ok)


# --- the endpoint ----------------------------------------------------------------------------

def _reply(answer: tuple[int, str]) -> web.Response:
    return web.Response(status=answer[0], body=answer[1].encode("ascii"),
                        headers=REPLY_HEADERS)


class SendSms:
    """``GET|POST /cgi-bin/sendsms`` on the node's HTTP listener (a Mount of api/http.py)."""

    def __init__(
        self,
        ingress: Ingress,
        committer: GroupCommitter,
        buckets: dict[str, TokenBucket],
        *,
        throughput_per_s_default: int = 0,
        auth_cache_s: float = 60.0,
        auth_cache_max: int = 10_000,
        account_cache_s: float = 1.0,
        receivers_max: int = 1000,
        body_bytes_max: int = 256 * 1024,
        clock: Callable[[], float] = time.time,
        guard: CredentialGuard | None = None,
    ) -> None:
        self.ingress = ingress
        self.committer = committer
        self.buckets = buckets  # the SMPP service's: one throughput per account
        self.throughput_per_s_default = throughput_per_s_default
        self.auth = AuthCache(auth_cache_s, auth_cache_max)
        self.receivers_max = receivers_max
        self.body_bytes_max = body_bytes_max
        self.clock = clock
        # issue 13: the SMPP binds' guard (one lockout per account name, whichever way in)
        self.guard = guard if guard is not None else CredentialGuard()
        self.account_cache_s = account_cache_s
        self._accounts: dict[str, tuple[float, Account]] = {}
        # checks in flight, by the cache's key (bounded by the requests in flight)
        self._checking: dict[tuple[str, str, bytes], asyncio.Future[bool]] = {}
        self.accepted = 0
        self.refused = 0

    def mount(self, app: web.Application) -> None:
        app.router.add_route("GET", PATH, self.handle)
        app.router.add_route("POST", PATH, self.handle)

    async def _params(self, request: web.Request) -> tuple[dict[str, bytes], bool,
                                                           int | None, str | None]:
        """(parameters, posted, default coding, default charset)."""
        if request.method != "POST":
            return parse_form(request.rel_url.raw_query_string.encode("latin-1")), False, \
                None, None
        body = await self._body(request)
        ctype = request.content_type.lower()
        if ctype == "application/x-www-form-urlencoded":
            return parse_form(body), True, None, None
        if ctype in ("text/plain", "application/octet-stream"):
            params = params_from_headers(request.headers, body)
            charset = request.charset
            return params, True, (1 if ctype == "application/octet-stream" else 0), charset
        if ctype in ("text/html", "text/vnd.wap.wml", "text/xml"):
            # Kannel reads these (html to text, its XML), then refuses all but plain text
            # and octets; adressat refuses them at once
            params = params_from_headers(request.headers, b"")
            raise _Unsupported(params)
        raise KannelError(INVALID_CONTENT_TYPE)

    async def _body(self, request: web.Request) -> bytes:
        """The body, at most ``body_bytes_max`` octets (read here, not by the listener,
        whose bound is for small forms)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = await request.content.read(64 * 1024)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > self.body_bytes_max:
                raise KannelError(TOO_LARGE)
            chunks.append(chunk)

    async def handle(self, request: web.Request) -> web.Response:
        t0 = self.clock()
        try:
            try:
                params, post, coding, charset = await self._params(request)
            except _Unsupported as u:
                await self._authorise(u.params, request.remote or "")
                raise KannelError(UNSUPPORTED_CONTENT_TYPE) from None
            account = await self._authorise(params, request.remote or "")
            if account_refusal(account, request.remote or "") is not None:
                raise KannelError(AUTH_FAILED)  # disabled, or not from allow_ip (issue 13)
            req = parse_request(params, post=post, coding_default=coding,
                                charset_default=charset, receivers_max=self.receivers_max)
            if req.dlr_url and events_for_dlr_mask(req.dlr_mask) and not callback_url_allowed(
                    req.dlr_url, account.callback_url, account.callback_hosts):
                # receipts only to the account's own hosts (I4): an operator allows them
                # (adressat account callbacks NAME --allow-host H)
                raise KannelError(DLR_URL_NOT_ALLOWED)
            msgs = self._build(account, req, t0)
            await self.ingress.commit_future(msgs)
        except KannelError as e:
            self.refused += 1
            return _reply((e.status, e.text))
        except Refused as e:
            self.refused += 1
            self.ingress.refused += 1
            if log.isEnabledFor(logging.DEBUG):
                log.debug("sendsms refused", extra={"reason": e.reason.value})
            return _reply(kannel_answer(e.reason))
        except Exception as e:  # noqa: BLE001 - a failed commit: nothing durable, say so
            reason = commit_refusal(e)
            log.error("sendsms commit failed", extra={"reason": reason.value,
                                                      "error_type": type(e).__name__})
            self.refused += 1
            return _reply(kannel_answer(reason))
        self.accepted += len(msgs)
        return _reply(ACCEPTED)

    def _build(self, account: Account, req: SendSmsRequest, now: float) -> list[Message]:
        subs = submissions(req, account.name, now)
        self._throttle(account, len(subs), now)
        self.ingress.check_capacity()
        if account.partner:  # as for its SMPP binds: its ranges, never back out its way
            no_via = ",".join(account.partner_connectors or (account.name,))
            subs = [replace(s, extra={**s.extra, "no_via": no_via}) for s in subs]
        msgs: list[Message] = []
        seen: set[str] = set()
        for sub in subs:
            if sub.esm_class & EsmClass.GSM_UDHI:
                check_one_part(sub.content, sub.data_coding)
            msg = self.ingress.build(sub, now)
            if account.partner and not in_ranges(msg.destination, account.partner_ranges):
                raise Refused(Refusal.DESTINATION_NOT_ALLOWED)
            if msg.destination not in seen:  # "0701..." and "+46701..." are one number
                seen.add(msg.destination)
                msgs.append(msg)
        return msgs

    def _throttle(self, account: Account, n: int, now: float) -> None:
        """The account's throughput, shared with its SMPP sessions (one bucket per
        account): every message counts."""
        rate = account.throughput_per_s or self.throughput_per_s_default
        if not rate:
            return
        bucket = self.buckets.get(account.name)
        if bucket is None:
            bucket = self.buckets[account.name] = TokenBucket(float(rate), float(rate), now)
        if not bucket.take(now, n):
            raise Refused(Refusal.THROTTLED)

    async def _authorise(self, params: Mapping[str, bytes], address: str) -> Account:
        """The account of ``username``/``user`` with ``password``/``pass``; KannelError 403
        for any failure, the same answer (and the same cost: a full check) for an unknown
        name as for a wrong password, and for a lockout (the SMPP binds' own, per name and
        ``address``) or too many checks waiting (no check at all)."""
        user = _text(params, "username")
        if user is None:
            user = _text(params, "user")
        password = _text(params, "password")
        if password is None:
            password = _text(params, "pass")
        if user is None or password is None:
            raise KannelError(AUTH_FAILED)
        now = self.clock()
        locked = self.guard.refused_unchecked(ACCOUNT, user, address)
        if locked is not None:
            self._auth_failed(user, address, locked)
        account = await self._account(user, now)
        if account is not None and self.auth.hit(account, password, now):
            return account
        if account is None:
            verdict = await self.guard.check_password(user, address, password, None)
        else:
            # one check for a burst of requests with the same credentials (a sender's
            # first 50 connections at once): they wait for the one in flight
            k = self.auth.key(account, password)
            check = self._checking.get(k)
            if check is None:
                check = asyncio.ensure_future(self._verify(k, user, address, password,
                                                           account.password_hash))
                self._checking[k] = check
            verdict = await asyncio.shield(check)
        if not verdict.ok or account is None:
            self._auth_failed(user, address, verdict)
        self.auth.put(account, password, self.clock())
        return account

    def forget_accounts(self) -> None:
        """An account changed (the node's poll): read its record again."""
        self._accounts.clear()

    @staticmethod
    def _auth_failed(user: str, address: str, verdict: Verdict) -> NoReturn:
        log.info("sendsms authorization failed", extra={"account": user[:64], "peer": address,
                                                         "reason": verdict.reason})
        raise KannelError(AUTH_FAILED)

    async def _account(self, name: str, now: float) -> Account | None:
        """The account record, read at most every ``account_cache_s`` per name (a changed
        password, throughput or removal is seen within that; an unknown name is read
        every time)."""
        got = self._accounts.get(name)
        if got is not None and got[0] > now:
            return got[1]
        account = await self.committer.read(lambda s: s.get_account(name))
        if account is None:
            self._accounts.pop(name, None)
        elif self.account_cache_s > 0:
            if len(self._accounts) >= self.auth.entries_max:
                self._accounts.clear()  # bounded; refilled at one read per name
            self._accounts[name] = (now + self.account_cache_s, account)
        return account

    async def _verify(self, key: tuple[str, str, bytes], user: str, address: str,
                      password: str, stored: str) -> Verdict:
        try:
            return await self.guard.check_password(user, address, password, stored)
        finally:
            self._checking.pop(key, None)


class _Unsupported(Exception):
    def __init__(self, params: dict[str, bytes]) -> None:
        super().__init__("unsupported content type")
        self.params = params

