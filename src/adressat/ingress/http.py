"""The HTTP messages API: ``/v1/messages`` on the node's HTTP listener (aiohttp).

aiohttp because the node's listener (health, metrics, dashboard, care pages) already is one, on
the node's own event loop beside the SMPP sessions and the group committer: a second server
(an ASGI one under uvicorn) would be a second port and a second loop for the same process.
pydantic (v2) validates the requests, so that every refusal names its field, and its JSON
Schemas make the OpenAPI document (``/openapi.json``, :mod:`adressat.ingress.openapi`), which
is generated from these models and the route table below, never written by hand.

The promises are SMPP's (I1, I4): 202 only after the durable commit; the same validation
(``core.accept_message``), the same binding tag; a message and its callbacks only for the
account that sent it. ``Idempotency-Key``: the same key with the same body answers the first
answer again and creates nothing; the same key with another body is refused 422
(``/problems/idempotency-key-reused``); keys are kept ``idempotency_keep_s`` (24 h) in the
store, written in the transaction that accepts the messages.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from adressat.core.accept import Refusal, Refused, Submission
from adressat.core.accounts import account_refusal
from adressat.core.apikeys import parse_api_key, secret_hash
from adressat.core.callbacks import (
    DEFAULT_EVENTS,
    CallbackEvent,
    CallbackSpec,
    decode_spec,
    encode_spec,
)
from adressat.core.interconnect_config import in_ranges
from adressat.core.model import Account, Message
from adressat.delivery.errors import DeliveryError
from adressat.observe.metrics import HTTP_LATENCY, HTTP_REQUESTS
from adressat.sms.encodings import Alphabet, choose_alphabet, codec_for_data_coding, encode_text
from adressat.sms.segment import Concat, SegmentationError, segment_payload
from adressat.store.base import NotPending, Store, StoreUnavailable, UnknownMessage
from adressat.store.commit import GroupCommitter

from .callbacks import url_allowed
from .commit import Ingress
from .credentials import API_KEY, CredentialGuard
from .refusals import ANSWERS, PROBLEM_BASE, RETRY_AFTER_S, commit_refusal, problem

log = logging.getLogger("adressat.http.api")

PROBLEM_JSON = "application/problem+json"
RECIPIENTS_MAX = 1000  # POST /v1/messages/batch
IDEMPOTENCY_KEY_LENGTH_MAX = 255
CLIENT_REFERENCE_LENGTH_MAX = 64
CALLBACK_URL_LENGTH_MAX = 2048
TEXT_LENGTH_MAX = 255 * 153  # characters; the content limit (octets) is checked after encoding
LIST_LIMIT_MAX = 100

#: problems of the HTTP exchange itself (not of a submission: those are the refusal table's)
HTTP_PROBLEMS: dict[str, tuple[int, str]] = {
    "malformed-json": (400, "The request body is not valid JSON"),
    "invalid-request": (422, "The request does not match the schema"),
    "unsupported-media-type": (415, "The request body must be application/json"),
    "body-too-large": (413, "The request body is larger than allowed"),
    "unauthorized": (401, "A valid API key is required (Authorization: Bearer)"),
    "address-not-allowed": (403, "This account may not be used from this address"),
    "not-found": (404, "No such message for this account"),
    "not-cancellable": (409, "The message can no longer be cancelled"),
    "idempotency-key-reused": (422, "This Idempotency-Key was used with another request body"),
    "invalid-idempotency-key": (400, "The Idempotency-Key header is not valid"),
    "callback-url-not-allowed": (422, "The callback URL is not one of the account's hosts"),
    "no-recipient-accepted": (422, "No recipient of the batch was accepted"),
}


# --- request and response models (the OpenAPI document is made from these) ------------------

class _Content(BaseModel):
    """What every message of a request shares."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: StrictStr = Field(alias="from", min_length=1, max_length=20,
                             description="Source address: +E.164, digits or an "
                                         "alphanumeric name of up to 11 characters")
    text: StrictStr | None = Field(None, min_length=1, max_length=TEXT_LENGTH_MAX,
                                   description="The text; sent in the GSM 7-bit alphabet when "
                                               "it fits, else UCS-2. One of text or binary.")
    binary: StrictStr | None = Field(None, min_length=2, max_length=2 * TEXT_LENGTH_MAX,
                                     pattern="^([0-9a-fA-F]{2})+$",
                                     description="Content as hex octets, in data_coding")
    data_coding: StrictInt | None = Field(None, ge=0, le=255,
                                          description="SMPP data_coding of binary (default 4)")
    validity_s: StrictInt | None = Field(None, ge=1, le=7 * 24 * 3600,
                                         description="Seconds the message may wait for "
                                                     "delivery from send_at (default 48 h)")
    send_at: AwareDatetime | None = Field(None, description="Scheduled delivery (RFC 3339)")
    priority: StrictInt = Field(0, ge=0, le=3, description="0 (normal) to 3 (highest)")
    callback_url: StrictStr | None = Field(None, min_length=1,
                                           max_length=CALLBACK_URL_LENGTH_MAX,
                                           description="Where status callbacks go (default: "
                                                       "the account's); http(s), one of the "
                                                       "account's callback hosts")
    callback_events: list[CallbackEvent] | None = Field(
        None, max_length=len(CallbackEvent),
        description="The events to be called back for (default delivered, failed)")
    client_reference: StrictStr | None = Field(None, min_length=1,
                                               max_length=CLIENT_REFERENCE_LENGTH_MAX,
                                               description="Your own reference, searchable")

    @model_validator(mode="after")
    def _one_content(self) -> _Content:
        if (self.text is None) == (self.binary is None):
            raise ValueError("exactly one of text and binary is required")
        if self.data_coding is not None and self.binary is None:
            raise ValueError("data_coding goes with binary only")
        return self


class MessageRequest(_Content):
    to: StrictStr = Field(min_length=1, max_length=32,
                          description="Destination, +E.164 (or a national number)")


class BatchRequest(_Content):
    to: list[StrictStr] = Field(min_length=1, max_length=RECIPIENTS_MAX,
                                description=f"Up to {RECIPIENTS_MAX} destinations")


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str | None = None
    reason: str | None = None
    errors: list[dict[str, str]] | None = None


class Accepted(BaseModel):
    id: str
    to: str
    parts: int
    state: str
    client_reference: str | None = None


class BatchResult(BaseModel):
    to: str
    status: int
    id: str | None = None
    parts: int | None = None
    problem: Problem | None = None


class BatchAccepted(BaseModel):
    accepted: int
    refused: int
    results: list[BatchResult]


class MessageView(BaseModel):
    id: str
    state: str
    final: bool
    to: str
    from_: str = Field(alias="from")
    parts: int
    submitted_at: str
    expires_at: str
    final_at: str | None = None
    route: str
    connector: str | None = None
    operator: str | None = None
    attempts: int
    error: int | None = None
    error_name: str | None = None
    client_reference: str | None = None
    callback_url: str | None = None
    callback_events: list[str] | None = None


class MessageList(BaseModel):
    messages: list[MessageView]


@dataclass(frozen=True, slots=True)
class Operation:
    """One route of the API: what the OpenAPI document says of it."""

    method: str
    path: str
    summary: str
    request: type[BaseModel] | None
    responses: Mapping[int, tuple[str, type[BaseModel] | None]]
    query: tuple[tuple[str, str, bool], ...] = ()  # (name, description, required)
    idempotent_key: bool = False


_COMMON: dict[int, tuple[str, type[BaseModel] | None]] = {
    401: ("No valid API key", Problem),
}
OPERATIONS: tuple[Operation, ...] = (
    Operation("post", "/v1/messages", "Send one message", MessageRequest,
              {202: ("Accepted: durably stored", Accepted), 400: ("Malformed", Problem),
               413: ("Body too large", Problem), 415: ("Not JSON", Problem),
               422: ("Refused: the problem names the field", Problem),
               429: ("Throttled or queue full: retry after Retry-After", Problem),
               **_COMMON}, idempotent_key=True),
    Operation("post", "/v1/messages/batch", "Send one text to many recipients, one commit",
              BatchRequest,
              {202: ("Accepted, one result per recipient", BatchAccepted),
               400: ("Malformed", Problem), 413: ("Body too large", Problem),
               415: ("Not JSON", Problem), 422: ("Refused", Problem),
               429: ("Throttled or queue full", Problem), **_COMMON}, idempotent_key=True),
    Operation("get", "/v1/messages/{id}", "A message's state, parts, times, route, error",
              None, {200: ("The message", MessageView), 404: ("Not this account's", Problem),
                     **_COMMON}),
    Operation("get", "/v1/messages", "Messages by your client_reference", None,
              {200: ("The messages, newest first", MessageList),
               422: ("Missing or invalid parameter", Problem), **_COMMON},
              query=(("client_reference", "Your reference", True),
                     ("limit", f"At most this many (1..{LIST_LIMIT_MAX}, default 20)", False))),
    Operation("delete", "/v1/messages/{id}", "Cancel a message not yet delivered", None,
              {200: ("Cancelled", MessageView), 404: ("Not this account's", Problem),
               409: ("Already final or on its way", Problem), **_COMMON}),
)


# --- helpers ----------------------------------------------------------------------------------

class _HttpProblem(Exception):
    def __init__(self, status: int, body: dict[str, Any],
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(body.get("type", ""))
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


def http_problem(slug: str, detail: str = "", **members: Any) -> _HttpProblem:
    status, title = HTTP_PROBLEMS[slug]
    body: dict[str, Any] = {"type": PROBLEM_BASE + slug, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(members)
    return _HttpProblem(status, body)


def refusal_problem(reason: Refusal, detail: str = "") -> _HttpProblem:
    a = ANSWERS[reason]
    headers = {"Retry-After": str(RETRY_AFTER_S)} if a.temporary else None
    return _HttpProblem(a.http, problem(reason, detail), headers)


def _problem_response(p: _HttpProblem) -> web.Response:
    return web.Response(text=json.dumps(p.body), status=p.status, content_type=PROBLEM_JSON,
                        headers=p.headers)


def _json(body: object, status: int = 200, headers: Mapping[str, str] | None = None,
          ) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, content_type="application/json",
                        headers=headers)


def _field_errors(e: ValidationError) -> list[dict[str, str]]:
    """Which field and why, never the value (it may be a number or a text: I6)."""
    out = []
    for err in e.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "body"
        out.append({"field": "from" if loc == "from_" else loc, "message": err["msg"]})
    return out


def _rfc3339(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, tz=UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def _source(addr: str) -> tuple[str, int, int]:
    """(source_addr, ton, npi) of a ``from``: +E.164 international, digits unknown,
    anything else alphanumeric (TS 23.040 9.1.2.5)."""
    if addr.startswith("+") and addr[1:].isdigit():
        return addr[1:], 1, 1
    if addr.isdigit():
        return addr, 0, 1
    return addr, 5, 0


def _destination(addr: str) -> tuple[str, int, int]:
    if addr.startswith("+"):
        return addr[1:], 1, 1
    return addr, 0, 1


def _alphabet(data_coding: int) -> Alphabet:
    try:
        return codec_for_data_coding(data_coding).alphabet
    except ValueError:
        return Alphabet.BINARY


def parts_of(content: bytes, data_coding: int) -> int:
    """How many SMS the content takes on the air (concatenated with an 8-bit reference)."""
    try:
        return len(segment_payload(content, _alphabet(data_coding), concat=Concat.UDH8,
                                   reference=0))
    except SegmentationError:
        raise Refused(Refusal.MESSAGE_TOO_LONG, "more than 255 parts") from None


def message_view(m: Message) -> dict[str, Any]:
    try:
        parts = parts_of(m.content, m.data_coding) if m.content else 0
    except Refused:
        parts = 0
    cb = m.extra.get("cb")
    spec = decode_spec(str(cb)) if cb else None
    error_name = None
    if m.error:
        try:
            error_name = DeliveryError(m.error).name.lower()
        except ValueError:
            error_name = None
    connector = m.extra.get("connector")
    operator = m.extra.get("operator")
    return {
        "id": m.id, "state": m.state.value.lower(), "final": m.final_at is not None,
        "to": "+" + m.destination, "from": ("+" if m.source_ton == 1 else "") + m.source_addr,
        "parts": parts, "submitted_at": _rfc3339(m.submitted_at),
        "expires_at": _rfc3339(m.expires_at), "final_at": _rfc3339(m.final_at),
        "route": m.route, "connector": None if connector is None else str(connector),
        "operator": None if operator is None else str(operator), "attempts": m.attempts,
        "error": m.error or None, "error_name": error_name, "client_reference": m.client_reference,
        "callback_url": spec.url if spec else None,
        "callback_events": sorted(e.value for e in spec.events) if spec else None,
    }


@dataclass
class _Auth:
    account: Account
    checked_at: float


@dataclass
class HttpApi:
    """The /v1 routes. Wired by ``app/node.py`` as a Mount of the node's HTTP listener."""

    ingress: Ingress
    committer: GroupCommitter
    #: the SMPP service's per-account token buckets: one throughput limit per account,
    #: whichever way its messages come in
    buckets: dict[str, Any]
    make_bucket: Callable[[float, float], Any]
    throughput_per_s_default: int = 0
    body_octets_max: int = 256 * 1024
    auth_cache_s: float = 2.0  # a revoked key or removed account stops working within this
    on_cancelled: Callable[[str], None] = lambda account: None
    clock: Callable[[], float] = time.time
    # issue 13: lockout per key id and address (the node's guard; a default one in tests)
    guard: CredentialGuard = field(default_factory=CredentialGuard)
    _auth: dict[str, _Auth] = field(default_factory=dict)
    _inflight: dict[tuple[str, str], asyncio.Future[tuple[bytes, int, str]]] = field(
        default_factory=dict)

    # -- mounting ---------------------------------------------------------------------------------
    def mount(self, app: web.Application) -> None:
        app.router.add_post("/v1/messages", self._wrap("messages", self._post_message))
        app.router.add_post("/v1/messages/batch", self._wrap("batch", self._post_batch))
        app.router.add_get("/v1/messages", self._wrap("list", self._list))
        # {id} never matches "batch": that path is POST only, and must be said so (Allow)
        one = "/v1/messages/{id:(?!batch$)[^/]+}"
        app.router.add_get(one, self._wrap("get", self._get))
        app.router.add_delete(one, self._wrap("cancel", self._cancel))

    def _wrap(self, name: str, handler: Callable[[web.Request, Account], Awaitable[web.Response]],
              ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def route(request: web.Request) -> web.Response:
            t0 = time.perf_counter()
            try:
                account = await self._authenticate(request)
                response = await handler(request, account)
            except _HttpProblem as p:
                response = _problem_response(p)
            HTTP_REQUESTS.labels(name, str(response.status)).inc()
            HTTP_LATENCY.labels(name).observe(time.perf_counter() - t0)
            return response
        return route

    # -- authentication ---------------------------------------------------------------------------
    async def _authenticate(self, request: web.Request) -> Account:
        """``Authorization: Bearer adr_<key id>_<secret>``. An unknown key, a wrong secret, a
        revoked key and a removed account get the same 401."""
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        parsed = parse_api_key(token.strip()) if scheme.lower() == "bearer" else None
        address = request.remote or ""
        if parsed is None:
            if header:  # a key that is none: counted against the address (issue 13)
                if self.guard.refused_unchecked(API_KEY, None, address) is None:
                    self.guard.failed(API_KEY, None, address, "malformed")
            raise self._unauthorized()
        key_id, secret = parsed
        if self.guard.refused_unchecked(API_KEY, key_id, address) is not None:
            log.info("api key refused", extra={"key_id": key_id[:16], "peer": address,
                                               "reason": "locked"})
            raise self._unauthorized()  # the same 401, before any look-up
        digest = secret_hash(secret)
        now = self.clock()
        cache_key = key_id + ":" + digest.hex()
        cached = self._auth.get(cache_key)
        if cached is not None and now - cached.checked_at < self.auth_cache_s:
            return self._usable(cached.account, request)

        def look(s: Store) -> tuple[bytes | None, Account | None]:
            key = s.api_key(key_id)
            if key is None or key.revoked_at is not None:
                return None, None
            return key.secret_hash, s.get_account(key.account)

        stored, account = await self.committer.read(look)
        # compared in constant time, also for an unknown key (against a hash of nothing)
        ok = hmac.compare_digest(stored or hashlib.sha256(b"").digest(), digest)
        if not ok or stored is None or account is None:
            self._auth.pop(cache_key, None)
            verdict = self.guard.failed(API_KEY, key_id, address,
                                        "password" if stored is not None else "unknown")
            log.info("api key refused", extra={"key_id": key_id[:16], "peer": address,
                                               "reason": verdict.reason})
            raise self._unauthorized()
        self.guard.succeeded(API_KEY, key_id, address)
        if len(self._auth) > 10_000:  # bounded: a cache, not a registry
            self._auth.clear()
        self._auth[cache_key] = _Auth(account, now)
        return self._usable(account, request)

    def _usable(self, account: Account, request: web.Request) -> Account:
        """A disabled account's keys get the 401 of a removed account's; a key used from an
        address not in the account's allow_ip gets 403 (issue 13)."""
        why = account_refusal(account, request.remote or "")
        if why is None:
            return account
        log.info("api key refused", extra={"account": account.name, "reason": why,
                                           "peer": request.remote or ""})
        if account.disabled:
            raise self._unauthorized()
        raise http_problem("address-not-allowed")

    def forget_accounts(self) -> None:
        """An account changed (the node's poll): the next request checks its key again."""
        self._auth.clear()

    @staticmethod
    def _unauthorized() -> _HttpProblem:
        p = http_problem("unauthorized")
        p.headers["WWW-Authenticate"] = 'Bearer realm="adressat"'
        return p

    # -- reading requests -------------------------------------------------------------------------
    async def _body(self, request: web.Request) -> bytes:
        if request.content_type != "application/json":
            raise http_problem("unsupported-media-type")
        if request.content_length is not None and request.content_length > self.body_octets_max:
            raise http_problem("body-too-large", f"at most {self.body_octets_max} octets")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            raise http_problem("body-too-large", f"at most {self.body_octets_max} octets"
                               ) from None
        if len(body) > self.body_octets_max:
            raise http_problem("body-too-large", f"at most {self.body_octets_max} octets")
        return body

    @staticmethod
    def _parse(model: type[BaseModel], body: bytes) -> Any:
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise http_problem("malformed-json") from None
        if not isinstance(data, dict):
            raise http_problem("invalid-request", "the body must be a JSON object",
                               errors=[{"field": "body", "message": "not an object"}])
        try:
            return model.model_validate(data)
        except ValidationError as e:
            errors = _field_errors(e)
            fields = sorted({err["field"] for err in errors})
            raise http_problem("invalid-request", "invalid: " + ", ".join(fields),
                               errors=errors) from None

    @staticmethod
    def _idempotency_key(request: web.Request) -> str | None:
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return None
        if not 1 <= len(key) <= IDEMPOTENCY_KEY_LENGTH_MAX or not key.isprintable():
            raise http_problem("invalid-idempotency-key",
                               f"1 to {IDEMPOTENCY_KEY_LENGTH_MAX} printable characters")
        return key

    # -- building ---------------------------------------------------------------------------------
    def _content(self, req: _Content) -> tuple[bytes, int]:
        if req.text is not None:
            alphabet = choose_alphabet(req.text)
            content = encode_text(req.text, alphabet)
            return content, 0x00 if alphabet is Alphabet.GSM7 else 0x08
        assert req.binary is not None
        return bytes.fromhex(req.binary), 0x04 if req.data_coding is None else req.data_coding

    def _callback(self, req: _Content, account: Account) -> str | None:
        url = req.callback_url or account.callback_url
        if url is None:
            if req.callback_events:
                raise http_problem("invalid-request", "callback_events needs a callback_url",
                                   errors=[{"field": "callback_events",
                                            "message": "no callback_url and no account "
                                                       "default"}])
            return None
        if not url_allowed(url, account):
            raise http_problem("callback-url-not-allowed",
                               "http(s) to one of the account's callback hosts only "
                               "(adressat account callbacks NAME --allow-host HOST)")
        events = frozenset(req.callback_events or DEFAULT_EVENTS)
        return encode_spec(CallbackSpec(kind="webhook", url=url, events=events))

    def _submission(self, req: _Content, to: str, account: Account, content: bytes,
                    data_coding: int, cb: str | None, now: float) -> Submission:
        source, ston, snpi = _source(req.from_)
        dest, dton, dnpi = _destination(to)
        schedule = req.send_at.timestamp() if req.send_at is not None else None
        expires = None
        if req.validity_s is not None:
            expires = max(now, schedule or now) + req.validity_s
        extra: dict[str, int | str] = {"channel": "http"}
        if cb is not None:
            extra["cb"] = cb
        return Submission(
            account=account.name, source_addr=source, source_ton=ston, source_npi=snpi,
            dest_addr=dest, dest_ton=dton, dest_npi=dnpi, content=content,
            data_coding=data_coding, registered_delivery=0, priority=req.priority,
            schedule_at=schedule, expires_at=expires, extra=extra,
            client_reference=req.client_reference)

    def _build(self, req: _Content, to: str, account: Account, content: bytes,
               data_coding: int, cb: str | None, now: float) -> tuple[Message, int]:
        """Raises Refused."""
        parts = parts_of(content, data_coding)
        sub = self._submission(req, to, account, content, data_coding, cb, now)
        if account.partner:  # as over SMPP: never back out through its own connectors
            no_via = ",".join(account.partner_connectors or (account.name,))
            sub = replace(sub, extra={**sub.extra, "no_via": no_via})
        msg = self.ingress.build(sub, now)
        if account.partner and not in_ranges(msg.destination, account.partner_ranges):
            raise Refused(Refusal.DESTINATION_NOT_ALLOWED)
        return msg, parts

    def _throttle(self, account: Account, n: int) -> None:
        rate = account.throughput_per_s or self.throughput_per_s_default
        if not rate:
            return
        now = self.clock()
        bucket = self.buckets.get(account.name)
        if bucket is None:
            bucket = self.buckets[account.name] = self.make_bucket(float(rate), now)
        if not bucket.take(now, n):
            raise refusal_problem(Refusal.THROTTLED)

    # -- committing -------------------------------------------------------------------------------
    async def _commit(self, msgs: list[Message], account: str, key: str | None,
                      body_hash: bytes, status: int, answer: str) -> None:
        """Commit ``msgs`` and, with a key, its idempotency record in the same transaction.
        Raises _Replay when the key was stored meanwhile (by another node)."""
        also = None
        if key is not None:
            now = self.clock()

            def also(s: Store) -> None:
                rec = s.idempotency_get(account, key)
                if rec is not None:
                    raise _Replay(rec.body_hash, rec.status, rec.response)
                s.idempotency_put(account, key, body_hash, status, answer, now)

        try:
            self.ingress.check_capacity()
            await self.ingress.commit_future(msgs, also)
        except _Replay:
            raise
        except (Refused, StoreUnavailable) as e:
            raise refusal_problem(commit_refusal(e)) from None
        except Exception as e:  # noqa: BLE001 - nothing durable: said as such, never as 202
            log.error("commit failed", extra={"account": account,
                                              "error_type": type(e).__name__})
            raise refusal_problem(Refusal.SYSTEM_ERROR) from None

    async def _once(self, account: Account, key: str | None, body_hash: bytes,
                    make: Callable[[], Awaitable[tuple[int, str]]]) -> web.Response:
        """Run ``make`` (which commits and returns (status, JSON answer)) at most once per
        Idempotency-Key: a repeat gets the first answer again, another body a 422."""
        if key is None:
            status, answer = await make()
            return web.Response(text=answer, status=status, content_type="application/json")
        slot = (account.name, key)
        running = self._inflight.get(slot)
        if running is not None:  # the same key, in flight now: its answer, once it has one
            try:
                first = await asyncio.shield(running)
            except Exception:  # noqa: BLE001 - the first failed: nothing stored, try ourselves
                first = None
            if first is not None:
                return self._replay(first, body_hash)
        stored = await self.committer.read(lambda s: s.idempotency_get(account.name, key))
        if stored is not None:
            return self._replay((stored.body_hash, stored.status, stored.response), body_hash)
        fut: asyncio.Future[tuple[bytes, int, str]] = (
            asyncio.get_running_loop().create_future())
        self._inflight[slot] = fut
        try:
            status, answer = await make()
        except _Replay as r:
            fut.set_result((r.body_hash, r.status, r.response))
            return self._replay((r.body_hash, r.status, r.response), body_hash)
        except BaseException as e:
            fut.set_exception(e)
            fut.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        else:
            fut.set_result((body_hash, status, answer))
        finally:
            if self._inflight.get(slot) is fut:
                del self._inflight[slot]
        return web.Response(text=answer, status=status, content_type="application/json")

    @staticmethod
    def _replay(first: tuple[bytes, int, str], body_hash: bytes) -> web.Response:
        if not hmac.compare_digest(first[0], body_hash):
            raise http_problem("idempotency-key-reused",
                               "send a new key for a new request")
        return web.Response(text=first[2], status=first[1], content_type="application/json",
                            headers={"Idempotent-Replayed": "true"})

    # -- the routes -------------------------------------------------------------------------------
    async def _post_message(self, request: web.Request, account: Account) -> web.Response:
        body = await self._body(request)
        req: MessageRequest = self._parse(MessageRequest, body)
        key = self._idempotency_key(request)
        body_hash = _hash(body) if key is not None else b""  # only what a key compares

        async def make() -> tuple[int, str]:
            now = self.clock()
            self._throttle(account, 1)
            content, dc = self._content(req)
            cb = self._callback(req, account)
            try:
                msg, parts = self._build(req, req.to, account, content, dc, cb, now)
            except Refused as e:
                self.ingress.refused += 1
                raise refusal_problem(e.reason, _detail(e.reason)) from None
            answer = json.dumps({"id": msg.id, "to": "+" + msg.destination, "parts": parts,
                                 "state": "accepted", "client_reference": req.client_reference})
            await self._commit([msg], account.name, key, body_hash, 202, answer)
            return 202, answer

        return await self._once(account, key, body_hash, make)

    async def _post_batch(self, request: web.Request, account: Account) -> web.Response:
        body = await self._body(request)
        req: BatchRequest = self._parse(BatchRequest, body)
        key = self._idempotency_key(request)
        body_hash = _hash(body) if key is not None else b""  # only what a key compares

        async def make() -> tuple[int, str]:
            now = self.clock()
            content, dc = self._content(req)
            cb = self._callback(req, account)
            results: list[dict[str, Any]] = []
            msgs: list[Message] = []
            seen: set[str] = set()
            for to in req.to:
                try:
                    msg, parts = self._build(req, to, account, content, dc, cb, now)
                except Refused as e:
                    self.ingress.refused += 1
                    a = ANSWERS[e.reason]
                    results.append({"to": to, "status": a.http,
                                    "problem": problem(e.reason, _detail(e.reason))})
                    continue
                if msg.destination in seen:  # one number listed twice gets it once
                    results.append({"to": to, "status": 422,
                                    "problem": http_problem("invalid-request",
                                                            "listed twice").body})
                    continue
                seen.add(msg.destination)
                msgs.append(msg)
                results.append({"to": to, "status": 202, "id": msg.id, "parts": parts})
            if not msgs:
                raise http_problem("no-recipient-accepted", results=results)
            self._throttle(account, len(msgs))  # throughput counts messages, not requests
            answer = json.dumps({"accepted": len(msgs), "refused": len(results) - len(msgs),
                                 "results": results})
            await self._commit(msgs, account.name, key, body_hash, 202, answer)
            return 202, answer

        return await self._once(account, key, body_hash, make)

    async def _own(self, account: Account, message_id: str) -> Message:
        msg = await self.committer.read(lambda s: s.get_message(message_id))
        if msg is None or msg.account != account.name:
            raise http_problem("not-found")  # another account's message does not exist (I4)
        return msg

    async def _get(self, request: web.Request, account: Account) -> web.Response:
        return _json(message_view(await self._own(account, request.match_info["id"])))

    async def _list(self, request: web.Request, account: Account) -> web.Response:
        ref = request.query.get("client_reference")
        if not ref or len(ref) > CLIENT_REFERENCE_LENGTH_MAX:
            raise http_problem("invalid-request", "client_reference is required",
                               errors=[{"field": "client_reference",
                                        "message": f"1 to {CLIENT_REFERENCE_LENGTH_MAX} "
                                                   "characters"}])
        raw = request.query.get("limit", "20")
        if not raw.isdigit() or not 1 <= int(raw) <= LIST_LIMIT_MAX:
            raise http_problem("invalid-request", "limit",
                               errors=[{"field": "limit",
                                        "message": f"an integer 1..{LIST_LIMIT_MAX}"}])
        limit = int(raw)
        msgs = await self.committer.read(
            lambda s: s.messages_by_reference(account.name, ref, limit))
        return _json({"messages": [message_view(m) for m in msgs]})

    async def _cancel(self, request: web.Request, account: Account) -> web.Response:
        mid = request.match_info["id"]
        await self._own(account, mid)
        now = self.clock()
        try:
            msg = await self.committer.run(lambda s: s.cancel(mid, account.name, now))
        except UnknownMessage:
            raise http_problem("not-found") from None
        except NotPending:
            raise http_problem("not-cancellable") from None
        self.on_cancelled(account.name)
        log.info("cancelled", extra={"message_id": mid, "account": account.name,
                                     "state": msg.state.value})
        return _json(message_view(msg))


class _Replay(Exception):  # noqa: N818 - a control-flow signal, not an error
    def __init__(self, body_hash: bytes, status: int, response: str) -> None:
        super().__init__("idempotency key stored meanwhile")
        self.body_hash = body_hash
        self.status = status
        self.response = response


def _hash(body: bytes) -> bytes:
    return hashlib.sha256(body).digest()


def _detail(reason: Refusal) -> str:
    """Which field a refusal is about (never its value)."""
    return {
        Refusal.INVALID_DESTINATION: "to", Refusal.DESTINATION_NOT_ALLOWED: "to",
        Refusal.INVALID_SOURCE: "from", Refusal.SOURCE_NOT_ALLOWED: "from",
        Refusal.INVALID_SCHEDULE: "send_at",
        Refusal.INVALID_EXPIRY: "validity_s", Refusal.MESSAGE_TOO_LONG: "text",
        Refusal.INVALID_CONTENT: "binary", Refusal.INVALID_PRIORITY: "priority",
    }.get(reason, "")


__all__ = ["Accepted", "BatchAccepted", "BatchRequest", "HTTP_PROBLEMS", "HttpApi",
           "MessageList", "MessageRequest", "MessageView", "OPERATIONS", "Operation", "Problem",
           "message_view", "parts_of"]
